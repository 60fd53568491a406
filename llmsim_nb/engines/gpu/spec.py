"""The GPU spec: datasheet quantities and fitted efficiencies of one GPU.

:class:`GPUSpec` is what a ``gpu`` hardware preset (``presets/hardware.yaml``)
becomes and what :class:`~llmsim_nb.engines.gpu.GPUEngine` times with. It only
validates and stores; the formulas that use each field are in the module
docstring of :mod:`llmsim_nb.engines.gpu`. The tables here name spec fields
(which efficiency or overhead goes with which op kind), so that validation, the
engine and :func:`~llmsim_nb.fidelity.calibration.calibrate` agree on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...models.ops import OpKind

#: Data types a :class:`GPUSpec` understands and their bytes per element. ``fp4``
#: is a block-scaled 4-bit format as Blackwell tensor cores run it: MXFP4 (OCP
#: Microscaling), 4-bit E2M1 elements plus one 8-bit E8M0 scale per 32 elements,
#: 4.25 bits = 0.53125 bytes (NVFP4, an 8-bit E4M3 scale per 16, is 4.5 bits).
#: Only the gpu engine reads these (as floats); memory planning uses the model's
#: integer ``dtype_bytes``.
DTYPES = {"fp16": 2, "bf16": 2, "fp8": 1, "fp4": 4.25 / 8}

#: The low-precision dtypes and the peak field each needs (> 0) to be chosen.
LOW_PRECISION_PEAKS = {"fp8": "fp8_tensor_flops", "fp4": "fp4_tensor_flops"}

#: Vector-op kinds with their own bandwidth efficiency field.
VECTOR_KINDS = {OpKind.NORM: "norm_bandwidth_efficiency",
                OpKind.ACTIVATION: "activation_bandwidth_efficiency",
                OpKind.ELEMENTWISE: "elementwise_bandwidth_efficiency",
                OpKind.EMBEDDING: "embedding_bandwidth_efficiency",
                OpKind.SOFTMAX: "softmax_bandwidth_efficiency"}

#: Per-kind fixed time of a vector kernel (field names), as VECTOR_KINDS.
VECTOR_OVERHEADS = {OpKind.NORM: "norm_overhead", OpKind.ACTIVATION: "activation_overhead",
                    OpKind.ELEMENTWISE: "elementwise_overhead",
                    OpKind.EMBEDDING: "embedding_overhead", OpKind.SOFTMAX: "softmax_overhead"}

#: The fields :func:`~llmsim_nb.fidelity.calibration.calibrate` may fit.
EFFICIENCY_FIELDS = ("gemm_efficiency", "memory_efficiency", "attention_efficiency",
                     "kv_bandwidth_efficiency", "vector_efficiency",
                     "norm_bandwidth_efficiency", "activation_bandwidth_efficiency",
                     "elementwise_bandwidth_efficiency", "rotary_bandwidth_efficiency",
                     "embedding_bandwidth_efficiency", "softmax_bandwidth_efficiency")

GIB = 2 ** 30


def _check_number(name: str, value, *, positive: bool, at_most: float | None = None) -> None:
    """Raise unless ``GPUSpec.<name>`` is a finite real (not a bool) in the allowed range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
        ok = ok and (at_most is None or value <= at_most)
    if not ok:
        allowed = ("> 0" if positive else ">= 0") + ("" if at_most is None else
                                                      f" and <= {at_most}")
        raise ValueError(f"GPUSpec.{name}={value!r} must be a finite number {allowed}")


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One GPU (SI units), from its datasheet plus fitted efficiencies.

    Parameters
    ----------
    num_sms : int
        Streaming multiprocessors (A100: 108).
    tensor_flops : float
        Peak dense fp16/bf16 tensor-core FLOP/s with fp32 accumulation (A100:
        312e12). GeForce cards run fp32 accumulation at half their fp16-accumulate
        rate; PyTorch accumulates in fp32, so that is the figure to use.
    fp8_tensor_flops : float
        Peak dense fp8 tensor FLOP/s; 0 when the GPU has no fp8 tensor cores.
    fp4_tensor_flops : float
        Peak dense block-scaled fp4 tensor FLOP/s (Blackwell: MXFP4 / NVFP4);
        0 when the GPU has no fp4 tensor cores.
    vector_flops : float
        Peak fp32 CUDA-core FLOP/s (softmax, norms).
    memory_bytes : int
        Device memory.
    memory_bandwidth : float
        Peak DRAM bandwidth, B/s.
    l2_bytes : int
        L2 cache capacity: it absorbs the writes of kernels whose data fits
        (see *L2 write-back* in :mod:`llmsim_nb.engines.gpu`).
    l2_bandwidth : float
        L2-to-SM bandwidth, B/s: what feeds GEMM tiles their operands and what
        writes absorbed by the L2 cost. At least ``memory_bandwidth``.
    l2_usable_fraction : float
        Fraction in ``(0, 1]`` of ``l2_bytes`` a kernel's data can fill before
        its lines are evicted (0.7: an A100 80GB keeps L2 bandwidth up to a
        28 MB of its 40 MB L2 in te42kyfo/gpu-benches ``gpu-l2-cache``).
    dtype : {"fp16", "bf16", "fp8", "fp4"}
        Weight, activation-into-GEMM and KV-cache dtype (bytes per element in
        :data:`DTYPES`). ``fp8`` needs ``fp8_tensor_flops > 0``, ``fp4``
        ``fp4_tensor_flops > 0``; norms and activations stay 16-bit. At ``fp4``
        the attention kernel is timed at the fp4 peak too (as ``fp8`` times it
        at the fp8 peak), an upper bound: serving stacks run attention in
        bf16/fp8.
    gemm_efficiency : float
        Fraction of peak tensor FLOP/s a large, well-shaped GEMM reaches.
    memory_efficiency : float
        Fraction of DRAM bandwidth a weight-streaming (small ``m``) GEMM reaches.
    attention_efficiency : float
        Fraction of peak tensor FLOP/s FlashAttention reaches on computed tiles.
    kv_bandwidth_efficiency : float
        Fraction of DRAM bandwidth the attention kernel reaches reading K and V.
    vector_efficiency : float
        Fraction of CUDA-core FLOP/s vector kernels reach.
    norm_bandwidth_efficiency, activation_bandwidth_efficiency : float
    elementwise_bandwidth_efficiency, rotary_bandwidth_efficiency : float
    embedding_bandwidth_efficiency, softmax_bandwidth_efficiency : float
        Fraction of DRAM bandwidth each kind of vector kernel reaches over the
        op's minimum bytes (an unfused kernel making two passes reaches half;
        ``rotary`` is the elementwise rotary embedding, see
        :data:`~llmsim_nb.engines.gpu.vector.ROTARY_OPS`).
    gemm_exposed_fraction : float
        Fraction in ``[0, 1]`` of the shorter of a GEMM's compute and DRAM
        phases that is not overlapped with the longer one.
    kernel_overhead : float
        Seconds a GEMM kernel spends beyond its roofline time (launch latency on
        the GPU, the first DRAM round trip, the tail of the last wave).
    norm_overhead, activation_overhead, elementwise_overhead : float
    embedding_overhead, softmax_overhead : float
        The same for each kind of vector kernel (rotary embeddings are
        elementwise).
    launch_overhead : float
        Host seconds to issue one kernel; a shorter kernel waits for the next
        launch (0 models CUDA graphs, where the GPU replays launches itself).
    """

    num_sms: int = 108
    tensor_flops: float = 312e12
    fp8_tensor_flops: float = 0.0
    fp4_tensor_flops: float = 0.0
    vector_flops: float = 19.5e12
    memory_bytes: int = 80 * GIB
    memory_bandwidth: float = 2039e9
    l2_bytes: int = 40 * 2 ** 20
    l2_bandwidth: float = 7.0e12
    l2_usable_fraction: float = 0.7
    dtype: str = "fp16"
    gemm_efficiency: float = 0.8
    memory_efficiency: float = 0.8
    attention_efficiency: float = 0.6
    kv_bandwidth_efficiency: float = 0.8
    vector_efficiency: float = 0.5
    norm_bandwidth_efficiency: float = 0.8
    activation_bandwidth_efficiency: float = 0.8
    elementwise_bandwidth_efficiency: float = 0.8
    rotary_bandwidth_efficiency: float = 0.5
    embedding_bandwidth_efficiency: float = 0.5
    softmax_bandwidth_efficiency: float = 0.8
    gemm_exposed_fraction: float = 0.0
    kernel_overhead: float = 2e-6
    norm_overhead: float = 2e-6
    activation_overhead: float = 2e-6
    elementwise_overhead: float = 2e-6
    embedding_overhead: float = 2e-6
    softmax_overhead: float = 2e-6
    launch_overhead: float = 0.0

    def __post_init__(self) -> None:
        if (isinstance(self.num_sms, bool) or not isinstance(self.num_sms, (int, np.integer))
                or self.num_sms < 1):
            raise ValueError(f"GPUSpec.num_sms={self.num_sms!r} must be an integer >= 1")
        for name in ("tensor_flops", "vector_flops", "memory_bandwidth", "l2_bandwidth"):
            _check_number(name, getattr(self, name), positive=True)
        for name in LOW_PRECISION_PEAKS.values():
            _check_number(name, getattr(self, name), positive=False)
        if self.l2_bandwidth < self.memory_bandwidth:
            # The L2 sits in front of DRAM: it cannot be the slower of the two.
            raise ValueError(f"GPUSpec.l2_bandwidth={self.l2_bandwidth!r} must be >= "
                             f"memory_bandwidth={self.memory_bandwidth!r} (B/s)")
        _check_number("l2_usable_fraction", self.l2_usable_fraction, positive=True,
                      at_most=1.0)
        for name in ("memory_bytes", "l2_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPUSpec.{name}={value!r} must be an integer number of "
                                 "bytes >= 1")
        if self.dtype not in DTYPES:
            raise ValueError(f"GPUSpec.dtype={self.dtype!r} must be one of {sorted(DTYPES)}")
        peak = LOW_PRECISION_PEAKS.get(self.dtype)
        if peak is not None and getattr(self, peak) <= 0:
            raise ValueError(f"GPUSpec.dtype={self.dtype!r} needs {self.dtype} tensor cores "
                             f"({peak} > 0); this GPU has none, use fp16 or bf16")
        for name in EFFICIENCY_FIELDS:
            # An efficiency is a fraction of a peak: above 1 is not physical.
            _check_number(name, getattr(self, name), positive=True, at_most=1.0)
        _check_number("gemm_exposed_fraction", self.gemm_exposed_fraction, positive=False,
                      at_most=1.0)
        _check_number("kernel_overhead", self.kernel_overhead, positive=False)
        for name in VECTOR_OVERHEADS.values():
            _check_number(name, getattr(self, name), positive=False)
        _check_number("launch_overhead", self.launch_overhead, positive=False)

    @property
    def dtype_bytes(self) -> float:
        """Bytes per weight / KV element (0.53125 at ``fp4``: not always an integer)."""
        return DTYPES[self.dtype]

    @property
    def peak_matmul_flops(self) -> float:
        """Peak dense tensor FLOP/s at ``dtype``."""
        peak = LOW_PRECISION_PEAKS.get(self.dtype)
        return self.tensor_flops if peak is None else float(getattr(self, peak))

    @property
    def peak_vector_flops(self) -> float:
        return self.vector_flops

    def efficiencies(self) -> dict[str, float]:
        """The fitted fractions, by field name."""
        return {name: float(getattr(self, name)) for name in EFFICIENCY_FIELDS}


__all__ = ["DTYPES", "EFFICIENCY_FIELDS", "GIB", "GPUSpec", "LOW_PRECISION_PEAKS", "VECTOR_KINDS",
           "VECTOR_OVERHEADS"]

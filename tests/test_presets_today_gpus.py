"""GPU presets of today's accelerators: B200, GB200, RTX PRO 6000, H20, MI300X.

The datasheet figures are pinned exactly (a preset edit must be deliberate), the
presets build end to end, their memory sizes a KV cache, a memory-bound decode
step follows the bandwidth ratio the model implies, and the fp4 peak field and
dtype are validated like their fp8 counterparts.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.cli.main import main
from llmsim_nb.engines.gpu import DTYPES, GPUEngine, GPUSpec
from llmsim_nb.engines.gpu.spec import VECTOR_OVERHEADS
from llmsim_nb.engines.hardware import get_hardware, list_hardware, make_engine
from llmsim_nb.models import decoder_template
from llmsim_nb.models.catalog import get_model
from llmsim_nb.models.ops import BatchShape, OpKind
from llmsim_nb.models.template import OpTemplate
from llmsim_nb.network.interconnect import get_interconnect, interconnect_topology
from llmsim_nb.system import build_instance
from llmsim_nb.system.memory_plan import MemoryPlan
from llmsim_nb.testing import check_engine, make_batch

MIB = 2 ** 20
GIB = 2 ** 30

#: name -> (num_sms, tensor, fp8, fp4, fp32 vector FLOP/s, memory bytes,
#: memory B/s, L2 bytes, interconnect, host link), as in the presets' sources.
DATASHEET = {
    "b200": (148, 2.25e15, 4.5e15, 9.0e15, 75e12, 183359 * MIB, 7.7e12,
             int(126.5 * MIB), "nvlink5", "pcie5"),
    "gb200": (148, 2.5e15, 5.0e15, 10.0e15, 80e12, 189471 * MIB, 8.0e12,
              int(126.5 * MIB), "nvl72", "nvlink-c2c"),
    "rtx-pro-6000": (188, 500e12, 1000e12, 2000e12, 125e12, 97887 * MIB, 1792e9,
                     128 * MIB, "pcie5", "pcie5"),
    "h20": (78, 148e12, 296e12, 0, 44e12, 96 * GIB, 4.0e12, 60 * MIB, "nvlink4", "pcie5"),
    "mi300x": (304, 1307.4e12, 2614.9e12, 0, 163.4e12, 196592 * MIB, 5.3e12, 256 * MIB,
               "xgmi", "pcie5"),
}
#: Variants: name -> (base preset, dtype).
VARIANTS = {"b200-fp8": ("b200", "fp8"), "b200-fp4": ("b200", "fp4"),
            "gb200-fp8": ("gb200", "fp8"), "gb200-fp4": ("gb200", "fp4"),
            "rtx-pro-6000-fp8": ("rtx-pro-6000", "fp8"),
            "rtx-pro-6000-fp4": ("rtx-pro-6000", "fp4"),
            "h20-fp8": ("h20", "fp8"), "mi300x-fp8": ("mi300x", "fp8")}
NEW = sorted(DATASHEET) + sorted(VARIANTS)


def gemm(m: int, k: int, n: int):
    return OpTemplate("g", OpKind.GEMM, weight_k=k, weight_n=n).instantiate(
        BatchShape.from_lists([1], [0]), 2, num_rows=m)


# ----------------------------------------------------------------- loading
@pytest.mark.parametrize("name", NEW)
def test_every_new_preset_loads_builds_and_conforms(name):
    preset = get_hardware(name)
    assert preset.engine == "gpu" and preset.description and preset.source
    check_engine(make_engine(name))
    parts = build_instance(SimConfig.from_flags(model_name="gpt2", hardware=name, npu_num=2,
                                                parallel="tensor"))
    assert parts.topology == interconnect_topology(preset.interconnect, 2)
    host = get_interconnect(preset.host_link)
    assert (parts.network.host_bandwidth, parts.network.host_latency) == (
        host.link_bandwidth, host.nic_latency)


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_datasheet_figures_are_what_the_yaml_says(name):
    preset = get_hardware(name)
    s = preset.spec
    got = (s.num_sms, s.tensor_flops, s.fp8_tensor_flops, s.fp4_tensor_flops, s.vector_flops,
           s.memory_bytes, s.memory_bandwidth, s.l2_bytes, preset.interconnect,
           preset.host_link)
    assert got == DATASHEET[name]
    assert s.dtype == "fp16"
    # What is carried over from the A100 fit is said, and is the A100 fit.
    assert "Efficiencies: A100 calibration" in preset.source
    a100 = get_hardware("a100-80gb-calibrated").spec
    assert s.efficiencies() == a100.efficiencies()
    assert (s.kernel_overhead, s.gemm_exposed_fraction) == (a100.kernel_overhead,
                                                            a100.gemm_exposed_fraction)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_change_only_the_dtype(name):
    base, dtype = VARIANTS[name]
    variant, parent = get_hardware(name), get_hardware(base)
    assert variant.spec == dataclasses.replace(parent.spec, dtype=dtype)
    assert (variant.interconnect, variant.host_link) == (parent.interconnect,
                                                         parent.host_link)
    peak = {"fp8": parent.spec.fp8_tensor_flops, "fp4": parent.spec.fp4_tensor_flops}[dtype]
    assert variant.spec.peak_matmul_flops == peak > 0


def test_interconnects_of_the_new_presets():
    # NVLink 5: 18 links x 50 GB/s each way = 1.8 TB/s bidirectional per GPU.
    for name in ("nvlink5", "nvl72"):
        link = get_interconnect(name)
        assert 2 * link.link_bandwidth * link.links_per_device == 1.8e12
    # MI300X: 7 Infinity Fabric links of 128 GB/s (both ways) = 896 GB/s.
    xgmi = get_interconnect("xgmi")
    assert (xgmi.links_per_device, 2 * xgmi.link_bandwidth) == (7, 128e9)
    assert 2 * xgmi.link_bandwidth * xgmi.links_per_device == 896e9
    # NVLink-C2C: 900 GB/s both ways per Grace CPU, shared by its two GPUs.
    assert 2 * 2 * get_interconnect("nvlink-c2c").link_bandwidth == 900e9
    # The NVL72 domain: all 72 GPUs of the rack behind one switch dimension.
    rack = interconnect_topology("nvl72", 72)
    (dim,) = rack.dimensions
    assert (dim.kind, dim.size, dim.injection_bandwidth) == ("Switch", 72, 900e9)
    # The RTX PRO 6000 has no NVLink: GPUs talk over PCIe 5.0.
    assert get_hardware("rtx-pro-6000").interconnect == "pcie5"


# ----------------------------------------------------------------- memory
def _kv_blocks(hardware: str) -> tuple[int, Simulator]:
    sim = Simulator(SimConfig.from_flags(model_name="llama-3.1-8b", hardware=hardware))
    return sim.kv_cache.num_blocks, sim


def test_memory_sizes_a_larger_kv_cache_on_b200_than_on_h100():
    model = get_model("llama-3.1-8b")
    block = 16 * model.kv_bytes_per_token()
    blocks = {}
    for hw in ("h100-sxm", "b200"):
        blocks[hw], sim = _kv_blocks(hw)
        spec = get_hardware(hw).spec
        plan = MemoryPlan.build(model, decoder_template(model), sim.layout,
                                spec.memory_bytes, 0.05)
        assert blocks[hw] == plan.num_kv_blocks(16)
    assert blocks["b200"] > blocks["h100-sxm"]
    # Same weights and the same 5% reserve: the extra blocks are 95% of the extra
    # memory (183359 MiB - 80 GiB), in 16-token blocks of 128 KiB per token.
    extra = 0.95 * (get_hardware("b200").spec.memory_bytes
                    - get_hardware("h100-sxm").spec.memory_bytes) / block
    assert blocks["b200"] - blocks["h100-sxm"] == pytest.approx(extra, abs=1.5)


# ----------------------------------------------------------------- decode
def _decode(engine: GPUEngine, blocks, kv: float) -> tuple[float, float, float]:
    """(modelled seconds, streamed bytes / efficiency / bandwidth, fixed kernel time)
    of one iteration; ``kv`` is the bytes of cached K and V the step reads."""
    s = engine.spec
    total = sum(engine.simulate(b).total_latency for b in blocks)
    weights = fixed = 0.0
    for block in blocks:
        for op in block.ops:
            if op.kind is OpKind.GEMM:
                weights += op.weight_bytes * block.repeat
                fixed += s.kernel_overhead * block.repeat
            elif not op.kind.is_attention:  # the fused attention kernel pays none
                kind = op.kind if op.kind in VECTOR_OVERHEADS else OpKind.ELEMENTWISE
                fixed += getattr(s, VECTOR_OVERHEADS[kind]) * block.repeat
    stream = (weights / s.memory_efficiency + kv / s.kv_bandwidth_efficiency) \
        / s.memory_bandwidth
    return total, stream, fixed


def test_decode_on_b200_follows_the_bandwidth_ratio_the_model_implies():
    """A decode step of 16 requests at context 1024 (Llama-3.1-8B, bf16).

    The model makes it memory bound: every weight and every cached K/V is read
    once from DRAM (``memory_efficiency`` / ``kv_bandwidth_efficiency``, equal on
    both GPUs: the A100 fit), and every non-fused kernel adds its fixed time,
    which does not depend on the GPU. So ``A = bytes / (e * BW) + F`` is a lower
    bound of each step and the expected speed-up is ``R0 = A_h100 / A_b200``,
    below the bare bandwidth ratio 7.7 / 3.35 = 2.30 because ``F`` (about 1.3 ms,
    40 kernels a layer) is paid on both. What ``A`` leaves out is small and of
    the same sign on both GPUs: activations, the exposed share
    (``gemm_exposed_fraction``) of the tensor-core phase, the L2 write-back
    terms. With residuals ``x = T / A - 1`` in ``[0, 0.1]`` on both,
    ``R / R0 = (1 + x_h100) / (1 + x_b200)`` stays within 10%; the two residuals
    are close (about 6% each), so 2% holds.
    """
    model = get_model("llama-3.1-8b")
    blocks = decoder_template(model).instantiate(make_batch([1] * 16, 1024))
    kv = 16 * (1024 + 1) * model.kv_bytes_per_token()  # each request reads its context
    h100, b200 = (_decode(make_engine(hw), blocks, kv) for hw in ("h100-sxm", "b200"))
    residual = []
    for total, stream, fixed in (h100, b200):
        lower = stream + fixed
        assert total >= lower * (1 - 1e-9)
        residual.append(total / lower - 1)
        assert 0 <= residual[-1] <= 0.1
    expected = (h100[1] + h100[2]) / (b200[1] + b200[2])
    ratio = h100[0] / b200[0]
    bandwidth_ratio = (get_hardware("b200").spec.memory_bandwidth
                       / get_hardware("h100-sxm").spec.memory_bandwidth)
    assert 1.0 < ratio < bandwidth_ratio
    assert abs(ratio / expected - 1) <= max(residual)
    assert ratio == pytest.approx(expected, rel=0.02)
    assert 1.8 < expected < 1.95  # 7.48 ms / 3.99 ms for these figures


# ----------------------------------------------------------------- fp4
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), True, "9 PFLOPS"])
def test_fp4_peak_is_validated_by_name(value):
    with pytest.raises(ValueError, match="fp4_tensor_flops"):
        GPUSpec(fp4_tensor_flops=value)


def test_fp4_dtype_needs_fp4_tensor_cores():
    for name in ("h100-sxm", "mi300x", "a100-80gb"):
        with pytest.raises(ValueError, match="fp4_tensor_flops"):
            dataclasses.replace(get_hardware(name).spec, dtype="fp4")
    assert GPUSpec().fp4_tensor_flops == 0  # no fp4 unless a preset says so


def test_fp4_gemm_uses_the_fp4_peak_and_4_25_bit_operands():
    assert DTYPES["fp4"] == 0.53125  # MXFP4: 4-bit elements + an 8-bit scale per 32
    fp8, fp4 = make_engine("b200-fp8"), make_engine("b200-fp4")
    assert fp4.spec.dtype_bytes == 4.25 / 8
    skinny, big = gemm(1, 8192, 8192), gemm(8192, 8192, 8192)
    # Operands at 4.25 bits, the 16-bit output written once.
    assert fp4.gemm_bytes(skinny)[0] == (8192 + 8192 * 8192) * 0.53125 + 8192 * 2
    # Compute bound: close to twice the fp8 rate (the L2 operand feed takes a
    # few percent back at this tile intensity).
    assert 0.5 <= fp4.gemm_compute(8192, 8192, 8192)[0] / fp8.gemm_compute(
        8192, 8192, 8192)[0] < 0.55
    assert fp4.time_op(big).total < 0.6 * fp8.time_op(big).total
    # Memory bound: the weight stream shrinks to 4.25 / 8 bits of fp8's (the
    # 5.4 us kernel overhead, equal on both, is not part of it).
    stream4, stream8 = (e.time_op(skinny).memory_latency[0] for e in (fp4, fp8))
    assert stream4 / stream8 == pytest.approx(0.53125, rel=0.01)
    util = fp4.utilisation(big)
    assert 0.5 * fp4.spec.gemm_efficiency < util <= fp4.spec.gemm_efficiency
    assert math.isclose(fp4.spec.peak_matmul_flops, 9.0e15)


# ----------------------------------------------------------------- CLI
def test_llmsim_list_shows_the_new_presets(capsys):
    assert main(["list", "hardware"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_hardware()
    by_name = {line.split()[0]: " ".join(line.split()[1:]) for line in lines}
    assert set(NEW) <= set(by_name)
    assert by_name["b200"] == "gpu engine, 179.1 GiB, 2250 TFLOP/s fp16 peak"
    assert by_name["b200-fp4"] == "gpu engine, 179.1 GiB, 9000 TFLOP/s fp4 peak"
    assert by_name["rtx-pro-6000-fp8"] == "gpu engine, 95.59 GiB, 1000 TFLOP/s fp8 peak"
    assert by_name["h20"] == "gpu engine, 96 GiB, 148 TFLOP/s fp16 peak"
    assert by_name["mi300x"] == "gpu engine, 192 GiB, 1307 TFLOP/s fp16 peak"


def test_the_preset_table_lists_every_gpu_preset():
    table = (Path(__file__).resolve().parents[1] / "docs" / "hardware-presets.md").read_text()
    for name in list_hardware():
        if get_hardware(name).engine == "gpu":
            assert f"| `{name}` |" in table, name

"""The serving stack: what a serving engine's host side adds to the device's time.

A :class:`ServingStack` (``--serving_stack``, presets in
``presets/serving_stacks.yaml``) prices the work between the kernels:

*Host time per step* (scheduling, preparing inputs, sampling, handing outputs
on), a fixed part and parts per scheduled request and per scheduled token::

    host = step_latency + request_latency * num_requests + token_latency * num_tokens

*Launches*: a step that runs eagerly issues every kernel from the host, and the
GPU cannot finish before the last launch::

    device = max(device, num_kernels * launch_latency)          # eager steps

*CUDA graphs*: a decode-only step (every request computes one token) of at most
``max(cuda_graph_sizes)`` requests replays a captured graph: no launch cost, but
the batch is padded to the next captured size and the padded rows are computed
(:meth:`ServingStack.device_batch` adds them: one query token, no context, no
logits, ids ``-1, -2, ...``). Larger or mixed steps run eagerly, as vLLM does.

*Overlap* (vLLM V1 async scheduling, SGLang's overlap scheduler): the host
prepares step n+1 while the device runs step n, so::

    step = max(host, device)   with overlap
    step = host + device       without

*Per request*: ``arrival_latency`` (API, tokenising) passes before a request
can be scheduled, ``completion_latency`` (detokenising, the response) after its
last token; they shift an unloaded request's TTFT by ``arrival_latency`` and
its end-to-end latency by ``arrival_latency + completion_latency``.

The ``none`` stack has every term 0 and no graphs: a step takes exactly the
device's time (the original's behaviour, the default on NPU presets).
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left
from dataclasses import dataclass, fields

import numpy as np

from .._presets import preset_entries
from ..config.fields import did_you_mean
from ..models.ops import BatchShape

#: Largest per-step or per-request host term accepted, s: a serving stack that
#: spends a second of host time per step or request is a unit error.
MAX_HOST_LATENCY = 1.0
#: Largest captured CUDA-graph batch accepted (vLLM captures at most 512 by default).
MAX_GRAPH_SIZE = 2 ** 16
_LATENCIES = ("step_latency", "request_latency", "token_latency", "launch_latency",
              "arrival_latency", "completion_latency")


@dataclass(frozen=True, slots=True)
class ServingStack:
    """A serving engine's host costs (SI units; formulas in the module docstring).

    Parameters
    ----------
    name : str
    description, source : str
        What it models and where its figures come from.
    step_latency, request_latency, token_latency : float
        Host seconds per step: fixed, per scheduled request, per scheduled token.
    launch_latency : float
        Host seconds to launch one kernel in an eager step.
    cuda_graph_sizes : tuple of int
        Captured batch sizes, strictly increasing; ``()`` = every step eager.
    overlap : bool
        Host work overlaps the device (a step takes ``max``, not the sum).
    arrival_latency, completion_latency : float
        Per request, before it can be scheduled and after its last token, s.
    """

    name: str
    description: str = ""
    source: str = ""
    step_latency: float = 0.0
    request_latency: float = 0.0
    token_latency: float = 0.0
    launch_latency: float = 0.0
    cuda_graph_sizes: tuple[int, ...] = ()
    overlap: bool = False
    arrival_latency: float = 0.0
    completion_latency: float = 0.0

    def __post_init__(self) -> None:
        where = f"serving stack {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"serving stack name {self.name!r} must be a non-empty string")
        for name in _LATENCIES:
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and 0 <= value <= MAX_HOST_LATENCY):
                raise ValueError(f"{where}: {name}={value!r} must be a number of seconds in "
                                 f"0 .. {MAX_HOST_LATENCY:g}")
        sizes = self.cuda_graph_sizes
        if not isinstance(sizes, tuple) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                and 1 <= s <= MAX_GRAPH_SIZE for s in sizes):
            raise ValueError(f"{where}: cuda_graph_sizes={sizes!r} must be a tuple of batch "
                             f"sizes in 1 .. {MAX_GRAPH_SIZE}")
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"{where}: cuda_graph_sizes={list(sizes)} must increase strictly")
        if not isinstance(self.overlap, bool):
            raise ValueError(f"{where}: overlap={self.overlap!r} must be true or false")

    @property
    def is_none(self) -> bool:
        """Whether every term is 0 and no step is graphed (results are the device's)."""
        # The terms of _LATENCIES spelled out: this runs twice a step.
        return not (self.cuda_graph_sizes or self.step_latency or self.request_latency
                    or self.token_latency or self.launch_latency or self.arrival_latency
                    or self.completion_latency)

    # ------------------------------------------------------------- the terms
    def host_latency(self, num_requests: int, num_tokens: int) -> float:
        """Host seconds of one step of ``num_requests`` requests and ``num_tokens`` tokens."""
        return (self.step_latency + self.request_latency * num_requests
                + self.token_latency * num_tokens)

    def graph_size(self, batch: BatchShape) -> int | None:
        """The captured size a step replays (None: the step runs eagerly)."""
        n = len(batch.request_ids)
        if not self.cuda_graph_sizes or not n or n > self.cuda_graph_sizes[-1]:
            return None
        if batch.num_tokens != n:  # a prompt or a chunk: not a uniform decode step
            return None
        # The smallest captured size >= n (the sizes increase strictly).
        return self.cuda_graph_sizes[bisect_left(self.cuda_graph_sizes, n)]

    def device_batch(self, batch: BatchShape) -> BatchShape:
        """``batch`` as the device computes it: padded to its captured size."""
        last = _LAST_DEVICE_BATCH[0]  # one tuple, read once (threads may share the stack)
        if last[1] is batch and last[0] is self:
            # Asked again for the same batch (the instance, then its power
            # record): both objects are immutable, so the padding holds.
            return last[2]
        size = self.graph_size(batch)
        pad = 0 if size is None else size - len(batch.request_ids)
        if not pad:
            return batch
        ids, ones, zeros = _padding(pad)
        cat = np.concatenate
        # The padded rows are valid by construction (one query token, no
        # context), so the batch is built without the constructor's checks;
        # its token count is the scheduled one plus a token per padded row.
        padded = BatchShape.trusted(cat([batch.request_ids, ids]),
                                    cat([batch.num_query_tokens, ones]),
                                    cat([batch.num_context_tokens, zeros]),
                                    cat([batch.num_logit_tokens, zeros]),
                                    batch.num_tokens + int(pad))
        _LAST_DEVICE_BATCH[0] = (self, batch, padded)
        return padded

    def iteration_latency(self, device_latency: float, batch: BatchShape,
                          num_kernels: int) -> float:
        """Seconds of one step whose (padded) device work takes ``device_latency``.

        ``batch`` is the scheduled (unpadded) batch; ``num_kernels`` the kernels
        one device launches in an eager step.
        """
        if self.is_none:
            return device_latency
        return self._latency(device_latency, batch, num_kernels, self.graph_size(batch) is None)

    def _latency(self, device: float, batch: BatchShape, num_kernels: int, eager: bool) -> float:
        """:meth:`iteration_latency` of a stack with host terms, the step eager or not."""
        if eager:
            device = max(device, num_kernels * self.launch_latency)
        host = self.host_latency(len(batch.request_ids), batch.num_tokens)
        return max(host, device) if self.overlap else host + device

    def step(self, device_latency: float, batch: BatchShape, stack) -> float:
        """:meth:`iteration_latency` of a step timed by ``stack`` (an
        :class:`~llmsim_nb.engines.stack.ExecutionStack`: its sharded template
        and pipeline stages give the kernels launched)."""
        if self.is_none:
            return device_latency
        eager = self.graph_size(batch) is None  # asked once a step, not twice
        kernels = 0
        if self.launch_latency and eager:
            kernels = _KERNELS.get(stack)
            if kernels is None:  # a constant of the stack: counted once, not every step
                kernels = _KERNELS[stack] = num_kernels(stack.sharded, stack.layout.pp)
        return self._latency(device_latency, batch, kernels, eager)

    def finish(self, table, finished: list) -> list:
        """Add ``completion_latency`` to the ``finished_at`` of the requests just
        finished (``finished``: their states, from the scheduler's ``update``;
        ``table``: its request table); the KV blocks were freed at the step's end,
        since detokenising and responding run off the device. Returns ``finished``."""
        if self.completion_latency and finished:
            table.finished_at[[s.request_id for s in finished]] += self.completion_latency
        return finished

    def summary(self) -> str:
        """One line: the name and its figures (``llmsim list serving-stacks``)."""
        if self.is_none:
            return f"{self.name}: no host term (steps take the device's time)"
        graphs = (f"graphs <= {self.cuda_graph_sizes[-1]}" if self.cuda_graph_sizes
                  else "eager")
        return (f"{self.name}: step {self.step_latency * 1e3:g} ms + "
                f"{self.request_latency * 1e6:g} us/request + {self.token_latency * 1e6:g} "
                f"us/token, launch {self.launch_latency * 1e6:g} us, {graphs}, "
                f"{'overlapped' if self.overlap else 'serial'}, request +"
                f"{self.arrival_latency * 1e3:g}/+{self.completion_latency * 1e3:g} ms")


def _padding(pad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The padded rows' ids (``-1, -2, ...``), ones and zeros, ``pad`` of each:
    read-only views of arrays kept at the longest padding asked for (at most
    ``MAX_GRAPH_SIZE``), so a step copies them instead of building them."""
    if pad > len(_PAD[0]):
        n = max(pad, min(2 * len(_PAD[0]), MAX_GRAPH_SIZE))
        _PAD[:] = (-1 - np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64),
                   np.zeros(n, dtype=np.int64))
        for arr in _PAD:
            arr.setflags(write=False)
    ids, ones, zeros = _PAD
    return ids[:pad], ones[:pad], zeros[:pad]


#: The last padded batch, ``[(stack, scheduled batch, padded batch)]``, held
#: (strong references, compared by identity) so that a second ask for the same
#: batch gets the same object instead of a rebuilt one.
_LAST_DEVICE_BATCH: list = [(None, None, None)]

#: The arrays of :func:`_padding` (ids, ones, zeros), never written.
_PAD: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * 3

#: Kernels per eager step of each execution stack in use (see :meth:`ServingStack.step`).
_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def num_kernels(template, pipeline_stages: int = 1) -> int:
    """Kernels one device launches per eager step of ``template`` (a sharded
    :class:`~llmsim_nb.models.template.BlockTemplate`): every op of the
    embedding and head, every non-attention op of every layer, and one fused
    attention kernel per layer; a pipeline stage launches its share of layers."""
    counts = template.op_layer_counts(0, template.num_layers)
    attention = [c for t, c in zip(template.block, counts.tolist()) if t.kind.is_attention]
    layers = sum(c for t, c in zip(template.block, counts.tolist()) if not t.kind.is_attention)
    layers += max(attention, default=0.0)
    return int(len(template.embedding) + len(template.head)
               + math.ceil(layers / max(1, pipeline_stages)))


#: The stack with no host term (what ``none`` is, without reading the presets).
NO_STACK = ServingStack("none")

# ------------------------------------------------------------------ registry
_REGISTRY: dict[str, ServingStack] = {}
_FIELDS = {f.name for f in fields(ServingStack)} - {"name"}


def _load() -> dict[str, ServingStack]:
    if not _REGISTRY:
        for name, entry in preset_entries("serving_stacks.yaml").items():
            unknown = sorted(set(entry) - _FIELDS)
            if unknown:
                raise ValueError(f"presets/serving_stacks.yaml: {name!r} has unknown key(s) "
                                 f"{unknown}; allowed: {sorted(_FIELDS)}")
            values = dict(entry)
            values["cuda_graph_sizes"] = tuple(values.get("cuda_graph_sizes") or ())
            for key in _LATENCIES:
                if key in values and isinstance(values[key], int) \
                        and not isinstance(values[key], bool):
                    values[key] = float(values[key])
            _REGISTRY[name] = ServingStack(name=name, **values)
    return _REGISTRY


def register_serving_stack(stack: ServingStack, *, replace: bool = False) -> ServingStack:
    """Make ``stack`` selectable by its name (``--serving_stack NAME``)."""
    if not isinstance(stack, ServingStack):
        raise ValueError(f"register_serving_stack needs a ServingStack, got "
                         f"{type(stack).__name__}")
    registry = _load()
    if stack.name in registry and not replace and registry[stack.name] != stack:
        raise ValueError(f"serving stack {stack.name!r} is registered already; pass "
                         f"replace=True to replace it")
    registry[stack.name] = stack
    return stack


def list_serving_stacks() -> list[str]:
    """Names of the registered serving stacks (the presets first)."""
    return list(_load())


def get_serving_stack(name: str) -> ServingStack:
    """The registered stack ``name``; a one-line ValueError naming the flag otherwise."""
    registry = _load()
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"serving_stack={name!r} is not one of {['auto', *registry]}"
                         f"{did_you_mean(name, list(registry)) if isinstance(name, str) else ''}")
    return registry[name]


def resolve_serving_stack(name: str, gpu: bool) -> ServingStack:
    """``auto`` is ``vllm-v1`` on a GPU engine and ``none`` elsewhere (so the
    original's NPU results do not move); any other name is looked up."""
    if name == "auto":
        name = "vllm-v1" if gpu else "none"
    return get_serving_stack(name)


__all__ = ["MAX_HOST_LATENCY", "NO_STACK", "ServingStack", "get_serving_stack",
           "list_serving_stacks", "num_kernels", "register_serving_stack",
           "resolve_serving_stack"]

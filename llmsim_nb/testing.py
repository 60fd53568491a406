"""Shared test utilities: the engine conformance check and small factories.

:func:`check_engine` is the one check every engine must pass (in the spirit of
scikit-learn's ``check_estimator``). It times blocks of a tiny model for a few
batch shapes and raises :class:`ConformanceError`, naming the failed check, the
block, the op and the batch, on the first violation of the engine contract:

- ``simulate`` returns a :class:`~llmsim_nb.engines.base.BlockTiming` for the
  same block, with the engine's registry name and one :class:`OpTiming` per op;
- every timing array is 1-D float with one entry per op instance;
- all latencies are finite and ``>= 0``, and
  ``latency >= max(compute_latency, memory_latency)``;
- timing is deterministic (two calls give equal arrays) and does not mutate
  the block's ops;
- a weight GEMM never gets cheaper with more tokens;
- per-request attention latency never falls as the context grows, and the
  longest context costs strictly more than the shortest;
- an op instance with zero rows costs a finite, non-negative time;
- unless the engine says ``independent_instances = False``, instances are
  timed independently: each instance of a batched op costs exactly (to the
  bit) what it costs alone, which is what lets the reuse cache answer per
  instance, tabulate by length and time ranges at once;
- :meth:`~llmsim_nb.engines.base.Engine.op_totals` (the path the simulator
  takes) equals ``simulate(block).op_latency``, also for a model of two kinds
  of layer with routed experts and a sliding window (:func:`tiny_moe`), also through a
  :class:`~llmsim_nb.engines.reuse.ReuseEngine` (pure engines only: an
  engine with side effects is wrapped too, but its counters would differ).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .engines.base import BlockTiming, Engine, OpTiming
from .models.ops import BatchShape, Op, OpBlock, OpKind
from .models.spec import ModelSpec
from .models.decoder import decoder_template

#: Absolute slack (seconds) for ``latency >= max(compute, memory)``: float
#: rounding of sums of nanosecond-scale terms, far below any modelled effect.
LATENCY_EPS = 1e-15

_OP_ARRAYS = ("m", "n", "k", "flops", "bytes_read", "bytes_written")


class ConformanceError(Exception):
    """An engine broke the contract that :func:`check_engine` verifies."""


def tiny_model(name: str = "tiny-gpt") -> ModelSpec:
    """A 2-layer GPT-style model (d=64, 4 heads, ffn 256, vocab 1000) for fast tests."""
    return ModelSpec(name, num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=4,
                     ffn_hidden_size=256, vocab_size=1000, max_seq_len=4096)


def tiny_llama(name: str = "tiny-llama") -> ModelSpec:
    """A 2-layer LLaMA-style model (rope, rmsnorm, SwiGLU, 2 KV heads) for fast tests."""
    return ModelSpec(name, num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2,
                     ffn_hidden_size=192, vocab_size=1000, max_seq_len=4096,
                     activation="swiglu", norm="rmsnorm", position="rope", bias=False,
                     tied_embeddings=False)


def tiny_moe(name: str = "tiny-moe") -> ModelSpec:
    """A 2-layer model of two kinds of layer: a dense layer over a 16-token
    sliding window, then a full-attention MoE layer (8 experts, top-2, one
    shared expert), with explicit head size and q/k norms."""
    from .models.moe_spec import MoESpec
    return ModelSpec(name, num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2,
                     ffn_hidden_size=192, vocab_size=1000, max_seq_len=4096,
                     activation="swiglu", norm="rmsnorm", position="rope", bias=False,
                     tied_embeddings=False, head_dim=32, qk_norm=True,
                     layer_types=("sliding", "full"), sliding_window=16,
                     moe=MoESpec(num_experts=8, num_experts_per_token=2, expert_ffn_size=48,
                                 num_shared_experts=1, shared_expert_ffn_size=32,
                                 moe_layers=(1,)))


def with_experts(batch: BatchShape, num_experts: int, top_k: int, seed: int = 0) -> BatchShape:
    """``batch`` with uniformly routed tokens per expert (a fixed draw)."""
    from .models.expert_routing import UniformRouting
    drawn = UniformRouting(num_experts, top_k).draw(batch.num_tokens, 1,
                                                    np.random.default_rng(seed))[0]
    return BatchShape(batch.request_ids, batch.num_query_tokens, batch.num_context_tokens,
                      batch.num_logit_tokens, expert_tokens=drawn)


def make_batch(query: Sequence[int] | int, context: Sequence[int] | int = 0) -> BatchShape:
    """A :class:`BatchShape` from per-request query and context token counts.

    Scalars broadcast: ``make_batch([1] * 8, 100)`` is eight decode requests
    at context 100.
    """
    q = np.atleast_1d(np.asarray(query, dtype=np.int64))
    c = np.broadcast_to(np.asarray(context, dtype=np.int64), q.shape).copy()
    return BatchShape.from_lists(q, c)


def _standard_batches() -> dict[str, BatchShape]:
    rng = np.random.default_rng(0)
    return {
        "prefill": make_batch([16, 8], [0, 0]),
        "decode": make_batch([1, 1, 1], [10, 50, 100]),
        "mixed": make_batch([12, 1, 1], [0, 30, 7]),
        "one_request": make_batch([1], [0]),
        "64_requests": make_batch([1] * 60 + [5, 9, 17, 33],
                                  rng.integers(0, 300, size=64)),
    }


def _fail(engine: Engine, check: str, where: str, detail: str) -> ConformanceError:
    return ConformanceError(f"engine {engine.name!r} failed check {check!r} for {where}: "
                            f"{detail}")


def _snapshot(block: OpBlock) -> list[tuple[np.ndarray, ...]]:
    return [tuple(np.array(getattr(op, attr), copy=True) for attr in _OP_ARRAYS)
            for op in block.ops]


def _check_timing(engine: Engine, timing: OpTiming, op: Op, where: str) -> None:
    if not isinstance(timing, OpTiming):
        raise _fail(engine, "returns OpTiming", where, f"got {type(timing).__name__}")
    arrays = {"latency": timing.latency, "compute_latency": timing.compute_latency,
              "memory_latency": timing.memory_latency}
    for label, arr in arrays.items():
        if not isinstance(arr, np.ndarray) or arr.ndim != 1:
            raise _fail(engine, "1-D arrays", where, f"{label} is not a 1-D ndarray")
        if arr.shape[0] != op.num_instances:
            raise _fail(engine, "one entry per instance", where,
                        f"{label} has {arr.shape[0]} entries, op has {op.num_instances}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise _fail(engine, "float arrays", where, f"{label} has dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise _fail(engine, "finite", where, f"{label} = {arr}")
        if np.any(arr < 0):
            raise _fail(engine, "non-negative", where, f"{label} min = {arr.min()!r}")
    bound = np.maximum(timing.compute_latency, timing.memory_latency)
    if np.any(timing.latency < bound - LATENCY_EPS):
        i = int(np.argmax(bound - timing.latency))
        raise _fail(engine, "latency >= max(compute, memory)", where,
                    f"instance {i}: latency {timing.latency[i]!r} < {bound[i]!r}")


def _check_block(engine: Engine, block: OpBlock, label: str) -> BlockTiming:
    before = _snapshot(block)
    result = engine.simulate(block)
    where = f"block {block.name!r} (batch {label!r})"
    for op, old, new in zip(block.ops, before, _snapshot(block)):
        for attr, a, b in zip(_OP_ARRAYS, old, new):
            if not np.array_equal(a, b):
                raise _fail(engine, "does not mutate ops", f"op {op.name!r} in {where}",
                            f"{attr} changed during simulate")
    if not isinstance(result, BlockTiming):
        raise _fail(engine, "returns BlockTiming", where, f"got {type(result).__name__}")
    if result.block is not block:
        raise _fail(engine, "same block", where, "BlockTiming.block is not the block given")
    if result.engine != engine.name:
        raise _fail(engine, "engine name", where, f"BlockTiming.engine = {result.engine!r}")
    if len(result.ops) != len(block.ops):
        raise _fail(engine, "one OpTiming per op", where,
                    f"{len(result.ops)} timings for {len(block.ops)} ops")
    for op, timing in zip(block.ops, result.ops):
        _check_timing(engine, timing, op, f"op {op.name!r} in {where}")
    again = engine.simulate(block)
    for op, first, second in zip(block.ops, result.ops, again.ops):
        for attr in ("latency", "compute_latency", "memory_latency"):
            if not np.array_equal(getattr(first, attr), getattr(second, attr)):
                raise _fail(engine, "deterministic", f"op {op.name!r} in {where}",
                            f"{attr} differs between two calls")
    return result


def _check_gemm_monotone(engine: Engine, spec: ModelSpec) -> None:
    template = decoder_template(spec)
    tokens = (1, 2, 8, 64, 200, 1000)
    per_op: dict[str, list[float]] = {}
    for t in tokens:
        _, block, _ = template.instantiate(make_batch([t], [0]))
        timing = engine.simulate(block)
        for op, op_timing in zip(block.ops, timing.ops):
            if op.kind is OpKind.GEMM:
                per_op.setdefault(op.name, []).append(op_timing.total)
    for name, latencies in per_op.items():
        drops = np.diff(latencies) < 0
        if np.any(drops):
            i = int(np.argmax(drops))
            raise _fail(engine, "GEMM monotone in tokens", f"op {name!r} of {spec.name}",
                        f"{tokens[i + 1]} tokens take {latencies[i + 1]!r} s < "
                        f"{latencies[i]!r} s for {tokens[i]} tokens")


def _check_attention_grows(engine: Engine, spec: ModelSpec) -> None:
    contexts = np.array([0, 16, 128, 1024, 4000])
    _, block, _ = decoder_template(spec).instantiate(make_batch([1] * len(contexts), contexts))
    timing = engine.simulate(block)
    for op, op_timing in zip(block.ops, timing.ops):
        if not op.kind.is_attention:
            continue
        lat = op_timing.latency
        where = f"op {op.name!r} of {spec.name}"
        if np.any(np.diff(lat) < 0):
            raise _fail(engine, "attention grows with context", where,
                        f"latency per request {lat} for contexts {contexts}")
        if not lat[-1] > lat[0]:
            raise _fail(engine, "attention grows with context", where,
                        f"context {contexts[-1]} costs {lat[-1]!r} s, not more than "
                        f"{lat[0]!r} s at context {contexts[0]}")


def _zero_ops() -> list[Op]:
    zero_i = np.zeros(1, dtype=np.int64)
    zero_f = np.zeros(1)
    gemm = Op("zero_gemm", OpKind.GEMM, zero_i, np.array([64]), np.array([64]), 1,
              zero_f, zero_f, zero_f)
    norm = Op("zero_norm", OpKind.NORM, zero_i, np.array([64]), np.array([1]), 1,
              zero_f, zero_f, zero_f)
    # An attention op where one of three requests has no rows.
    m = np.array([1, 0, 4])
    attn = Op("zero_attn", OpKind.ATTN_SCORE, m, np.array([10, 10, 20]),
              np.array([16, 16, 16]), 4, 2.0 * 4 * m * np.array([10, 10, 20]) * 16,
              np.array([800.0, 0.0, 1600.0]), np.array([80.0, 0.0, 640.0]),
              request_ids=np.arange(3))
    return [gemm, norm, attn]


def _check_zero_work(engine: Engine) -> None:
    for op in _zero_ops():
        _check_timing(engine, engine.time_op(op), op, f"op {op.name!r} (zero rows)")


def _check_independent(engine: Engine, block: OpBlock, where: str) -> None:
    for op in block.ops:
        if op.num_instances < 2:
            continue
        together = engine.time_op(op).latency
        for i in range(op.num_instances):
            alone = engine.time_op(_take(op, i)).latency[0]
            if alone != together[i]:
                raise _fail(engine, "independent instances", f"{where}, op {op.name!r}",
                            f"instance {i} costs {together[i]!r} s in the batch but "
                            f"{alone!r} s alone")


def _take(op: Op, i: int) -> Op:
    keep = slice(i, i + 1)
    return Op(op.name, op.kind, op.m[keep], op.n[keep], op.k[keep], op.batch, op.flops[keep],
              op.bytes_read[keep], op.bytes_written[keep], op.weight_bytes,
              None if op.request_ids is None else op.request_ids[keep])


def _check_op_totals(engine: Engine, template, batch: BatchShape, where: str) -> None:
    from .engines.reuse import ReuseEngine

    wrapped = [("engine", engine)]
    if engine.pure:
        wrapped.append(("reuse", ReuseEngine(type(engine)(engine.spec))))
    blocks = template.instantiate(batch)
    emb, head = blocks[0], blocks[-1]
    # Every op of the layers, whichever kinds of layer run them (op_totals' view).
    blk = OpBlock("decoder_block", tuple(t.instantiate(batch, template.dtype_bytes)
                                         for t in template.block), 1, batch)
    logit_rows = int(batch.num_logit_tokens.sum())
    for parts, block, rows in ((template.embedding, emb, None), (template.block, blk, None),
                               (template.head, head, logit_rows)):
        if not block.ops:
            continue
        want = engine.simulate(block).op_latency
        for label, candidate in wrapped:
            for _ in range(2):  # the second call answers from the reuse cache
                got = candidate.op_totals(parts, batch, template.dtype_bytes, rows)
                if not np.array_equal(got, want):
                    raise _fail(engine, "op_totals", f"{where}, {block.name} via {label}",
                                f"op_totals {got.tolist()} != simulate(block).op_latency "
                                f"{want.tolist()}")


def check_engine(engine: Engine) -> None:
    """Verify that ``engine`` honours the :class:`~llmsim_nb.engines.base.Engine` contract.

    Parameters
    ----------
    engine : Engine
        A constructed engine.

    Raises
    ------
    ConformanceError
        On the first failed check; the message names the check, op, block and batch.
    """
    for spec in (tiny_model(), tiny_llama(), tiny_moe()):
        template = decoder_template(spec)
        for label, batch in _standard_batches().items():
            if spec.moe is not None:
                batch = with_experts(batch, spec.moe.num_experts,
                                     spec.moe.num_experts_per_token)
            for block in template.instantiate(batch):
                _check_block(engine, block, f"{spec.name}/{label}")
                if engine.independent_instances:
                    _check_independent(engine, block, f"{spec.name}/{label}")
            _check_op_totals(engine, template, batch, f"{spec.name}/{label}")
        if spec.moe is None:  # engine properties, checked on the models of one layer kind
            _check_gemm_monotone(engine, spec)
            _check_attention_grows(engine, spec)
    _check_zero_work(engine)


__all__ = ["ConformanceError", "LATENCY_EPS", "check_engine", "make_batch", "tiny_llama",
           "tiny_model", "tiny_moe", "with_experts"]

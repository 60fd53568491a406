"""Every registered engine passes check_engine, and check_engine can fail."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil

import numpy as np
import pytest

import llmsim_nb.engines
import llmsim_nb.engines.npu  # noqa: F401  (registers "npu")
from llmsim_nb.engines.base import ENGINES, Engine, OpTiming
from llmsim_nb.engines.hardware import get_hardware, list_hardware, make_engine
from llmsim_nb.engines.npu import NPUEngine, NPUSpec
from llmsim_nb.testing import ConformanceError, check_engine, make_batch, tiny_model

# Import every engine module so that every engine registers itself; a module
# that fails to import is reported by its own test instead of hiding the rest.
_IMPORT_ERRORS: dict[str, str] = {}
for _info in pkgutil.iter_modules(llmsim_nb.engines.__path__):
    try:
        importlib.import_module(f"llmsim_nb.engines.{_info.name}")
    except Exception as err:  # reported by test_engine_modules_import
        _IMPORT_ERRORS[_info.name] = f"{type(err).__name__}: {err}"


def test_engine_modules_import():
    assert not _IMPORT_ERRORS, _IMPORT_ERRORS


def _default_engine(name: str) -> Engine:
    """An instance of the engine registered as ``name``: its first preset, else its default spec."""
    for preset in list_hardware():
        if get_hardware(preset).engine == name:
            return make_engine(preset)
    cls = ENGINES[name]
    spec_class = getattr(cls, "spec_class", None)
    if spec_class is None:
        pytest.skip(f"engine {name!r} has no preset and no spec_class to build one")
    return cls(spec_class())


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_registered_engine_conforms(name):
    engine = _default_engine(name)
    # A profiled engine times the conformance shapes its table lacks by its fallback, and
    # says so (a RuntimeWarning per op name); the other engines warn about nothing.
    expected = (pytest.warns(RuntimeWarning, match="outside the measured range")
                if hasattr(engine, "fallbacks") else contextlib.nullcontext())
    with expected:
        check_engine(engine)


@pytest.mark.parametrize("preset", ["npu-128x128", "npu-256x256", "npu-64x64"])
def test_every_npu_preset_conforms(preset):
    check_engine(make_engine(preset))


@pytest.mark.parametrize("spec", [
    NPUSpec(dataflow="output_stationary"),
    NPUSpec(weight_load_cycles=128, op_overhead=1e-6),
    NPUSpec(array_rows=32, array_cols=256, input_buffer_bytes=4096, weight_buffer_bytes=4096,
            output_buffer_bytes=256 * 4),
], ids=["output_stationary", "shift_in_weights", "tiny_buffers"])
def test_npu_variants_conform(spec):
    check_engine(NPUEngine(spec))


# -- deliberately broken engines (not registered) ---------------------------------


class _Wrapped(Engine):
    """Delegates to an NPU engine and lets subclasses corrupt the result."""

    name = "broken"

    def __init__(self) -> None:
        super().__init__(NPUSpec())
        self.inner = NPUEngine(self.spec)

    def time_op(self, op):
        return self.corrupt(op, self.inner.time_op(op))

    def corrupt(self, op, timing):  # pragma: no cover - overridden
        return timing


class NegativeLatency(_Wrapped):
    def corrupt(self, op, t):
        return OpTiming(-t.latency - 1e-6, t.compute_latency, t.memory_latency)


class NonDeterministic(_Wrapped):
    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng()

    def corrupt(self, op, t):
        jitter = self.rng.uniform(1.0, 2.0, size=t.latency.shape)
        return OpTiming(t.latency * jitter, t.compute_latency, t.memory_latency)


class BelowBound(_Wrapped):
    def corrupt(self, op, t):
        return OpTiming(0.5 * t.latency, t.compute_latency, t.memory_latency)


class WrongLength(_Wrapped):
    def corrupt(self, op, t):
        return OpTiming(t.latency[:1], t.compute_latency[:1], t.memory_latency[:1])


class NotFinite(_Wrapped):
    def corrupt(self, op, t):
        lat = t.latency.copy()
        lat[-1] = np.nan
        return OpTiming(lat, t.compute_latency, t.memory_latency)


class Mutating(_Wrapped):
    def corrupt(self, op, t):
        # Shared (memoised) dense ops are read-only, so numpy itself refuses
        # to let an engine write them; per-request ops are fresh and writable.
        if op.flops.flags.writeable:
            op.flops[...] = op.flops * 2  # writes into the caller's op
        return t


class CheaperWithMoreTokens(_Wrapped):
    def corrupt(self, op, t):
        if op.kind.is_matmul and not op.kind.is_attention:
            lat = np.full_like(t.latency, 1.0) / np.maximum(op.m, 1)
            return OpTiming(lat, np.zeros_like(lat), np.zeros_like(lat))
        return t


class FlatAttention(_Wrapped):
    def corrupt(self, op, t):
        if op.kind.is_attention:
            lat = np.full_like(t.latency, 1e-6)
            return OpTiming(lat, np.zeros_like(lat), np.zeros_like(lat))
        return t


class BatchDependent(_Wrapped):
    """Charges every instance a share of a per-op cost: not independent."""

    pure = True

    def corrupt(self, op, t):
        scale = 1.0 + 0.01 * op.num_instances
        return OpTiming(t.latency * scale, t.compute_latency, t.memory_latency)


class TotalsDisagree(_Wrapped):
    """Answers op_totals differently from simulate (e.g. a fusion only one path knows)."""

    def op_totals(self, templates, batch, dtype_bytes, num_rows=None):
        return 0.9 * super().op_totals(templates, batch, dtype_bytes, num_rows)


@pytest.mark.parametrize("engine_cls, check", [
    (NegativeLatency, "non-negative"),
    (BatchDependent, "independent instances"),
    (TotalsDisagree, "op_totals"),
    (NonDeterministic, "deterministic"),
    (BelowBound, "latency >= max(compute, memory)"),
    (WrongLength, "one entry per instance"),
    (NotFinite, "finite"),
    (Mutating, "does not mutate ops"),
    (CheaperWithMoreTokens, "GEMM monotone in tokens"),
    (FlatAttention, "attention grows with context"),
])
def test_check_engine_catches_broken_engine(engine_cls, check):
    with pytest.raises(ConformanceError, match=check.replace("(", r"\(").replace(")", r"\)")):
        check_engine(engine_cls())


def test_reuse_refuses_an_engine_whose_instances_share_resources():
    from llmsim_nb.engines.pim import PIMEngine
    from llmsim_nb.engines.reuse import ReuseEngine

    assert not PIMEngine.independent_instances
    with pytest.raises(ValueError, match="cannot wrap the 'pim' engine"):
        ReuseEngine(_default_engine("pim"))


def test_conformance_error_is_not_an_assertion():
    assert not issubclass(ConformanceError, AssertionError)


def test_make_batch_broadcasts_context():
    batch = make_batch([1] * 4, 100)
    assert batch.num_requests == 4
    assert batch.num_context_tokens.tolist() == [100] * 4
    assert tiny_model().num_layers == 2

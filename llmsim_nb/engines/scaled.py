"""An engine whose op latencies are another engine's, scaled by a factor per op kind.

:class:`ScaledEngine` is how an error band perturbs a prediction
(:mod:`llmsim_nb.fidelity.error_band`): each op kind's latency (compute and
memory parts too, so the bound an op hits is unchanged) is multiplied by one
factor, ``exp(residual)`` of the calibration for that kind. The kinds are
those the calibration measures (:data:`RESIDUAL_KINDS`): the three attention
ops are one fused kernel on a GPU and are measured (and scaled) together.

The wrapper keeps the wrapped engine's ``name`` and ``spec`` (memory planning,
scheduler choice and the GPU checks read them) and its contract flags. It times
through :meth:`time_op` only (the base class's ``op_totals``), so ``op_totals``
and ``simulate`` agree to the bit, and a factor of exactly 1 returns the wrapped
engine's floats unchanged (``tests/test_error_band.py`` checks both; the
generic ``check_engine`` rebuilds an engine from its spec alone, which a wrapper
cannot be). Its timings differ from the spec's, so its tables must not go into
a reuse *file* keyed by the spec (``fast_run``); the in-memory reuse cache a
``Simulator`` builds per run is fine.
"""

from __future__ import annotations

import math

import numpy as np

from ..models.ops import Op, OpKind
from .base import Engine, OpTiming, WrappedEngine

#: The op kinds residuals are kept for, as :attr:`Measurement.kind` names them.
RESIDUAL_KINDS = ("gemm", "attention", "norm", "activation", "elementwise", "embedding")


def residual_kind(kind: OpKind) -> str:
    """The residual kind of an op kind (attention's three ops are one fused kernel)."""
    return "attention" if kind.is_attention else kind.value


class ScaledEngine(WrappedEngine):
    """``engine``'s timings with each op kind's latency multiplied by ``factors[kind]``.

    Parameters
    ----------
    engine : Engine
        The engine to scale.
    factors : dict of str to float
        Factor per residual kind (keys of :data:`RESIDUAL_KINDS`, each finite
        and > 0); a kind not given keeps factor 1.

    Raises
    ------
    ValueError
        An unknown kind or a factor that is not a finite number > 0.
    """

    def __init__(self, engine: Engine, factors: dict[str, float]) -> None:
        for kind, value in factors.items():
            if kind not in RESIDUAL_KINDS:
                raise ValueError(f"ScaledEngine: op kind {kind!r} is not one of "
                                 f"{list(RESIDUAL_KINDS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"ScaledEngine: factor of {kind} must be a finite number "
                                 f"> 0, got {value!r}")
        super().__init__(engine)
        self.factors = {k: float(factors.get(k, 1.0)) for k in RESIDUAL_KINDS}

    def factor(self, kind: OpKind) -> float:
        """The factor applied to ops of ``kind``."""
        return self.factors[residual_kind(kind)]

    def time_op(self, op: Op) -> OpTiming:
        timing = self.inner.time_op(op)
        f = self.factor(op.kind)
        return OpTiming(timing.latency * f, timing.compute_latency * f,
                        timing.memory_latency * f)

    def __repr__(self) -> str:
        return f"ScaledEngine({self.inner!r}, {self.factors!r})"


__all__ = ["RESIDUAL_KINDS", "ScaledEngine", "residual_kind"]

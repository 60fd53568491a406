"""Calibration: fit an engine's efficiencies to measured operator latencies.

:func:`calibrate` adjusts the few physical efficiency parameters of an
engine's spec (fractions of a peak, bounded to ``(0, 1]``; a per-kernel
overhead bounded to ``[0, 100 us]``) so that predicted operator latencies match
measured ones, by least squares on ``log(predicted / measured)``: relative
errors count the same for a 5 us norm and a 5 ms GEMM. Everything else in the
spec (peak FLOP/s, bandwidths, SM count) stays at its datasheet value, and the
same fitted values then serve every model, batch and context.

The fit's residuals carry its uncertainty: :meth:`Calibration.error_band`
turns a predicted latency into a p10-p90 band from their spread (a latency of
``t`` has a band ``[t * exp(q10), t * exp(q90)]`` where ``q`` are quantiles of
``log(measured / predicted)``).

Example
-------
>>> from llmsim_nb.fidelity.calibration import calibrate
>>> from llmsim_nb.engines.measurements import load_measurements
>>> fit = calibrate(make_engine("a100-80gb"), load_measurements("vidur_a100/"))
>>> fit.table            # median / p90 absolute percentage error per op label
>>> fit.engine           # an engine with the fitted spec
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engines.base import Engine
from ..engines.measurements import Measurements
from ..models.ops import Op

#: Bounds of fitted parameters that are not fractions (seconds).
OVERHEAD_BOUNDS = (0.0, 100e-6)
#: Smallest efficiency the fit may reach: a kernel at 1% of a peak is a model error.
MIN_EFFICIENCY = 0.01


def _concat(ops: list[Op]) -> Op:
    first = ops[0]
    cat = np.concatenate
    return Op(first.name, first.kind, cat([o.m for o in ops]), cat([o.n for o in ops]),
              cat([o.k for o in ops]), first.batch, cat([o.flops for o in ops]),
              cat([o.bytes_read for o in ops]), cat([o.bytes_written for o in ops]),
              first.weight_bytes,
              None if first.request_ids is None else np.arange(sum(len(o.m) for o in ops)))


class _Stacked:
    """The ops of many measurements, concatenated so that an engine times each
    group of same-shaped ops in one vectorised call."""

    def __init__(self, measurements: Measurements) -> None:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, row in enumerate(measurements):
            sig = (row.standalone,) + tuple(
                (op.name, op.kind, op.batch, op.weight_bytes,
                 None if op.kind.is_attention else (int(op.n[0]), int(op.k[0])))
                for op in row.ops)
            groups[sig].append(i)
        self.count = len(measurements)
        self.groups = []
        rows = measurements.rows
        for sig, index in groups.items():
            standalone = sig[0]
            positions = len(rows[index[0]].ops)
            stacked = [_concat([rows[i].ops[p] for i in index]) for p in range(positions)]
            sizes = np.array([rows[i].ops[0].num_instances for i in index])
            self.groups.append((np.array(index), standalone, stacked, sizes))

    def predict(self, engine: Engine) -> np.ndarray:
        out = np.zeros(self.count)
        for index, standalone, stacked, sizes in self.groups:
            time = getattr(engine, "time_vector_op", engine.time_op) if standalone \
                else engine.time_op
            total = np.zeros(int(sizes.sum()))
            for op in stacked:
                total += time(op).latency
            # Each measurement's instances are contiguous: sum them back per row.
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            out[index] = np.add.reduceat(total, bounds[:-1]) if len(total) else 0.0
        return out


def predict(engine: Engine, measurements: Measurements) -> np.ndarray:
    """Predicted seconds of every measurement (the sum over its ops)."""
    return _Stacked(measurements).predict(engine)


def error_table(measured: np.ndarray, predicted: np.ndarray, labels) -> pd.DataFrame:
    """Median / p90 absolute percentage error and median ratio per label."""
    frame = pd.DataFrame({"label": np.asarray(labels), "measured": measured,
                          "predicted": predicted})
    frame["ape"] = np.abs(frame["predicted"] / frame["measured"] - 1.0)
    frame["ratio"] = frame["predicted"] / frame["measured"]
    table = frame.groupby("label").agg(
        n=("ape", "size"), median_ape=("ape", "median"),
        p90_ape=("ape", lambda x: float(np.quantile(x, 0.9))),
        median_ratio=("ratio", "median"))
    return table


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    engine : Engine
        An engine of the same class with the fitted spec.
    params : dict
        Fitted value of every parameter that was fitted.
    unconstrained : tuple of str
        Parameters no measurement depends on (left at their starting value).
    table : pandas.DataFrame
        Fit error per measurement label (n, median_ape, p90_ape, median_ratio).
    log_residuals : ndarray
        ``log(measured / predicted)`` of every measurement after the fit.
    """

    engine: Engine
    params: dict
    unconstrained: tuple[str, ...]
    table: pd.DataFrame
    log_residuals: np.ndarray

    @property
    def spec(self):
        return self.engine.spec

    def residual_quantiles(self, low: float = 0.1, high: float = 0.9) -> tuple[float, float]:
        """Quantiles of ``log(measured / predicted)``."""
        return (float(np.quantile(self.log_residuals, low)),
                float(np.quantile(self.log_residuals, high)))

    def error_band(self, latency, low: float = 0.1, high: float = 0.9):
        """``(lower, upper)`` seconds: the ``low``-``high`` band of a predicted latency.

        The band assumes the residual spread of the fit carries over to new
        shapes of the same kinds; iterations sum many ops whose errors are
        correlated (one device, one software stack), so the per-op band is kept,
        not narrowed by ``sqrt(ops)``.
        """
        q_lo, q_hi = self.residual_quantiles(low, high)
        latency = np.asarray(latency, dtype=np.float64)
        return latency * np.exp(q_lo), latency * np.exp(q_hi)


def default_parameters(engine: Engine) -> tuple[str, ...]:
    """The spec fields :func:`calibrate` fits by default: the engine module's
    ``EFFICIENCY_FIELDS`` plus ``kernel_overhead`` when the spec has them."""
    import importlib

    module = importlib.import_module(type(engine).__module__)
    fields = tuple(getattr(module, "EFFICIENCY_FIELDS", ()))
    names = {f.name for f in dataclasses.fields(engine.spec)}
    fields += tuple(f for f in ("gemm_exposed_fraction", "kernel_overhead", "norm_overhead",
                                "activation_overhead", "elementwise_overhead",
                                "embedding_overhead", "softmax_overhead") if f in names)
    return tuple(f for f in fields if f in names)


def calibrate(engine: Engine, measurements: Measurements,
              params: tuple[str, ...] | None = None) -> Calibration:
    """Fit ``params`` of ``engine.spec`` to ``measurements`` (bounded, log space).

    Parameters
    ----------
    engine : Engine
        Its class is re-instantiated with candidate specs; its spec is the start.
    measurements : Measurements
        Measured latencies (see :mod:`llmsim_nb.engines.measurements`).
    params : tuple of str, optional
        Spec fields to fit. Fields whose name ends in ``efficiency`` are bounded
        to ``[0.01, 1]`` (fitted as logs), ``fraction`` to ``[0, 1]`` and
        ``overhead`` to ``[0, 100 us]``.
        Default: :func:`default_parameters`.

    Returns
    -------
    Calibration

    A :class:`~llmsim_nb.engines.serving_stack.ServingStack` in place of
    ``engine`` fits its host terms instead: ``measurements`` is the measured
    step seconds and ``params`` a dict of the other arrays
    (:func:`~llmsim_nb.fidelity.serving_calibration.calibrate_serving_stack`).

    Raises
    ------
    ValueError
        No measurements, an unknown field, or a field that is neither an
        efficiency nor an overhead.
    """
    from scipy.optimize import least_squares

    from ..engines.serving_stack import ServingStack
    if isinstance(engine, ServingStack):  # the host side: serving_calibration
        from .serving_calibration import calibrate_serving_stack
        return calibrate_serving_stack(engine, measurements, **(params or {}))
    if len(measurements) == 0:
        raise ValueError("calibrate needs at least one measurement")
    params = default_parameters(engine) if params is None else tuple(params)
    names = {f.name for f in dataclasses.fields(engine.spec)}
    lows, highs, start = [], [], []
    for name in params:
        if name not in names:
            raise ValueError(f"calibrate: {name!r} is not a field of "
                             f"{type(engine.spec).__name__}; fields: {sorted(names)}")
        value = float(getattr(engine.spec, name))
        if name.endswith("efficiency"):
            # Fitted as log(efficiency): multiplicative steps, bounded by 1.
            lows.append(np.log(MIN_EFFICIENCY))
            highs.append(0.0)
            start.append(np.log(min(max(value, MIN_EFFICIENCY), 1.0)))
        elif name.endswith("fraction"):
            lows.append(0.0)
            highs.append(1.0)
            start.append(min(max(value, 0.0), 1.0))
        elif name.endswith("overhead"):
            # Fitted in microseconds so the step sizes are comparable.
            lows.append(OVERHEAD_BOUNDS[0] * 1e6)
            highs.append(OVERHEAD_BOUNDS[1] * 1e6)
            start.append(min(max(value, OVERHEAD_BOUNDS[0]), OVERHEAD_BOUNDS[1]) * 1e6)
        else:
            raise ValueError(f"calibrate: {name!r} is not an efficiency, a fraction or an "
                             "overhead; only those are fitted (datasheet figures stay fixed)")
    stacked = _Stacked(measurements)
    measured = measurements.latency
    cls = type(engine)

    def spec_at(x: np.ndarray):
        values = {}
        for name, v in zip(params, x):
            if name.endswith("efficiency"):
                values[name] = float(np.exp(v))
            elif name.endswith("fraction"):
                values[name] = float(v)
            else:
                values[name] = float(v) * 1e-6
        values = {k: min(v, 1.0) if k.endswith("efficiency") else v for k, v in values.items()}
        return dataclasses.replace(engine.spec, **values)

    def residuals(x: np.ndarray) -> np.ndarray:
        predicted = stacked.predict(cls(spec_at(x)))
        return np.log(np.maximum(predicted, 1e-12) / measured)

    x0 = np.clip(np.array(start), lows, highs)
    fit = least_squares(residuals, x0, bounds=(lows, highs), x_scale="jac", diff_step=1e-3)
    unconstrained = tuple(name for name, col in zip(params, fit.jac.T)
                          if not np.any(np.abs(col) > 0))
    # A parameter no measurement depends on keeps the engine's own value (not
    # the start point, which was moved inside the fitting bounds).
    fitted = cls(dataclasses.replace(spec_at(fit.x), **{
        name: getattr(engine.spec, name) for name in unconstrained}))
    predicted = stacked.predict(fitted)
    table = error_table(measured, predicted, measurements.labels)
    values = {name: getattr(fitted.spec, name) for name in params}
    return Calibration(fitted, values, unconstrained, table, np.log(measured / predicted))


__all__ = ["Calibration", "calibrate", "default_parameters", "error_table", "predict"]

"""Fitting a serving stack's host costs to measured step or request times.

:func:`calibrate_serving_stack` fits the host terms of a
:class:`~llmsim_nb.engines.serving_stack.ServingStack`:

- *per iteration*: measured step seconds against the device's seconds of the
  same steps (the GPU op model, or a profile of the kernels) and their scheduled
  requests and tokens fit ``step_latency``, ``request_latency`` and
  ``token_latency`` of ``step = host + device`` (no overlap) or
  ``max(host, device)`` (overlap);
- *per request*: measured and simulated (with no per-request overheads) TTFT
  and end-to-end latency of lightly loaded requests fit ``arrival_latency``
  (the TTFT offset) and ``completion_latency`` (the rest of the E2E offset).

Every parameter is bounded to ``[0, MAX_HOST_LATENCY]`` (host seconds: never
negative, never a second per step), fitted by least squares on
``log(predicted / measured)`` so that a 1 ms and a 100 ms step weigh alike; the
residuals come back with the fitted stack.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..engines.serving_stack import MAX_HOST_LATENCY, ServingStack

#: What a per-iteration fit adjusts (in this order).
STEP_PARAMETERS = ("step_latency", "request_latency", "token_latency")


@dataclass(frozen=True)
class ServingCalibration:
    """The result of :func:`calibrate_serving_stack`.

    Attributes
    ----------
    stack : ServingStack
        The input stack with the fitted fields replaced.
    params : dict
        Fitted value of every fitted field, s.
    log_residuals : ndarray
        ``log(measured / predicted)`` per measurement after the fit.
    """

    stack: ServingStack
    params: dict
    log_residuals: np.ndarray

    def residual_quantiles(self, low: float = 0.1, high: float = 0.9) -> tuple[float, float]:
        """Quantiles of ``log(measured / predicted)``."""
        return (float(np.quantile(self.log_residuals, low)),
                float(np.quantile(self.log_residuals, high)))

    @property
    def median_ape(self) -> float:
        """Median absolute relative error after the fit."""
        return float(np.median(np.abs(np.exp(-self.log_residuals) - 1.0)))


def _array(name: str, values, n: int | None = None) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1 or not len(out) or (n is not None and len(out) != n):
        raise ValueError(f"calibrate_serving_stack: {name} must be a 1-D array of "
                         f"{n or 'one or more'} values, got shape {out.shape}")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError(f"calibrate_serving_stack: {name} must be finite and >= 0")
    return out


def calibrate_serving_stack(stack: ServingStack, measured_latency, device_latency=None,
                            num_requests=None, num_tokens=None, *,
                            measured_ttft=None, simulated_ttft=None, measured_e2e=None,
                            simulated_e2e=None) -> ServingCalibration:
    """Fit ``stack``'s host terms per iteration or per request (module docstring).

    Parameters
    ----------
    stack : ServingStack
        The start; its ``overlap`` decides the step model.
    measured_latency : array-like or None
        Per iteration: measured step seconds (None for a per-request fit).
    device_latency, num_requests, num_tokens : array-like
        Per iteration: the device's seconds, scheduled requests and tokens.
    measured_ttft, simulated_ttft, measured_e2e, simulated_e2e : array-like
        Per request (instead): TTFT and end-to-end seconds, measured and simulated
        with no per-request overheads.
    """
    from scipy.optimize import least_squares

    if measured_latency is None:
        return _per_request(stack, measured_ttft, simulated_ttft, measured_e2e, simulated_e2e)
    measured = _array("measured_latency", measured_latency)
    n = len(measured)
    if not np.all(measured > 0):
        raise ValueError("calibrate_serving_stack: measured_latency must be > 0 s")
    device = _array("device_latency", device_latency, n)
    requests = _array("num_requests", num_requests, n)
    tokens = _array("num_tokens", num_tokens, n)
    # Fitted in microseconds so the three step sizes are comparable.
    scale = 1e6

    def predict(x: np.ndarray) -> np.ndarray:
        host = (x[0] + x[1] * requests + x[2] * tokens) / scale
        return np.maximum(host, device) if stack.overlap else host + device

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(predict(x), 1e-12) / measured)

    # A start at the bound 0 has a one-sided gradient: start from typical figures.
    start = np.array([getattr(stack, p) or typical
                      for p, typical in zip(STEP_PARAMETERS, (1e-3, 10e-6, 0.1e-6))]) * scale
    high = np.full(3, MAX_HOST_LATENCY * scale)
    fit = least_squares(residuals, np.clip(start, 0.0, high), bounds=(np.zeros(3), high),
                        x_scale="jac")
    params = {p: float(v) / scale for p, v in zip(STEP_PARAMETERS, fit.x)}
    return ServingCalibration(dataclasses.replace(stack, **params), params,
                              np.log(measured / np.maximum(predict(fit.x), 1e-12)))


def _per_request(stack, measured_ttft, simulated_ttft, measured_e2e, simulated_e2e):
    """Fit the two per-request offsets: the TTFT offset, then the E2E remainder."""
    if any(v is None for v in (measured_ttft, simulated_ttft, measured_e2e, simulated_e2e)):
        raise ValueError("calibrate_serving_stack: give measured_latency (per iteration) or "
                         "all of measured_ttft, simulated_ttft, measured_e2e, simulated_e2e "
                         "(per request)")
    m_ttft = _array("measured_ttft", measured_ttft)
    n = len(m_ttft)
    s_ttft = _array("simulated_ttft", simulated_ttft, n)
    m_e2e = _array("measured_e2e", measured_e2e, n)
    s_e2e = _array("simulated_e2e", simulated_e2e, n)
    # The median offset is the least-absolute-deviation fit of a constant shift,
    # robust to the few requests that queued behind others.
    arrival = float(np.clip(np.median(m_ttft - s_ttft), 0.0, MAX_HOST_LATENCY))
    completion = float(np.clip(np.median(m_e2e - s_e2e) - arrival, 0.0, MAX_HOST_LATENCY))
    params = {"arrival_latency": arrival, "completion_latency": completion}
    predicted = np.concatenate([s_ttft + arrival, s_e2e + arrival + completion])
    measured = np.concatenate([m_ttft, m_e2e])
    with np.errstate(divide="ignore"):
        residuals = np.log(np.maximum(measured, 1e-12) / np.maximum(predicted, 1e-12))
    return ServingCalibration(dataclasses.replace(stack, **params), params, residuals)


__all__ = ["STEP_PARAMETERS", "ServingCalibration", "calibrate_serving_stack"]

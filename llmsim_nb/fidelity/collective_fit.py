"""Fit an interconnect's alpha-beta collective constants to measured profiles.

The model (:mod:`llmsim_nb.network.alpha_beta`) is linear in its two
unknowns: a collective of ``kind`` on ``p`` devices with the fit's
algorithm takes ``T = steps * alpha + bytes_per_device * beta`` with
``beta = 1 / B``, where ``steps`` and ``bytes_per_device`` are exactly what
:class:`~llmsim_nb.network.collectives.CollectiveModel` charges on a Switch
of ``p`` devices (so the fitted figures are the simulator's, not a second
formula); a send/recv is one step moving ``S`` bytes.

:func:`fit_alpha_beta` minimises the sum of squared *relative* residuals
``((steps alpha + bytes beta) - T) / T`` (sizes span 2 KiB to 64 MiB, so
absolute residuals would fit only the largest messages) subject to
``alpha >= 0`` and ``B <= peak`` (``beta >= 1 / peak``): a convex quadratic
in two variables, solved exactly by checking the unconstrained optimum and
then each bound (its active-set solutions), keeping the best feasible one.

Profiles are Vidur's (github microsoft/vidur ``data/profiling/network``):
one row per ``(num_workers, size)``, times in ms, ``size`` in bytes. Only
rows within one server (``devices_per_node == num_workers``) are read:
the rows across servers cross a NIC the profiles do not name.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..graph.nodes import CollectiveType
from ..network.collectives import collective_cost
from ..network.topology import Dimension, Topology

#: Size ranges the errors are reported by, bytes: [low, high).
SIZE_RANGES = (("<64KiB", 0, 64 * 1024), ("64KiB-4MiB", 64 * 1024, 4 * 1024 ** 2),
               (">=4MiB", 4 * 1024 ** 2, math.inf))
_KINDS = {"all_reduce": CollectiveType.ALL_REDUCE, "all_gather": CollectiveType.ALL_GATHER,
          "reduce_scatter": CollectiveType.REDUCE_SCATTER,
          "all_to_all": CollectiveType.ALL_TO_ALL}


@dataclass(frozen=True)
class ProfilePoint:
    """One measured collective: ``latency`` seconds for ``size`` bytes on ``num_devices``."""

    collective: str
    num_devices: int
    size: float
    latency: float


@dataclass(frozen=True)
class AlphaBetaFit:
    """Fitted ``step_latency`` (alpha, s) and ``bandwidth`` (B/s), with the points used."""

    collective: str
    algorithm: str
    step_latency: float
    bandwidth: float
    points: tuple[ProfilePoint, ...]


def load_profile(path: str | Path) -> list[ProfilePoint]:
    """The within-server rows of one Vidur network profile CSV (median times)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"collective profile {str(path)!r} is not a file")
    points = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        kind = path.stem
        column = f"time_stats.{kind}.median"
        need = {column, "num_workers", "devices_per_node", "size"}
        if not need <= set(reader.fieldnames or ()):
            raise ValueError(f"collective profile {str(path)!r} lacks columns "
                             f"{sorted(need - set(reader.fieldnames or ()))}")
        for row in reader:
            n, per_node = int(row["num_workers"]), int(row["devices_per_node"])
            if per_node != n:
                continue
            points.append(ProfilePoint(kind, n, float(row["size"]), float(row[column]) * 1e-3))
    if not points:
        raise ValueError(f"collective profile {str(path)!r} has no rows within one server")
    return points


def design(collective: str, algorithm: str, num_devices: int, size: float) -> tuple[int, float]:
    """``(steps, bytes_per_device)`` the simulator charges for one collective."""
    if collective == "send_recv":
        return 1, float(size)
    if collective not in _KINDS:
        raise ValueError(f"collective={collective!r} is not one of "
                         f"{sorted([*_KINDS, 'send_recv'])}")
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 2:
        raise ValueError(f"num_devices={num_devices!r} must be an integer >= 2")
    probe = Topology((Dimension("Switch", num_devices, 1e9, 0.0, 1, "N", 0.0, 1e-6),),
                     name="alpha-beta probe")
    cost = collective_cost(probe, _KINDS[collective], float(size), range(num_devices),
                           algorithm)
    return cost.steps, cost.bytes_per_device


def fit_alpha_beta(steps, moved, latency, peak_bandwidth: float,
                   weights=None) -> tuple[float, float]:
    """Bounded (weighted) least squares on relative residuals; ``(alpha, bandwidth)``.

    Parameters
    ----------
    steps, moved, latency : array-like
        Per point: steps, bytes moved per device, measured seconds (> 0).
    peak_bandwidth : float
        The datasheet peak the fitted bandwidth may not exceed, B/s.
    weights : array-like or None
        Per-point weights of the squared residuals (> 0); None: all 1.
    """
    a = np.asarray(steps, dtype=float)
    b = np.asarray(moved, dtype=float)
    t = np.asarray(latency, dtype=float)
    if a.ndim != 1 or a.shape != b.shape or a.shape != t.shape or len(a) < 2:
        raise ValueError(f"fit_alpha_beta needs >= 2 points of equal length, got shapes "
                         f"{a.shape}, {b.shape}, {t.shape}")
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ValueError("fit_alpha_beta: measured latencies must be finite and > 0")
    if not (np.all(a >= 0) and np.all(b >= 0) and np.all(np.isfinite(b))):
        raise ValueError("fit_alpha_beta: steps and bytes must be finite and >= 0")
    if isinstance(peak_bandwidth, bool) or not isinstance(peak_bandwidth, (int, float)) \
            or not math.isfinite(peak_bandwidth) or peak_bandwidth <= 0:
        raise ValueError(f"peak_bandwidth={peak_bandwidth!r} must be a finite number > 0 (B/s)")
    w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != t.shape or not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ValueError("fit_alpha_beta: weights must be finite, > 0, one per point")
    root = np.sqrt(w)
    # Weighted relative residual = x @ (alpha, beta) - y.
    x = np.stack([root * a / t, root * b / t], axis=1)
    y = root
    beta_min = 1.0 / peak_bandwidth

    def loss(p):
        return float(np.sum((x @ p - y) ** 2))

    candidates = []
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)
    candidates.append(sol)
    for fixed, value in ((0, 0.0), (1, beta_min)):   # one bound active
        free = 1 - fixed
        col = x[:, free]
        rhs = y - x[:, fixed] * value
        denom = float(col @ col)
        p = np.zeros(2)
        p[fixed] = value
        p[free] = float(col @ rhs) / denom if denom > 0 else 0.0
        candidates.append(p)
    candidates.append(np.array([0.0, beta_min]))       # both bounds active
    feasible = [p for p in candidates if p[0] >= 0 and p[1] >= beta_min * (1 - 1e-12)]
    alpha, beta = min(feasible, key=loss)
    return float(alpha), float(1.0 / beta)


def fit_points(points, collective: str, algorithm: str, peak_bandwidth: float) -> AlphaBetaFit:
    """Fit the points of one collective (any device counts) with one (alpha, B)."""
    pts = tuple(p for p in points if p.collective == collective)
    if not pts:
        raise ValueError(f"no measured points of collective={collective!r}")
    rows = [design(collective, algorithm, p.num_devices, p.size) for p in pts]
    alpha, bandwidth = fit_alpha_beta([r[0] for r in rows], [r[1] for r in rows],
                                      [p.latency for p in pts], peak_bandwidth)
    return AlphaBetaFit(collective, algorithm, alpha, bandwidth, pts)


def predict(fit: AlphaBetaFit, point: ProfilePoint) -> float:
    """Seconds the fit predicts for one point."""
    steps, moved = design(fit.collective, fit.algorithm, point.num_devices, point.size)
    return steps * fit.step_latency + moved / fit.bandwidth


def error_table(fit: AlphaBetaFit, points=None) -> list[tuple[str, str, int, float, float]]:
    """``(size range, devices, count, median, max relative error)`` rows, plus "all" rows."""
    pts = fit.points if points is None else tuple(points)
    err = [(p, abs(predict(fit, p) - p.latency) / p.latency) for p in pts]
    rows = []
    devices = sorted({p.num_devices for p, _ in err})
    for label, low, high in (*SIZE_RANGES, ("all", 0, math.inf)):
        for n in (*devices, "all"):
            e = [x for p, x in err if low <= p.size < high and n in ("all", p.num_devices)]
            if e:
                rows.append((label, str(n), len(e), float(np.median(e)), float(max(e))))
    return rows


def leave_one_device_count_out(points, collective: str, algorithm: str,
                               peak_bandwidth: float) -> list[tuple]:
    """Per held-out device count: fit on the others, :func:`error_table` on it."""
    pts = [p for p in points if p.collective == collective]
    counts = sorted({p.num_devices for p in pts})
    out = []
    for n in counts if len(counts) > 1 else ():
        fit = fit_points([p for p in pts if p.num_devices != n], collective, algorithm,
                         peak_bandwidth)
        out.extend(row for row in error_table(fit, [p for p in pts if p.num_devices == n])
                   if row[1] != "all")
    return out


__all__ = ["SIZE_RANGES", "AlphaBetaFit", "ProfilePoint", "design", "error_table",
           "fit_alpha_beta", "fit_points", "leave_one_device_count_out", "load_profile",
           "predict"]

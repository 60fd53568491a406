"""Measured alpha-beta constants of an interconnect's collectives.

The phase formulas of :mod:`llmsim_nb.network.phases` are already of the
alpha-beta form, ``T = steps * alpha + bytes_moved_per_device / B``. With
only datasheet figures, ``alpha`` is the wire + NIC latency of the
:class:`~llmsim_nb.network.topology.Dimension` and ``B`` its link peak, which
makes a small all-reduce at high TP nearly free (a few microseconds) while a
measured NCCL all-reduce of a few KiB takes tens of microseconds, and a large
one never reaches the link peak.

A :class:`CollectiveLatency` replaces both on dimension 0 of a topology with
constants fitted to measured collectives (:mod:`llmsim_nb.fidelity.collective_fit`):

- ``step_latency`` (alpha, s): cost of one step of the collective's
  algorithm, whatever it moves (kernel launch, NCCL's protocol handshake,
  the switch crossing);
- ``bandwidth`` (B, B/s): effective bytes per second a device moves in a step
  (what NCCL's tests call bus bandwidth), never above the link peak;
- ``algorithm``: which algorithm's step count and bytes the fit assumed
  (``ring``: ``2 (p - 1)`` steps for an all-reduce; ``direct``: 2), the
  default on the fitted dimension; ``others`` holds the constants fitted
  with the other algorithms, used when ``--collective`` asks for one (the
  alpha of one step depends on what a step is).

Every collective kind (all-reduce, reduce-scatter, all-gather, all-to-all)
then costs what :func:`~llmsim_nb.network.phases.phase_cost` gives on a
dimension whose per-step latency is ``step_latency`` and whose port
bandwidth is ``bandwidth``, so the graph, the chain fast paths and the
congestion model (which all take phases from
:class:`~llmsim_nb.network.collectives.CollectiveModel`) agree.
``send_latency`` / ``send_bandwidth`` are the fitted point-to-point figures:
:func:`~llmsim_nb.network.interconnect.interconnect_topology` builds the
dimension's link latency and bandwidth from them, so a SEND costs
``send_latency + size / send_bandwidth``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

#: Algorithms a fit may assume (those of :mod:`llmsim_nb.network.phases` that run on a Switch).
FIT_ALGORITHMS = ("ring", "direct", "halving_doubling")


def _check_positive(name: str, value, *, strict: bool, maximum: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (strict and value == 0) or value > maximum:
        raise ValueError(f"CollectiveLatency.{name}={value!r} must be a finite number "
                         f"{'>' if strict else '>='} 0 and <= {maximum:g}")


@dataclass(frozen=True)
class CollectiveLatency:
    """Fitted alpha-beta constants of one interconnect (SI units).

    Parameters
    ----------
    algorithm : str
        One of :data:`FIT_ALGORITHMS`; the default algorithm on the fitted
        dimension (an explicit ``--collective`` still wins).
    step_latency : float
        Alpha, seconds per collective step (>= 0, <= 1 s).
    bandwidth : float
        Effective collective bandwidth per device, B/s (> 0, <= ``peak_bandwidth``).
    send_latency : float
        Fixed cost of one point-to-point transfer, seconds (>= 0, <= 1 s).
    send_bandwidth : float
        Effective point-to-point bandwidth, B/s (> 0, <= ``peak_bandwidth``).
    peak_bandwidth : float
        The datasheet peak per device and direction the fit was bounded by, B/s.
    source : str
        The measurements and how they were fitted.
    others : tuple of (str, float, float)
        ``(algorithm, step_latency, bandwidth)`` fitted with other algorithms.
    """

    algorithm: str
    step_latency: float
    bandwidth: float
    send_latency: float
    send_bandwidth: float
    peak_bandwidth: float
    source: str
    others: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.algorithm not in FIT_ALGORITHMS:
            raise ValueError(f"CollectiveLatency.algorithm={self.algorithm!r} is not one of "
                             f"{list(FIT_ALGORITHMS)}")
        _check_positive("peak_bandwidth", self.peak_bandwidth, strict=True, maximum=1e24)
        for name in ("step_latency", "send_latency"):
            _check_positive(name, getattr(self, name), strict=False, maximum=1.0)
        for name in ("bandwidth", "send_bandwidth"):
            # A fit is bounded by the datasheet peak: more is not physical.
            _check_positive(name, getattr(self, name), strict=True,
                            maximum=self.peak_bandwidth * (1 + 1e-9))
        if isinstance(self.others, list):
            object.__setattr__(self, "others", tuple(tuple(o) for o in self.others))
        if not isinstance(self.others, tuple) or not all(
                isinstance(o, tuple) and len(o) == 3 for o in self.others):
            raise ValueError(f"CollectiveLatency.others={self.others!r} must be a tuple of "
                             f"(algorithm, step_latency, bandwidth)")
        seen = {self.algorithm}
        for alg, alpha, bandwidth in self.others:
            if alg not in FIT_ALGORITHMS or alg in seen:
                raise ValueError(f"CollectiveLatency.others: algorithm {alg!r} must be one of "
                                 f"{list(FIT_ALGORITHMS)}, listed once and not the default")
            seen.add(alg)
            _check_positive(f"others[{alg}].step_latency", alpha, strict=False, maximum=1.0)
            _check_positive(f"others[{alg}].bandwidth", bandwidth, strict=True,
                            maximum=self.peak_bandwidth * (1 + 1e-9))
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"CollectiveLatency.source={self.source!r} must name the "
                             f"measurements the constants were fitted to")

    def constants(self, algorithm: str) -> tuple[float, float]:
        """``(step_latency, bandwidth)`` fitted with ``algorithm``; a clear error if none was."""
        if algorithm == self.algorithm:
            return self.step_latency, self.bandwidth
        for alg, alpha, bandwidth in self.others:
            if alg == algorithm:
                return alpha, bandwidth
        raise ValueError(f"collective algorithm {algorithm!r} has no fitted constants on this "
                         f"interconnect; fitted: {[self.algorithm, *(o[0] for o in self.others)]}")

    def send_time(self, size: float) -> float:
        """Point-to-point time of ``size`` bytes: ``send_latency + size / send_bandwidth``."""
        return self.send_latency + size / self.send_bandwidth


def fitted_dimension(d, fit: CollectiveLatency, algorithm: str):
    """``d`` with the fit's collective figures for ``algorithm``, to price its phases.

    On a Switch one step costs ``2 latency + router_latency + nic_latency``
    and the port carries ``bandwidth * num_links``
    (:func:`~llmsim_nb.network.phases.phase_cost`): the fitted dimension has
    no wire latency, the whole alpha as its NIC latency and one link of the
    fitted bandwidth. Other kinds: the same substitution (their step is
    ``latency + nic_latency``).
    """
    alpha, bandwidth = fit.constants(algorithm)
    return dataclasses.replace(d, bandwidth=float(bandwidth), num_links=1, latency=0.0,
                               router_latency=0.0, nic_latency=float(alpha))


__all__ = ["FIT_ALGORITHMS", "CollectiveLatency", "fitted_dimension"]

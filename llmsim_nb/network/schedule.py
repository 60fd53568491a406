"""The result of running an execution graph: when each node started and ended."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class GraphSchedule:
    """When each node of a graph ran.

    Produced by :meth:`llmsim_nb.network.Network.run`; the arrays are
    read-only so a schedule can be shared without copying.

    Attributes
    ----------
    start_at, end_at : numpy.ndarray of float64
        Seconds from the start of the graph, indexed by node id.
    makespan : float
        Latest end time (0 for an empty graph).
    device_busy : dict of int to float
        Seconds of COMP work per device that has COMP nodes.
    link_bytes : dict of str to float
        Bytes carried per link class (``"dim0"``, ``"dim1"``, ..., ``"host"``),
        counting a representative's transfers ``multiplicity`` times.
    congestion : bool
        Whether the congestion-aware model produced it.
    unit_busy : dict of (int, int) to float
        Seconds of COMP work per ``(device, unit)`` for units other than 0
        (``device_busy`` counts unit 0 only).
    """

    start_at: np.ndarray
    end_at: np.ndarray
    makespan: float
    device_busy: dict[int, float]
    link_bytes: dict[str, float]
    congestion: bool = False
    unit_busy: dict = field(default_factory=dict)

    @property
    def durations(self) -> np.ndarray:
        """``end_at - start_at`` per node, seconds."""
        return self.end_at - self.start_at


__all__ = ["GraphSchedule"]

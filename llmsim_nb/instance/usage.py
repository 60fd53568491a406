"""Usage: what an instance's devices and links did over a run.

Busy seconds per device (and per PIM unit) and bytes per link class, summed
over every iteration. ``Network.run``'s schedule gives them for a built graph;
the chain shortcut (:mod:`.chain`) adds the same amounts without a graph.
Invariant: every value only grows (busy time and bytes are never negative).
"""

from __future__ import annotations

import numpy as np

from ..graph.nodes import NodeType


class Usage:
    """Accumulated busy time per device and bytes per link class.

    Parameters
    ----------
    num_devices : int
        Devices of the instance's network.

    Attributes
    ----------
    device_busy : ndarray of float64, shape (num_devices,)
        Seconds each device computed (the NPU / GPU unit), s.
    pim_busy : ndarray of float64, shape (num_devices,)
        Seconds each device's PIM unit computed, s.
    link_bytes : dict of str to float
        Bytes moved per link class (``host``, a dimension's name...), B.
    """

    def __init__(self, num_devices: int) -> None:
        self.device_busy = np.zeros(num_devices)
        self.pim_busy = np.zeros(num_devices)
        self.link_bytes: dict[str, float] = {}

    def add_schedule(self, graph, schedule) -> None:
        """Add one executed graph (a class representative's time for its whole class)."""
        for device, busy in schedule.device_busy.items():
            self.device_busy[list(graph.classes.get(device, (device,)))] += busy
        for (device, _unit), busy in schedule.unit_busy.items():  # PIM units
            self.pim_busy[list(graph.classes.get(device, (device,)))] += busy
        self.add_link_bytes(schedule.link_bytes)

    def add_link_bytes(self, moved: dict[str, float]) -> None:
        for link, size in moved.items():
            self.link_bytes[link] = self.link_bytes.get(link, 0.0) + size


def host_transfer_latency(graph, schedule) -> float:
    """Time device 0 spends storing / loading KV over its host link (both
    directions run at once, so this is the longer of the two)."""
    longest = 0.0
    for node in graph.nodes:
        if node.type in (NodeType.MEM_STORE, NodeType.MEM_LOAD) and node.device == 0:
            longest = max(longest, schedule.end_at[node.id] - schedule.start_at[node.id])
    return longest

"""The link model: how transfers that overlap in time use the network's links.

Running an execution graph (:func:`~llmsim_nb.network.event_loop.execute`) is
the same discrete-event loop whatever the network mode; the one thing that
differs is how long a transfer takes when others run at the same time. That
part is a :class:`LinkModel`, one instance per run:

- :class:`UnloadedLinks` (``Network(congestion=False)``): every transfer
  takes its own unloaded alpha-beta time, as if it had the links to itself;
- :class:`~llmsim_nb.network.fair_share.FairShareLinks`
  (``Network(congestion=True)``): concurrent transfers share link bandwidth
  fairly.

Protocol
--------
A model *claims* the nodes it times (:attr:`LinkModel.claims`). When a
claimed node becomes ready the loop calls :meth:`LinkModel.begin`; the model
puts its own events on the loop's heap, receives them back through
:meth:`LinkModel.on_event`, and returns True from there at the instant the
node has finished. Any other node ends after the fixed (unloaded) duration
that :meth:`Network.run <llmsim_nb.network.Network.run>` computed for it.

Events
------
The heap holds ``(time, tag, node, version)`` tuples, so the events of one
instant are handled tag by tag and, within a tag, by node id:

- :data:`FIXED_END` (0): a node with a fixed duration (COMP or unclaimed)
  ends; owned by the loop, ``version`` is always 0;
- :data:`STAGE_START` (1) and :data:`STAGE_END` (2): owned by the link model.
  A model that reschedules a prediction bumps its own version counter and
  ignores events that carry an older one (they are stale, not removed).

Invariant: a model never pushes an event earlier than the current time, so
the loop's clock never goes back.

Transfers
---------
A model whose :attr:`LinkModel.congestion` is True is told about every node
that moves bytes over a link, as ``transfers[node] = (kind, payload)``:

- ``("send", (links, latency, size))``: a SEND on a non-empty route (its
  :data:`~llmsim_nb.network.topology.LinkId` tuple, the path latency, bytes);
- ``("host", (direction, size))``: a MEM_LOAD (``"load"``) or MEM_STORE
  (``"store"``) over the device's host link;
- ``("coll", (cost, members))``: a collective with a positive duration (its
  :class:`~llmsim_nb.network.collectives.CollectiveCost` and sorted group).

Models with ``congestion = False`` get an empty dict: building it would only
cost time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Container
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .network import Network

#: Event tag: a node with a fixed duration (COMP, or a transfer not claimed) ends.
FIXED_END = 0
#: Event tag: a claimed transfer's stage has paid its latency; its bytes start moving.
STAGE_START = 1
#: Event tag: a claimed transfer's stage is predicted to end.
STAGE_END = 2

#: ``node -> (kind, payload)``; see the module docstring.
Transfers = dict[int, tuple[str, tuple]]


class LinkModel(ABC):
    """How concurrent transfers share links during one run of a graph.

    :meth:`Network.run <llmsim_nb.network.Network.run>` creates one instance
    per run as ``model(network, transfers, device)`` and hands it to the
    event loop; the instance may keep per-run state.

    Parameters
    ----------
    network : Network
        The network being run (topology, host link figures, caches).
    transfers : dict
        ``node -> (kind, payload)`` (see the module docstring); empty unless
        :attr:`congestion` is True.
    device : list
        Device of each node, indexed by node id (a ``(device, unit)`` tuple
        for COMP nodes on a unit other than 0).
    """

    #: True when concurrent transfers slow each other down. ``Network.run``
    #: then fills ``transfers`` and marks the schedule ``congestion=True``.
    congestion: ClassVar[bool] = False

    #: Node ids this model times (a set-like container, fixed for the run).
    claims: Container[int] = frozenset()

    def __init__(self, network: Network, transfers: Transfers, device: list) -> None:
        pass

    @abstractmethod
    def begin(self, node: int, t: float, heap: list) -> None:
        """Start the claimed ``node``, ready at time ``t``.

        Must push the node's first event on ``heap``, at a time ``>= t``.
        """

    @abstractmethod
    def on_event(self, tag: int, node: int, version: int, t: float, heap: list) -> bool:
        """Handle a :data:`STAGE_START` / :data:`STAGE_END` event of ``node`` at ``t``.

        Returns
        -------
        bool
            True if ``node`` finished at ``t``.
        """


class UnloadedLinks(LinkModel):
    """Every transfer takes its unloaded time: links are never contended.

    ``T = latency + size / bottleneck bandwidth`` for a SEND, ``size /
    host_bandwidth + host_latency`` for a host transfer, the collective's
    :class:`~llmsim_nb.network.collectives.CollectiveCost` duration. It
    claims no node, so the loop charges those fixed durations; only
    compute units are contended. Fast; use it for sweeps.
    """

    congestion: ClassVar[bool] = False
    claims: Container[int] = frozenset()

    # It claims no node, so the loop never calls these.
    def begin(self, node: int, t: float, heap: list) -> None:
        raise AssertionError(f"UnloadedLinks does not time node {node}")

    def on_event(self, tag: int, node: int, version: int, t: float, heap: list) -> bool:
        raise AssertionError(f"UnloadedLinks got event tag {tag} for node {node}")


__all__ = ["FIXED_END", "STAGE_END", "STAGE_START", "LinkModel", "Transfers",
           "UnloadedLinks"]

"""Prefill/decode disaggregation: a prefilled request's KV moves to a decode instance.

As vLLM's disaggregated prefill with a KV connector (``NixlConnector``),
DistServe and Splitwise run it:

1. A request is routed to a *prefill* instance, which computes its prompt and
   emits the first token (TTFT is counted there). It is submitted with one
   output token and ``hold_kv``: its blocks stay allocated after it finishes.
2. At that moment (the end of the prefill iteration) the *decode router*
   picks a decode instance from the decode pool's states; the request is
   handed to it with its ``P`` prompt tokens' KV arriving from the prefill
   side and its first output token already made
   (:mod:`llmsim_nb.scheduler.kv_transfer`): its next step computes that
   token's KV and emits the second, ``O - 1`` outputs in all there.
3. The decode instance admits it when its blocks fit (a shortage delays the
   transfer; nothing is dropped). The transfer then runs for ``latency``; the
   request decodes from then on, and the prefill instance frees its blocks
   when the transfer ends (the KV is held on both sides meanwhile).

The transfer is the whole prompt's KV at once after the prefill (vLLM's
connector reads all blocks when the prefill is done; layer-by-layer
streaming, as Mooncake and LMCache can, is not modelled). Its bytes are the
prompt's KV on the prefill instance's layout: every device of every stage
holds ``kv_bytes_per_token`` per token (:class:`~llmsim_nb.system.memory_plan.MemoryPlan`).
Every device sends its share over its own NIC and every decode device
receives its share, all at once (under attention placed by request or data
parallelism a request's KV is on one rank, which moves it all); the transfer takes the network model's
send time (``Network.send_time`` over the ``kv_link`` interconnect between
two devices: the switch's two link latencies, the NIC's per-transfer
software latency and the bytes over one NIC's bandwidth) of the larger of
the two per-device shares. Transfers do not slow each other (no contention
between concurrent transfers on a NIC).

A request with one output token finishes on the prefill instance; nothing
moves.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from ..network import Network
from ..network.interconnect import interconnect_topology
from ..workload.request import Request


@dataclass
class Handoff:
    """One request's way from its prefill to its decode instance.

    Attributes
    ----------
    request : int
        Its index in the cluster.
    prefill, prefill_local : int
        The prefill instance and the request's index there.
    handed_at : float
        When the prefill instance emitted the first token, s.
    decode, decode_local : int
        The decode instance and its index there (-1 until handed over).
    num_bytes : float
        KV bytes moved (the prompt's KV on the prefill instance's layout), B.
    latency : float
        Transfer time once started, s.
    started_at : float
        When the decode instance had the blocks and the transfer began, s (NaN before).
    """

    request: int
    prefill: int
    prefill_local: int
    handed_at: float
    decode: int = -1
    decode_local: int = -1
    num_bytes: float = 0.0
    latency: float = 0.0
    started_at: float = math.nan


def _per_device(instance) -> float:
    """KV bytes per token one device of ``instance`` holds for a request: its
    stage's share, or, where a request's KV lives on one rank (attention
    placed by request or data parallel), that rank's whole stage's."""
    layout = instance.layout
    whole = layout.tp if layout.attention in ("requests", "data") and layout.tp > 1 else 1
    return max(instance.memory.kv_bytes_per_token) * whole


class Disaggregation:
    """The handoffs of one cluster (see the module docstring).

    Parameters
    ----------
    cluster : Cluster
        Its instances, roles, logs and requests.
    router : Router
        The decode router.
    kv_link : str
        Interconnect preset of the transfers.
    """

    def __init__(self, cluster, router, kv_link: str) -> None:
        self.cluster = cluster
        self.router = router
        self._network = Network(interconnect_topology(kv_link, 2))
        self.decode_pool = [k for k, role in enumerate(cluster.roles) if role == "decode"]
        self.handoffs: dict[int, Handoff] = {}
        self._due: list[tuple[float, int]] = []            # (handed_at, request), a heap
        # (prefill, decode) -> KV bytes per token: in all, per sending and per receiving device.
        self._per_token: dict[tuple[int, int], tuple] = {}

    # --------------------------------------------------------------- sizes
    def transfer(self, prefill: int, decode: int, num_tokens: int) -> tuple[float, float]:
        """``(bytes, seconds)`` of moving ``num_tokens`` tokens' KV (see the module docstring)."""
        per_token = self._per_token.get((prefill, decode))
        if per_token is None:  # the instances' layouts do not change: once per pair
            sender = self.cluster.instances[prefill]
            receiver = self.cluster.instances[decode]
            tp = sender.layout.tp
            per_token = self._per_token[prefill, decode] = (
                sum(kv * tp for kv in sender.memory.kv_bytes_per_token),
                _per_device(sender), _per_device(receiver))
        whole, per_sender, per_receiver = per_token
        total = float(whole * num_tokens)
        return total, self._network.send_time(
            0, 1, float(max(per_sender * num_tokens, per_receiver * num_tokens)))

    # ---------------------------------------------------------------- flow
    def prefilled(self, k: int) -> None:
        """After an iteration of prefill instance ``k``: queue its finished
        requests that have tokens left to decode."""
        inst = self.cluster.instances[k]
        owners = self.cluster.local_requests[k]
        for local in inst.last_finished:
            r = owners[local]
            if self.cluster.requests[r].num_output_tokens > 1:
                self.handoffs[r] = Handoff(r, k, local, inst.now)
                heapq.heappush(self._due, (inst.now, r))

    def next_at(self) -> float | None:
        """When the next queued handoff is due (None: none queued)."""
        return self._due[0][0] if self._due else None

    def deliver(self) -> None:
        """Hand the earliest queued request to a decode instance."""
        at, r = heapq.heappop(self._due)
        h = self.handoffs[r]
        cluster = self.cluster
        request = cluster.requests[r]
        d = cluster.choose(self.decode_pool, request, at, router=self.router)
        h.num_bytes, h.latency = self.transfer(h.prefill, d, request.num_prompt_tokens)
        # The prompt, whose KV arrives, and its outputs, the first made already.
        second = Request(request.request_id, at, request.num_prompt_tokens,
                         request.num_output_tokens, None, request.priority)
        h.decode = d
        h.decode_local = cluster.submit_to(d, r, second, at,
                                           num_external_tokens=request.num_prompt_tokens,
                                           external_latency=h.latency, first_token_at=at)

    def decoded(self, d: int) -> None:
        """After an iteration of decode instance ``d``: transfers that began
        there; their prefill sides free the blocks when each ends."""
        transfers = self.cluster.instances[d].scheduler.transfers
        if not transfers.admitted:  # most decode iterations admit no transfer
            return
        for local, started, ready in transfers.take_admitted():
            h = self.handoffs[self.cluster.local_requests[d][local]]
            h.started_at = started
            self.cluster.instances[h.prefill].scheduler.transfers.release_at(
                h.prefill_local, ready)
            self.cluster.wake(h.prefill)


__all__ = ["Disaggregation", "Handoff"]

"""Closed-loop multi-turn sessions served by one instance.

A session's turn ``k + 1`` arrives a think time after turn ``k`` *finished*, so
the arrivals depend on the simulated latencies and cannot be a trace given up
front. :class:`SessionRun` keeps the turns not yet due in a queue ordered by
arrival time and hands each to the instance (:meth:`Instance.submit`) once the
instance's clock has reached it; when an iteration finishes a turn, the
session's next turn is queued at ``finished_at + think_time``. Its prompt
repeats the whole conversation so far (:class:`~llmsim_nb.workload.sessions.
SessionWorkload`), so with prefix caching it finds its own history cached.

``run()`` is repeated ``step()``, as for an instance. Requests are submitted
in arrival order (a queued turn is never earlier than one already submitted:
it arrives after a finish, which is after the clock that released the others).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from ..results.dataset import iteration_dataset
from ..scheduler.request_state import FINISHED
from .instance import Instance, SimulationFinished

if TYPE_CHECKING:
    import xarray as xr

    from ..workload.sessions import SessionWorkload


class SessionRun:
    """Serve a :class:`SessionWorkload` on an :class:`Instance`, turn by turn.

    Parameters
    ----------
    instance : Instance
        A fresh instance (nothing submitted yet).
    workload : SessionWorkload

    Attributes
    ----------
    instance : Instance
    turn_of : list of (int, int)
        ``(session, turn)`` of each submitted request, by its index in the instance.
    """

    def __init__(self, instance: Instance, workload: SessionWorkload) -> None:
        if not isinstance(instance, Instance):
            raise TypeError(f"SessionRun(instance=...) must be an Instance, got "
                            f"{type(instance).__name__}")
        if len(instance.scheduler.table):
            raise ValueError("SessionRun needs a fresh instance; this one already has "
                             f"{len(instance.scheduler.table)} requests")
        self.instance = instance
        self.workload = workload
        self.turn_of: list[tuple[int, int]] = []
        self._due: list[tuple[float, int, int]] = [
            (s.start_at, k, 0) for k, s in enumerate(workload.sessions)]
        heapq.heapify(self._due)
        self._open: set[int] = set()  # submitted turns not yet finished
        self.instance._trace_source = workload.source

    @property
    def is_finished(self) -> bool:
        return not self._due and self.instance.is_finished

    def _release(self) -> None:
        """Submit every queued turn due by the instance's next event."""
        inst = self.instance
        while self._due:
            next_at = inst.next_event_at
            at, session, turn = self._due[0]
            if next_at is not None and at > next_at:
                return
            heapq.heappop(self._due)
            request = self.workload.request(session, turn, at, len(self.turn_of))
            self._open.add(inst.submit(request))
            self.turn_of.append((session, turn))

    def _follow_up(self) -> None:
        """Queue the next turn of every session whose current turn finished."""
        table = self.instance.scheduler.table
        done = [i for i in self._open if table.status[i] == FINISHED]
        for i in sorted(done):
            self._open.discard(i)
            session, turn = self.turn_of[i]
            turns = self.workload.sessions[session].turns
            if turn + 1 < len(turns):
                at = float(table.finished_at[i]) + turns[turn + 1].think_time
                heapq.heappush(self._due, (at, session, turn + 1))

    def _advance(self, with_graph: bool):
        """One iteration (its IterationRecord), or None when there was none to run."""
        self._release()
        if self.instance.is_finished:
            return None
        try:
            record = self.instance._advance(with_graph=with_graph)
        except SimulationFinished:
            record = None
        self._follow_up()
        return record

    def step(self) -> xr.Dataset:
        """Simulate the next iteration; its Dataset, as :meth:`Instance.step`.

        Raises
        ------
        SimulationFinished
            When every turn of every session has finished.
        """
        while True:
            if self.is_finished:
                raise SimulationFinished("every turn of every session has finished")
            record = self._advance(with_graph=True)
            if record is not None:
                inst = self.instance
                return iteration_dataset(record, inst.op_names, inst.attrs(),
                                         inst.last_graph, inst.last_schedule)

    def run(self) -> xr.Dataset:
        """Serve every session to its last turn; the run's Dataset."""
        inst = self.instance
        inst._fast_run.before_run()
        while not self.is_finished:
            self._advance(with_graph=False)
        inst._fast_run.after_run()
        return inst.results()

"""Recording a run: one :class:`IterationRecord` per iteration, kept in a :class:`Recorder`.

The simulator fills an IterationRecord after each iteration; the Recorder
keeps its values in growable numpy buffers (no Dataset until the run's end).
"""

from __future__ import annotations

from collections.abc import Mapping

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..scheduler.plan import IterationPlan
from .variables import INT_VARS, ITERATION_VARS, variable

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True, slots=True)
class IterationRecord:
    """What one simulated iteration produced (the simulator fills it)."""

    plan: IterationPlan
    t_start: float
    t_end: float
    compute_latency: float
    host_transfer_latency: float
    op_latency: np.ndarray
    finished: tuple[int, ...]
    reuse_hits: int = 0
    reuse_misses: int = 0
    expert_tokens: np.ndarray | None = None       # MoE: tokens per routed expert
    rank_expert_tokens: np.ndarray | None = None  # expert parallelism: per rank
    dispatch_bytes: float = 0.0                   # attention data parallelism

    @property
    def latency(self) -> float:
        return self.t_end - self.t_start

    def row(self) -> tuple[float, ...]:
        """The iteration's values in :data:`ITERATION_VARS` order."""
        plan = self.plan
        batch = plan.batch
        prefill = plan.num_prefill_tokens
        return (self.t_start, self.t_end, self.t_end - self.t_start, self.compute_latency,
                self.host_transfer_latency, len(batch.request_ids), prefill,
                batch.num_tokens - prefill, int(np.add.reduce(batch.num_logit_tokens)), plan.kv_usage,
                plan.num_used_blocks, len(plan.evicted_request_ids),
                len(plan.reloaded_request_ids), plan.evicted_bytes, plan.reloaded_bytes,
                len(self.finished), plan.computed_prompt_tokens, plan.num_prefix_query_tokens,
                plan.num_cached_tokens,
                plan.num_host_cached_tokens, plan.prefix_hit_rate,
                len(plan.preempted_request_ids), self.reuse_hits, self.reuse_misses,
                *self._expert_row(), self.dispatch_bytes)

    def _expert_row(self) -> tuple[int, int, int]:
        experts, ranks = self.expert_tokens, self.rank_expert_tokens
        if experts is None:
            return 0, 0, 0
        return (int(np.count_nonzero(experts)), int(experts.max()),
                int(ranks.max()) if ranks is not None else 0)

    def values(self) -> dict[str, float]:
        """The iteration's values by variable name."""
        return dict(zip(ITERATION_VARS, self.row()))


#: Rows of every chunk of a :class:`Recorder` once it has grown that far (the
#: first chunks are smaller, so a short run stays small).
CHUNK_ROWS = 4096
_COLUMN = {name: j for j, name in enumerate(ITERATION_VARS)}


class Recorder:
    """Per-iteration values in chunks of numpy rows (O(1) append, nothing copied as a run grows).

    One float64 row per iteration (one write per append); integer variables
    are exact in float64 and converted when the Dataset is built. Chunks
    double from ``capacity`` rows up to :data:`CHUNK_ROWS`, so at most one
    chunk is partly used: a long run holds about what it recorded (a
    doubling buffer holds up to twice that, and copies it at every growth).
    """

    def __init__(self, op_names: tuple[str, ...], capacity: int = 256) -> None:
        self.op_names = op_names
        self.num_iterations = 0
        self._full: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, ops) of full chunks
        self._rows = np.empty((capacity, len(ITERATION_VARS)), dtype=np.float64)
        self._ops = np.empty((capacity, len(op_names)), dtype=np.float64)
        self._used = 0  # rows used in the current chunk

    def append(self, record: IterationRecord) -> None:
        j = self._used
        if j == len(self._rows):
            self._next_chunk()
            j = 0
        self._rows[j] = record.row()
        self._ops[j] = record.op_latency
        self._used = j + 1
        self.num_iterations += 1

    def _next_chunk(self) -> None:
        self._full.append((self._rows, self._ops))
        size = max(min(2 * len(self._rows), CHUNK_ROWS), len(self._rows))
        self._rows = np.empty((size, self._rows.shape[1]), dtype=np.float64)
        self._ops = np.empty((size, self._ops.shape[1]), dtype=np.float64)
        self._used = 0

    def _chunks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [*self._full, (self._rows[:self._used], self._ops[:self._used])]

    def column(self, name: str) -> np.ndarray:
        """One iteration variable's values, every iteration (a new array;
        integers as int64)."""
        j = _COLUMN[name]
        return np.concatenate([rows[:, j] for rows, _ in self._chunks()],
                              dtype=np.int64 if name in INT_VARS else np.float64,
                              casting="unsafe")

    def op_latencies(self) -> np.ndarray:
        """Seconds per iteration (rows) and operator (columns), every iteration
        (a new array)."""
        return np.concatenate([ops for _, ops in self._chunks()])

    def extra_arrays(self) -> dict[str, np.ndarray]:
        """Arrays a subclass records beside the iteration variables (none here)."""
        return {}

    def iteration_arrays(self, with_ops: bool = True) -> dict[str, np.ndarray]:
        """Every iteration variable's values (integers as int64), by name,
        ``op_latency`` unless ``with_ops`` is false, and :meth:`extra_arrays`."""
        out = {name: self.column(name) for name in ITERATION_VARS}
        if with_ops:
            out["op_latency"] = self.op_latencies()
        out.update(self.extra_arrays())
        return out

    def lazy_arrays(self, others: dict[str, np.ndarray]) -> "LazyColumns":
        """:meth:`iteration_arrays` without ``op_latency``, each iteration
        variable made when read (see :class:`LazyColumns`), with ``others``."""
        return LazyColumns(self, {**self.extra_arrays(), **others})

    def iteration_variables(self) -> dict[str, xr.Variable]:
        arrays = self.iteration_arrays()
        out = {name: variable(name, ("iteration",), arrays[name]) for name in ITERATION_VARS}
        out["op_latency"] = variable("op_latency", ("iteration", "op"), arrays["op_latency"])
        return out


class LazyColumns(Mapping):
    """Iteration variables read from a :class:`Recorder` when asked for (a new
    array at each read), and other arrays as given.

    A cluster's results read each instance's iteration variable once, one
    variable at a time, so no instance's whole table is copied at once (for a
    million requests over 64 instances, about 0.3 GB less at the peak).
    """

    def __init__(self, recorder: Recorder, others: dict[str, np.ndarray]) -> None:
        self._recorder, self._others = recorder, others

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._others:
            return self._others[name]
        if name in _COLUMN:
            return self._recorder.column(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:  # without making the column
        return name in self._others or name in _COLUMN

    def __iter__(self):
        yield from ITERATION_VARS
        yield from (name for name in self._others if name not in _COLUMN)

    def __len__(self) -> int:
        return len(ITERATION_VARS) + sum(name not in _COLUMN for name in self._others)

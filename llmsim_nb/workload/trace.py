"""An immutable, column-oriented sequence of requests (a workload trace)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from .content import PromptContent
from .request import Request
from .trace_columns import (MAX_ARRIVAL_S, MAX_TOKENS, TraceError, _arrival_column, _int_column,
                            _priority_column)
from .trace_summary import trace_summary

__all__ = ["MAX_ARRIVAL_S", "MAX_TOKENS", "Trace", "TraceError"]


def _slice_text(index: slice) -> str:
    parts = ["" if v is None else str(v) for v in (index.start, index.stop, index.step)]
    return ":".join(parts[:2] if index.step is None else parts)


@dataclass(frozen=True, eq=False, repr=False)
class Trace:
    """A workload: requests stored as equally long numpy columns.

    Request ``i`` (its ``request_id`` is ``i``) arrives at ``arrival_at[i]``
    with ``num_prompt_tokens[i]`` prompt tokens and asks for
    ``num_output_tokens[i]`` generated tokens, with scheduling priority
    ``priority[i]`` (0 for all when ``priority`` is None).

    Parameters
    ----------
    arrival_at : array_like of float
        Arrival times in seconds; finite, ``>= 0`` and non-decreasing. Stored
        as a read-only ``float64`` array.
    num_prompt_tokens : array_like of int
        Prompt lengths, integers ``>= 1``. Stored as read-only ``int64``.
    num_output_tokens : array_like of int
        Tokens to generate, integers ``>= 0``. Stored as read-only ``int64``.
    source : str, optional
        Human-readable description of where the trace came from (file path or
        generator spec).
    content : PromptContent or None, optional
        What each request's prompt and output are, for prefix caching (see
        :mod:`.content`): one row per request, row ``i``'s segments adding up
        to ``num_prompt_tokens[i]``. ``None`` (the default): no request shares
        content with another.
    priority : array_like of int or None, optional
        Each request's scheduling priority for vLLM's ``scheduling_policy=
        "priority"`` (lower is served first): integers that fit int64, any
        sign. Stored as a read-only ``int64`` copy. ``None`` (the default):
        no column, every request has vLLM's default priority 0.

    Raises
    ------
    TraceError
        If the columns are empty, of different lengths, of a non-integer dtype
        (token counts, priority), or hold out-of-range / non-finite /
        decreasing values; or if ``content`` is not a PromptContent of
        ``len(self)`` rows whose prompt lengths match (the message names the
        first row that differs).

    Notes
    -----
    Arrays are copied on construction and made read-only, so a ``Trace`` is
    truly immutable. Equality compares all columns, ``source``, ``content`` and
    ``priority`` (a trace without a priority column differs from one whose
    column is all zeros, as their files do). Slicing, :meth:`head`,
    :meth:`filter`, :meth:`sort` and :meth:`scale_rate` keep the content and
    priority of the requests they keep.
    """

    arrival_at: np.ndarray
    num_prompt_tokens: np.ndarray
    num_output_tokens: np.ndarray
    source: str = "in-memory"
    content: PromptContent | None = None
    priority: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise TraceError(f"Trace.source must be a str, got {type(self.source).__name__}")
        names = ("arrival_at", "num_prompt_tokens", "num_output_tokens")
        lengths = {name: int(np.size(getattr(self, name)))
                   for name in names + (("priority",) if self.priority is not None else ())}
        if len(set(lengths.values())) != 1:
            raise TraceError(f"Trace columns must have equal lengths, got {lengths}")
        if lengths["arrival_at"] == 0:
            raise TraceError("Trace must hold at least one request, got 0")
        arrival = _arrival_column(self.arrival_at)
        prompt = _int_column("num_prompt_tokens", self.num_prompt_tokens, 1)
        output = _int_column("num_output_tokens", self.num_output_tokens, 0)
        object.__setattr__(self, "arrival_at", arrival)
        object.__setattr__(self, "num_prompt_tokens", prompt)
        object.__setattr__(self, "num_output_tokens", output)
        if self.priority is not None:
            object.__setattr__(self, "priority", _priority_column(self.priority))
        if self.content is not None:
            self._check_content(self.content)

    def _check_content(self, content: object) -> None:
        if not isinstance(content, PromptContent):
            raise TraceError(f"Trace.content must be a PromptContent or None, got "
                             f"{type(content).__name__}")
        if len(content) != len(self):
            raise TraceError(f"Trace.content has {len(content)} rows; must have one per request "
                             f"({len(self)})")
        bad = np.flatnonzero(content.num_prompt_tokens() != self.num_prompt_tokens)
        if bad.size:
            i = int(bad[0])
            given = int(content.num_prompt_tokens()[i])
            raise TraceError(f"Trace.content row {i} describes {given}"
                             f" prompt tokens (its segment lengths' sum) but num_prompt_tokens[{i}]"
                             f" = {int(self.num_prompt_tokens[i])}; they must be equal")

    def _content_of(self, index: np.ndarray | slice) -> PromptContent | None:
        return None if self.content is None else self.content.take(index)

    def _priority_of(self, index: np.ndarray | slice) -> np.ndarray | None:
        return None if self.priority is None else self.priority[index]

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.arrival_at.size)

    def __getitem__(self, index: int | slice) -> Request | Trace:
        """Return request ``index`` or, for a slice, a new (re-numbered) Trace."""
        if isinstance(index, slice):
            return Trace(
                self.arrival_at[index],
                self.num_prompt_tokens[index],
                self.num_output_tokens[index],
                source=f"{self.source}[{_slice_text(index)}]",
                content=self._content_of(index),
                priority=self._priority_of(index),
            )
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Trace indices must be int or slice, got {type(index).__name__}")
        n = len(self)
        i = int(index)
        if i < -n or i >= n:
            raise IndexError(f"request index {i} out of range for a trace of {n} requests")
        i %= n
        return Request(
            request_id=i,
            arrival_at=float(self.arrival_at[i]),
            num_prompt_tokens=int(self.num_prompt_tokens[i]),
            num_output_tokens=int(self.num_output_tokens[i]),
            content=None if self.content is None else self.content.row(i),
            priority=0 if self.priority is None else int(self.priority[i]),
        )

    def __iter__(self) -> Iterator[Request]:
        priority = repeat(0) if self.priority is None else self.priority.tolist()
        columns = zip(self.arrival_at.tolist(), self.num_prompt_tokens.tolist(),
                      self.num_output_tokens.tolist(), priority)
        row = None if self.content is None else self.content.row
        for i, (t, p, o, q) in enumerate(columns):
            yield Request(request_id=i, arrival_at=t, num_prompt_tokens=p, num_output_tokens=o,
                          content=None if row is None else row(i), priority=q)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return (
            self.source == other.source
            and np.array_equal(self.arrival_at, other.arrival_at)
            and np.array_equal(self.num_prompt_tokens, other.num_prompt_tokens)
            and np.array_equal(self.num_output_tokens, other.num_output_tokens)
            and (self.content is None) == (other.content is None)
            and (self.content is None or self.content == other.content)
            and (self.priority is None) == (other.priority is None)
            and (self.priority is None or np.array_equal(self.priority, other.priority))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        duration = float(self.arrival_at[-1] - self.arrival_at[0])
        return f"Trace({len(self)} requests over {duration:.3f} s, source={self.source!r})"

    # ------------------------------------------------------------ construction
    def head(self, n: int) -> Trace:
        """Return a trace of the first ``n`` requests.

        Parameters
        ----------
        n : int
            Number of requests, ``1 <= n <= len(self)``. Asking for more
            requests than the trace holds is an error (no silent truncation).

        Returns
        -------
        Trace
        """
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise ValueError(f"Trace.head: n must be an integer, got {n!r}")
        if not 1 <= n <= len(self):
            raise ValueError(
                f"Trace.head: n = {n} out of range; must be between 1 and {len(self)} "
                f"(the trace length)"
            )
        return self._derived(slice(0, int(n)), f"first {int(n)}")

    def _derived(self, index: np.ndarray | slice, what: str,
                 arrival_at: np.ndarray | None = None) -> Trace:
        """A new trace of the rows ``index`` (re-numbered), its source saying ``what``."""
        return Trace(
            self.arrival_at[index] if arrival_at is None else arrival_at,
            self.num_prompt_tokens[index],
            self.num_output_tokens[index],
            source=f"{self.source} ({what})",
            content=self._content_of(index),
            priority=self._priority_of(index),
        )

    def filter(self, keep: np.ndarray | Callable[[Trace], np.ndarray], *,
               label: str = "") -> Trace:
        """Return a trace of the requests ``keep`` selects, in their order.

        Parameters
        ----------
        keep : array_like of bool or callable
            A boolean mask with one entry per request, or a function called
            once with this trace that returns such a mask (vectorized, e.g.
            ``lambda t: t.num_prompt_tokens <= 512``).
        label : str, optional
            What the filter keeps, for the new trace's ``source``.

        Returns
        -------
        Trace
            Re-numbered; ``source`` ends ``(kept K of N: label)``.

        Raises
        ------
        ValueError
            If the mask is not boolean of length ``len(self)``, or keeps nothing.
        """
        mask = np.asarray(keep(self) if callable(keep) else keep)
        n = len(self)
        if mask.dtype != np.bool_ or mask.shape != (n,):
            raise ValueError(f"Trace.filter: keep must be a boolean mask of shape ({n},) or a "
                             f"function returning one, got dtype {mask.dtype} shape {mask.shape}")
        kept = int(mask.sum())
        if kept == 0:
            raise ValueError(f"Trace.filter: the mask keeps none of the {n} requests; a trace "
                             f"needs at least one")
        return self._derived(mask, f"kept {kept} of {n}" + (f": {label}" if label else ""))

    def sort(self) -> Trace:
        """Return the requests stably sorted by arrival (ties keep their order).

        A ``Trace`` is always in arrival order already (the constructor refuses
        arrivals that go backwards), so the order never changes; the new
        ``source`` records that the order was asked for. Columns or files that
        go backwards are sorted on the way in: ``load_trace(path, sort=True)``
        (``llmsim run --sort``).

        Returns
        -------
        Trace
            ``source`` ends ``(sorted by arrival)``.
        """
        return self._derived(np.argsort(self.arrival_at, kind="stable"), "sorted by arrival")

    def scale_rate(self, factor: float) -> Trace:
        """Return the trace with every arrival divided by ``factor``.

        Parameters
        ----------
        factor : float
            Finite and ``> 0``: ``2`` arrives twice as fast (twice the rate),
            ``0.5`` half as fast. Token counts are unchanged.

        Returns
        -------
        Trace
            ``source`` ends ``(rate x FACTOR)``.

        Raises
        ------
        ValueError
            If ``factor`` is not a finite number ``> 0``, or the slowed-down
            last arrival would reach :data:`MAX_ARRIVAL_S`.
        """
        if isinstance(factor, (bool, np.bool_)) or not isinstance(
                factor, (int, float, np.integer, np.floating)) \
                or not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"Trace.scale_rate: factor must be a finite number > 0, "
                             f"got {factor!r}")
        arrival = self.arrival_at / float(factor)
        if not arrival[-1] < MAX_ARRIVAL_S:
            raise ValueError(f"Trace.scale_rate: factor {factor!r} moves the last arrival to "
                             f"{float(arrival[-1]):g} s; arrivals must stay below "
                             f"{MAX_ARRIVAL_S:g} s (about 3 years)")
        return self._derived(slice(None), f"rate x{float(factor):g}", arrival)

    @classmethod
    def from_requests(
        cls, requests: Iterable[Request], *, source: str = "in-memory", renumber: bool = False
    ) -> Trace:
        """Build a trace from :class:`Request` objects.

        Parameters
        ----------
        requests : iterable of Request
            Requests in arrival order.
        source : str, optional
            Description stored on the trace.
        renumber : bool, optional
            Request ids of a trace are their positions. By default the given
            ids must already be ``0 .. n-1`` in order (else ``TraceError``);
            with ``renumber=True`` they are replaced by positions.

        Returns
        -------
        Trace
            With ``content`` when every request has one; none may have one
            unless all do (else ``TraceError`` naming the first that differs).
            With a ``priority`` column when some request's priority is not 0;
            when all are 0 (the default) ``priority`` is None, so
            ``Trace.from_requests(list(t)) == t`` for every ``t`` whose
            priority column is None or has a non-zero entry.
        """
        reqs = list(requests)
        for i, r in enumerate(reqs):
            if not isinstance(r, Request):
                raise TraceError(
                    f"Trace.from_requests: item {i} is a {type(r).__name__}, expected Request"
                )
            if not renumber and r.request_id != i:
                raise TraceError(
                    f"Trace.from_requests: item {i} has request_id {r.request_id}; ids must be "
                    f"the positions 0..n-1 (pass renumber=True to reassign them)"
                )
        has = [r.content is not None for r in reqs]
        if any(has) and not all(has):
            i = has.index(not has[0])
            raise TraceError(
                f"Trace.from_requests: item {i} {'has no' if has[0] else 'has'} content but item 0"
                f" {'has' if has[0] else 'has none'}; either every request has content or none")
        priority = [r.priority for r in reqs]
        return cls(
            np.array([r.arrival_at for r in reqs], dtype=np.float64),
            np.array([r.num_prompt_tokens for r in reqs], dtype=np.int64),
            np.array([r.num_output_tokens for r in reqs], dtype=np.int64),
            source=source,
            content=PromptContent.from_rows([r.content for r in reqs]) if reqs and all(has)
            else None,
            priority=np.array(priority, dtype=np.int64) if any(priority) else None,
        )

    # ----------------------------------------------------------------- summary
    def summary(self) -> dict[str, float | int | str]:
        """Return descriptive statistics of the trace.

        Returns
        -------
        dict
            ``num_requests``, ``duration_s`` (last minus first arrival),
            ``mean_rate_per_s`` (``(n - 1) / duration_s``; ``inf`` when
            several requests all arrive at once, ``nan`` for a single
            request), ``total_prompt_tokens``, ``total_output_tokens`` and for
            ``prompt_tokens`` / ``output_tokens`` the ``_mean``, ``_min``,
            ``_p50``, ``_p90``, ``_p99`` and ``_max``; plus ``source``.
        """
        return trace_summary(self)

"""What a request's tokens are, without the tokens: the identity prefix caching needs.

A simulated request carries no token ids, so two prompts can only be seen to
share a prefix through the workload's own description of their content. A
request's token sequence is its prompt, a list of *segments*, followed by its
generated tokens::

    prompt  = [(segment_id_0, length_0), (segment_id_1, length_1), ...]
    output  = (output_id, num_output_tokens)

Token ``o`` of a segment with id ``s`` is identified by ``(s, o)``; generated
token ``j`` by ``(output_id, j)``. Two segments with the same id hold the same
text, so their first ``min(length)`` tokens are equal. This one rule expresses
every workload of the prefix-caching issue:

- a shared system prompt: every prompt of a group starts with the segment
  ``(group_id, system_prompt_len)``, then a unique question segment;
- Mooncake-style block hashes: hash id ``h`` of a 512-token trace block is the
  segment ``(h, 512)`` (the last one partial); the simulator's own blocks of
  ``block_size`` tokens are cut from these, whatever ``block_size`` is;
- multi-turn sessions: turn ``k + 1``'s prompt repeats every segment of turn
  ``k``'s prompt, then turn ``k``'s output as the segment ``(output_id_k,
  num_output_tokens_k)``, then the new user message.

Ids given by a workload are integers ``>= 0``. A request without content gets
negative ids unique to it inside the scheduler, so it shares nothing (only a
request's own recomputation after preemption hits its blocks).
``cache_salt`` is vLLM's extra key of the first block (a LoRA id, a cache
salt): requests with different salts share no block even with equal text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .content_blocks import segments_from_blocks
from .trace_columns import MAX_TOKENS, TraceError

__all__ = ["PromptContent", "RequestContent"]


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True, slots=True)
class RequestContent:
    """The content identity of one request's prompt and output.

    Parameters
    ----------
    segment_ids : tuple of int
        Content id of each prompt segment, ``>= 0``.
    segment_lengths : tuple of int
        Tokens in each segment, ``>= 1``; their sum is the prompt length.
    output_id : int
        Content id of the request's generated tokens, ``>= 0``.
    cache_salt : int, optional
        Extra key hashed into the first block (default 0).

    Raises
    ------
    ValueError
        For ids or lengths of the wrong type or range, or tuples of unequal length.
    """

    segment_ids: tuple[int, ...]
    segment_lengths: tuple[int, ...]
    output_id: int
    cache_salt: int = 0

    def __post_init__(self) -> None:
        ids, lengths = tuple(self.segment_ids), tuple(self.segment_lengths)
        if len(ids) != len(lengths) or not ids:
            raise ValueError(f"RequestContent: segment_ids and segment_lengths must be equally "
                             f"long and non-empty, got {len(ids)} and {len(lengths)}")
        for name, values, minimum in (("segment_ids", ids, 0), ("segment_lengths", lengths, 1)):
            for k, v in enumerate(values):
                if not _is_int(v) or v < minimum:
                    raise ValueError(f"RequestContent.{name}[{k}] = {v!r}; must be an integer "
                                     f">= {minimum}")
        for name in ("output_id", "cache_salt"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ValueError(f"RequestContent.{name} = {v!r}; must be an integer >= 0")
        object.__setattr__(self, "segment_ids", tuple(int(v) for v in ids))
        object.__setattr__(self, "segment_lengths", tuple(int(v) for v in lengths))
        object.__setattr__(self, "output_id", int(self.output_id))
        object.__setattr__(self, "cache_salt", int(self.cache_salt))

    @property
    def num_prompt_tokens(self) -> int:
        """The prompt length these segments describe."""
        return sum(self.segment_lengths)


_FIELDS = ("starts", "segment_ids", "segment_lengths", "output_ids", "cache_salts")


def _int_array(name: str, values: object) -> np.ndarray:
    """``values`` as a read-only int64 copy, or TraceError if not a 1-D integer array."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TraceError(f"PromptContent.{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise TraceError(f"PromptContent.{name} must have an integer dtype (int64), got dtype "
                         f"{arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise TraceError(f"PromptContent.{name} has values that do not fit in int64")
    arr = arr.astype(np.int64, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class PromptContent:
    """The content of every request of a trace, as compressed rows.

    Request ``i``'s prompt is the segments ``k`` in ``starts[i] <= k <
    starts[i + 1]``: ``(segment_ids[k], segment_lengths[k])``; its output id is
    ``output_ids[i]`` and its cache salt ``cache_salts[i]``. Row ``i`` is the
    :class:`RequestContent` ``row(i)``.

    Parameters
    ----------
    starts : array_like of int
        ``n + 1`` offsets into the segment arrays: ``starts[0] == 0``, strictly
        increasing (every request has at least one segment), ``starts[n]`` the
        number of segments.
    segment_ids : array_like of int
        Content id of each segment, ``>= 0``.
    segment_lengths : array_like of int
        Tokens of each segment, ``1 .. 2**31 - 1``.
    output_ids : array_like of int
        Content id of each request's generated tokens, ``>= 0`` (``n`` values).
    cache_salts : array_like of int
        Each request's cache salt, ``>= 0`` (``n`` values; 0 is no salt).

    Raises
    ------
    TraceError
        (a ``ValueError``) naming the field, the row and the value when an
        array has the wrong shape, dtype, length or a value out of range.

    Notes
    -----
    Arrays are copied and made read-only. Equality compares all five arrays.
    """

    starts: np.ndarray
    segment_ids: np.ndarray
    segment_lengths: np.ndarray
    output_ids: np.ndarray
    cache_salts: np.ndarray

    def __post_init__(self) -> None:
        arrays = {name: _int_array(name, getattr(self, name)) for name in _FIELDS}
        starts = arrays["starts"]
        if starts.size == 0 or starts[0] != 0:
            first = int(starts[0]) if starts.size else "missing"
            raise TraceError(f"PromptContent.starts[0] = {first}; must be 0 (starts holds "
                             f"n + 1 offsets, the first 0)")
        bad = np.flatnonzero(np.diff(starts) <= 0)
        if bad.size:
            i = int(bad[0])
            raise TraceError(f"PromptContent.starts[{i + 1}] = {int(starts[i + 1])} is not above "
                             f"starts[{i}] = {int(starts[i])}: row {i} has no segment; starts "
                             f"must be strictly increasing (every prompt has >= 1 segment)")
        n, m = starts.size - 1, int(starts[-1])
        for name, size, what in (("segment_ids", m, "starts[-1]"),
                                 ("segment_lengths", m, "starts[-1]"),
                                 ("output_ids", n, "len(starts) - 1"),
                                 ("cache_salts", n, "len(starts) - 1")):
            if arrays[name].size != size:
                raise TraceError(f"PromptContent.{name} has {arrays[name].size} values; must "
                                 f"have {what} = {size}")
        for name, minimum, maximum in (("segment_ids", 0, None), ("segment_lengths", 1, MAX_TOKENS),
                                       ("output_ids", 0, None), ("cache_salts", 0, None)):
            arr = arrays[name]
            wrong = arr < minimum if maximum is None else (arr < minimum) | (arr > maximum)
            bad = np.flatnonzero(wrong)
            if bad.size:
                k = int(bad[0])
                allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
                where = (f"row {int(np.searchsorted(starts, k, side='right')) - 1}"
                         if name.startswith("segment") else f"row {k}")
                raise TraceError(f"PromptContent.{name}[{k}] ({where}) = {int(arr[k])}; must be "
                                 f"an integer {allowed}")
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.starts.size - 1)

    def row(self, i: int) -> RequestContent:
        """Return request ``i``'s content (negative ``i`` counts from the end).

        Parameters
        ----------
        i : int
            Row, ``-n <= i < n``.

        Returns
        -------
        RequestContent
        """
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"PromptContent.row: i must be an int, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"PromptContent.row: row {i} out of range for {n} requests")
        i = int(i) % n
        a, b = int(self.starts[i]), int(self.starts[i + 1])
        return RequestContent(tuple(self.segment_ids[a:b].tolist()),
                              tuple(self.segment_lengths[a:b].tolist()),
                              int(self.output_ids[i]), int(self.cache_salts[i]))

    def num_prompt_tokens(self) -> np.ndarray:
        """Each request's prompt length, the sum of its segment lengths (int64)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(self.segment_lengths, self.starts[:-1])

    def take(self, index: slice | np.ndarray | Sequence[int]) -> PromptContent:
        """Return the rows ``index`` selects, in its order.

        Parameters
        ----------
        index : slice, boolean mask or array of int
            A slice; a boolean mask of shape ``(n,)``; or row numbers
            ``-n <= i < n`` (repeats allowed).

        Returns
        -------
        PromptContent
        """
        n = len(self)
        if isinstance(index, slice):
            rows = np.arange(n)[index]
        else:
            arr = np.asarray(index)
            if arr.dtype == np.bool_:
                if arr.shape != (n,):
                    raise ValueError(f"PromptContent.take: a boolean mask must have shape "
                                     f"({n},), got {arr.shape}")
                rows = np.flatnonzero(arr)
            elif arr.ndim == 1 and (arr.dtype.kind in "iu" or arr.size == 0):
                rows = arr.astype(np.int64)
                bad = np.flatnonzero((rows < -n) | (rows >= n))
                if bad.size:
                    raise IndexError(f"PromptContent.take: index[{int(bad[0])}] = "
                                     f"{int(rows[bad[0]])} out of range for {n} requests")
                rows = rows % max(n, 1)
            else:
                raise ValueError(f"PromptContent.take: index must be a slice, a boolean mask or "
                                 f"a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
        counts = np.diff(self.starts)[rows]
        starts = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        gather = np.repeat(self.starts[:-1][rows] - starts[:-1], counts) + np.arange(starts[-1])
        return PromptContent(starts, self.segment_ids[gather], self.segment_lengths[gather],
                             self.output_ids[rows], self.cache_salts[rows])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PromptContent):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PromptContent({len(self)} requests, {self.segment_ids.size} segments)"

    # ------------------------------------------------------------ construction
    @classmethod
    def from_rows(cls, rows: Sequence[RequestContent]) -> PromptContent:
        """Stack :class:`RequestContent` rows (request ``i`` is ``rows[i]``).

        Parameters
        ----------
        rows : sequence of RequestContent

        Returns
        -------
        PromptContent
        """
        rows = list(rows)
        for i, r in enumerate(rows):
            if not isinstance(r, RequestContent):
                raise TraceError(f"PromptContent.from_rows: item {i} is a {type(r).__name__}, "
                                 f"expected RequestContent")
        counts = np.fromiter((len(r.segment_ids) for r in rows), dtype=np.int64, count=len(rows))
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        ids = [v for r in rows for v in r.segment_ids]
        lengths = [v for r in rows for v in r.segment_lengths]
        return cls(starts, np.array(ids, dtype=np.int64), np.array(lengths, dtype=np.int64),
                   np.array([r.output_id for r in rows], dtype=np.int64),
                   np.array([r.cache_salt for r in rows], dtype=np.int64))

    @classmethod
    def from_block_hashes(cls, hash_ids: Sequence[Sequence[int]], num_prompt_tokens: object,
                          block_size: int, output_ids: object = None, *,
                          cache_salts: object = None, last_block: str = "partial"
                          ) -> PromptContent:
        """Content from per-block hash ids (Mooncake, CC traces): hash ``h`` is a segment.

        Parameters
        ----------
        hash_ids : sequence of sequences of int
            Row ``i``'s block hash ids, each ``>= 0``, one per block of
            ``block_size`` prompt tokens in order.
        num_prompt_tokens : array_like of int
            Each row's prompt length ``P >= 1``.
        block_size : int
            Tokens per hashed block, ``>= 1``.
        output_ids : array_like of int, optional
            Each row's output id. By default ``M + 1 + i`` for row ``i``, where
            ``M`` is the largest id given (``-1`` if none): never equal to a
            segment id.
        cache_salts : array_like of int, optional
            Each row's cache salt (default 0).
        last_block : {"partial", "omitted"}, optional
            ``"partial"`` (Mooncake): ``len(hash_ids[i]) == ceil(P / block_size)``
            and the last block is the segment ``(h, P - (k - 1) * block_size)``.
            ``"omitted"`` (CC traces): only full blocks are hashed,
            ``len(hash_ids[i]) == P // block_size``, and the ``P % block_size``
            tokens after them (if any) become a segment with an id unique to
            the row: ``M + 1 + n + i`` (``M`` now also covering the output ids).

        Returns
        -------
        PromptContent

        Raises
        ------
        TraceError
            Naming the row when a row has the wrong number of hash ids or an
            id that is not an integer ``>= 0``, or for bad arguments.
        """
        return cls(*segments_from_blocks(hash_ids, num_prompt_tokens, block_size, output_ids,
                                         cache_salts, last_block))

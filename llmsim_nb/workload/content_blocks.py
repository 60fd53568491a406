"""Per-block hash ids (Mooncake, CC traces) turned into prompt segments.

The arrays behind :meth:`.content.PromptContent.from_block_hashes`; kept apart so
that the content module stays short. Nothing here is public.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from .trace_columns import MAX_TOKENS, TraceError

_WHERE = "PromptContent.from_block_hashes"
_INT_TYPES = (int, np.integer)
#: Largest id a workload may give: leaves room for ``2 * n`` fresh ids above it.
MAX_ID = 2**62


def _is_int(v: object) -> bool:
    return isinstance(v, _INT_TYPES) and not isinstance(v, (bool, np.bool_))


def _row_array(name: str, values: object, n: int, minimum: int, maximum: int | None
               ) -> np.ndarray:
    """A per-row integer argument as int64, checked: ``n`` values in range."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size != n:
        raise TraceError(f"{_WHERE}: {name} must hold one value per row ({n}), got shape "
                         f"{arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise TraceError(f"{_WHERE}: {name} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    wrong = arr < minimum if maximum is None else (arr < minimum) | (arr > maximum)
    bad = np.flatnonzero(wrong)
    if bad.size:
        i = int(bad[0])
        allowed = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise TraceError(f"{_WHERE}: {name}[{i}] (row {i}) = {int(arr[i])}; must be an "
                         f"integer {allowed}")
    return arr


def _flat_ids(hash_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """All rows' ids concatenated (int64) and each row's count, every id checked."""
    counts = np.empty(len(hash_ids), dtype=np.int64)
    for i, ids in enumerate(hash_ids):
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray)):
            raise TraceError(f"{_WHERE}: hash_ids[{i}] (row {i}) is a {type(ids).__name__}; "
                             f"expected a list of integer ids")
        counts[i] = len(ids)
    values = list(chain.from_iterable(hash_ids))
    if not {type(v) for v in values} <= {int, np.int64} or (
            values and not 0 <= min(values) <= max(values) <= MAX_ID):
        for i, ids in enumerate(hash_ids):
            for j, v in enumerate(ids):
                if not _is_int(v) or not 0 <= v <= MAX_ID:
                    raise TraceError(f"{_WHERE}: hash_ids[{i}][{j}] (row {i}) = {v!r}; ids must "
                                     f"be integers from 0 to {MAX_ID} (2**62)")
    flat = np.array(values, dtype=np.int64)
    return flat, counts


def segments_from_blocks(hash_ids: Sequence[Sequence[int]], num_prompt_tokens: object,
                         block_size: int, output_ids: object, cache_salts: object,
                         last_block: str) -> tuple[np.ndarray, ...]:
    """``(starts, segment_ids, segment_lengths, output_ids, cache_salts)`` of the rows.

    See :meth:`.content.PromptContent.from_block_hashes` for the rules.
    """
    if last_block not in ("partial", "omitted"):
        raise TraceError(f"{_WHERE}: last_block must be 'partial' or 'omitted', got "
                         f"{last_block!r}")
    if not _is_int(block_size) or not 1 <= block_size <= MAX_TOKENS:
        raise TraceError(f"{_WHERE}: block_size must be an integer from 1 to {MAX_TOKENS}, "
                         f"got {block_size!r}")
    if isinstance(hash_ids, (str, bytes)) or not isinstance(hash_ids, (Sequence, np.ndarray)):
        raise TraceError(f"{_WHERE}: hash_ids must be a list with one list of ids per row, got "
                         f"{type(hash_ids).__name__}")
    n = len(hash_ids)
    prompt = _row_array("num_prompt_tokens", num_prompt_tokens, n, 1, MAX_TOKENS)
    flat, counts = _flat_ids(hash_ids)
    bs = int(block_size)
    expected = -(-prompt // bs) if last_block == "partial" else prompt // bs
    bad = np.flatnonzero(counts != expected)
    if bad.size:
        i = int(bad[0])
        rule = "ceil" if last_block == "partial" else "floor"
        raise TraceError(f"{_WHERE}: row {i} has {int(counts[i])} hash ids for {int(prompt[i])} "
                         f"prompt tokens; blocks of {bs} tokens need {rule}({int(prompt[i])}/{bs})"
                         f" = {int(expected[i])}")
    top = int(flat.max()) if flat.size else -1
    if output_ids is not None:
        outputs = _row_array("output_ids", output_ids, n, 0, MAX_ID)
        top = max(top, int(outputs.max()) if n else -1)
    else:
        outputs = top + 1 + np.arange(n, dtype=np.int64)
    salts = (np.zeros(n, dtype=np.int64) if cache_salts is None
             else _row_array("cache_salts", cache_salts, n, 0, None))
    old_starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=old_starts[1:])
    if last_block == "partial":
        lengths = np.full(flat.size, bs, dtype=np.int64)
        lengths[old_starts[1:] - 1] = prompt - (counts - 1) * bs
        return old_starts, flat, lengths, outputs, salts
    rest = prompt - counts * bs
    tail = rest > 0
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts + tail, out=starts[1:])
    ids = np.empty(int(starts[-1]), dtype=np.int64)
    lengths = np.full(ids.size, bs, dtype=np.int64)
    at = np.repeat(starts[:-1] - old_starts[:-1], counts) + np.arange(flat.size)
    ids[at] = flat
    ends = starts[1:][tail] - 1
    ids[ends] = top + 1 + n + np.flatnonzero(tail)
    lengths[ends] = rest[tail]
    return starts, ids, lengths, outputs, salts

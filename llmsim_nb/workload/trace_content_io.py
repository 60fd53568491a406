"""Request content (:class:`~.content.PromptContent`) in the seed trace files.

A seed TSV / CSV / JSONL trace may describe what each prompt is (see
:mod:`.content`) in four more columns or keys:

``segment_ids``
    The prompt's segment ids, integers ``>= 0``: in TSV / CSV one cell of
    space-separated whole numbers (``"7 12 40"``), in JSONL a list.
``segment_lengths``
    The tokens of each segment, integers ``>= 1``, as many as ``segment_ids``
    and adding up to ``input_toks``.
``output_id``
    The id of the request's generated tokens, an integer ``>= 0``.
``cache_salt``
    Optional (0 when the column or key is absent): the request's cache salt,
    an integer ``>= 0``.

The first three come together: a header (TSV / CSV) or first line (JSONL) that
has one of them must have all, and then every row must have them. Nothing is
defaulted but ``cache_salt``; a bad cell is refused with one line naming the
file, the row and line, the column, the value and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .content import PromptContent
from .content_blocks import MAX_ID
from .trace_cells import _where
from .trace_columns import MAX_TOKENS, TraceError
from .trace_seed import _decode

CONTENT_COLUMNS = ("segment_ids", "segment_lengths", "output_id", "cache_salt")
REQUIRED = CONTENT_COLUMNS[:3]
_MAX_DIGITS = len(str(MAX_ID))


def content_header(path: Path, line: int, header: Sequence[str]) -> tuple[str, ...]:
    """The content columns a delimited header holds (none, or all required ones)."""
    present = tuple(c for c in CONTENT_COLUMNS if c in header)
    missing = [c for c in REQUIRED if c not in present]
    if present and missing:
        raise TraceError(f"{path}: line {line}: content column(s) {list(present)} need "
                         f"{missing} too; the content columns are {list(REQUIRED)} and the "
                         f"optional 'cache_salt'")
    return present


def _ints(path: Path, where: str, column: str, cell: str, minimum: int, maximum: int
          ) -> list[int]:
    """A cell of space-separated whole numbers in ``minimum .. maximum``."""
    tokens = cell.split(" ")
    for tok in tokens:
        if not (tok.isascii() and tok.isdigit()) or len(tok) > _MAX_DIGITS \
                or not minimum <= int(tok) <= maximum:
            shown = cell if len(cell) <= 40 else f"{cell[:36]}... ({len(cell)} characters)"
            raise TraceError(f"{path}: {where}: column {column!r} = {shown!r}; must be integers "
                             f"from {minimum} to {maximum} separated by single spaces")
    return list(map(int, tokens))


def content_from_cells(path: Path, cells: dict[str, list[str]], lines: Sequence[int],
                       prompt: np.ndarray) -> PromptContent:
    """The content columns of a TSV / CSV file, parsed and checked row by row."""
    n = len(lines)
    ids: list[int] = []
    lengths: list[int] = []
    starts = np.zeros(n + 1, dtype=np.int64)
    scalars = {}
    for name in ("output_id", "cache_salt"):
        if name not in cells:
            scalars[name] = np.zeros(n, dtype=np.int64)
            continue
        out = np.empty(n, dtype=np.int64)
        for i, cell in enumerate(cells[name]):
            value = _ints(path, _where(lines, i), name, cell, 0, MAX_ID)
            if len(value) != 1:
                raise TraceError(f"{path}: {_where(lines, i)}: column {name!r} = {cell!r}; must "
                                 f"be one integer from 0 to {MAX_ID}")
            out[i] = value[0]
        scalars[name] = out
    for i, (id_cell, len_cell) in enumerate(zip(cells["segment_ids"], cells["segment_lengths"])):
        where = _where(lines, i)
        row_ids = _ints(path, where, "segment_ids", id_cell, 0, MAX_ID)
        row_lengths = _ints(path, where, "segment_lengths", len_cell, 1, MAX_TOKENS)
        _check_row(path, where, row_ids, row_lengths, int(prompt[i]))
        ids += row_ids
        lengths += row_lengths
        starts[i + 1] = len(ids)
    return PromptContent(starts, np.array(ids, dtype=np.int64), np.array(lengths, dtype=np.int64),
                         scalars["output_id"], scalars["cache_salt"])


def _check_row(path: Path, where: str, ids: list[int], lengths: list[int], prompt: int) -> None:
    if len(ids) != len(lengths):
        raise TraceError(f"{path}: {where}: 'segment_ids' has {len(ids)} values but "
                         f"'segment_lengths' has {len(lengths)}; they must be equally long")
    if sum(lengths) != prompt:
        raise TraceError(f"{path}: {where}: 'segment_lengths' add up to {sum(lengths)} tokens but "
                         f"'input_toks' = {prompt}; they must be equal")


def _key_ints(path: Path, where: str, key: str, value: object, minimum: int, maximum: int
              ) -> list[int]:
    if type(value) is not list or not value or not all(type(v) is int for v in value) \
            or not minimum <= min(value) <= max(value) <= maximum:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:36]}..."
        raise TraceError(f"{path}: {where}: key {key!r} = {shown}; must be a non-empty list of "
                         f"integers from {minimum} to {maximum}")
    return value


def content_from_jsonl(path: Path, numbers: Sequence[int], texts: list[str],
                       prompt: np.ndarray) -> PromptContent | None:
    """The content keys of a seed JSONL file's rows (``texts`` already read as requests)."""
    first = _decode(texts[0])
    if not any(k in first for k in CONTENT_COLUMNS):
        for i, text in enumerate(texts):
            if '"segment_ids"' in text and "segment_ids" in _decode(text):
                raise TraceError(f"{path}: {_where(numbers, i)}: has key 'segment_ids' but row 1 "
                                 f"has no content keys; either every row has {list(REQUIRED)} "
                                 f"or none")
        return None
    n = len(texts)
    ids: list[int] = []
    lengths: list[int] = []
    starts = np.zeros(n + 1, dtype=np.int64)
    outputs = np.empty(n, dtype=np.int64)
    salts = np.zeros(n, dtype=np.int64)
    for i, text in enumerate(texts):
        obj = first if i == 0 else _decode(text)
        where = _where(numbers, i)
        missing = [k for k in REQUIRED if k not in obj]
        if missing:
            raise TraceError(f"{path}: {where}: missing content key(s) {missing}; row 1 has "
                             f"content, so every row needs {list(REQUIRED)}")
        row_ids = _key_ints(path, where, "segment_ids", obj["segment_ids"], 0, MAX_ID)
        row_lengths = _key_ints(path, where, "segment_lengths", obj["segment_lengths"], 1,
                                MAX_TOKENS)
        _check_row(path, where, row_ids, row_lengths, int(prompt[i]))
        for key, target in (("output_id", outputs), ("cache_salt", salts)):
            if key not in obj:
                continue
            v = obj[key]
            if type(v) is not int or not 0 <= v <= MAX_ID:
                raise TraceError(f"{path}: {where}: key {key!r} = {v!r}; must be an integer "
                                 f"from 0 to {MAX_ID}")
            target[i] = v
        ids += row_ids
        lengths += row_lengths
        starts[i + 1] = len(ids)
    return PromptContent(starts, np.array(ids, dtype=np.int64), np.array(lengths, dtype=np.int64),
                         outputs, salts)


def content_cells(content: PromptContent) -> list[tuple[str, str, int, int]]:
    """Each row's ``segment_ids`` and ``segment_lengths`` cells, output id and salt."""
    ids = content.segment_ids.tolist()
    lengths = content.segment_lengths.tolist()
    bounds = content.starts.tolist()
    return [(" ".join(map(str, ids[a:b])), " ".join(map(str, lengths[a:b])), o, s)
            for a, b, o, s in zip(bounds[:-1], bounds[1:], content.output_ids.tolist(),
                                  content.cache_salts.tolist())]


def content_json(content: PromptContent) -> list[str]:
    """Each row's content keys as the JSON text that follows a row's seed keys."""
    ids = content.segment_ids.tolist()
    lengths = content.segment_lengths.tolist()
    bounds = content.starts.tolist()
    return [f'"segment_ids": {json.dumps(ids[a:b])}, "segment_lengths": '
            f'{json.dumps(lengths[a:b])}, "output_id": {o}, "cache_salt": {s}'
            for a, b, o, s in zip(bounds[:-1], bounds[1:], content.output_ids.tolist(),
                                  content.cache_salts.tolist())]

"""Prefix-sharing request traces: Mooncake FAST'25 JSONL and the CC (Claude Code) sessions.

Both describe prompts by per-block hash ids -- equal ids, equal KV blocks -- and
are read into a :class:`~.trace.Trace` with ``content`` (:mod:`.content`): hash
id ``h`` of a block becomes the prompt segment ``(h, block_size)``.

Mooncake (``kvcache-ai/Mooncake``, ``FAST25-release/traces/*.jsonl``)
    One JSON object per line: ``timestamp`` (integer milliseconds from the
    start of the trace), ``input_length``, ``output_length`` and ``hash_ids``
    (one per block of 512 tokens, the last block partial:
    ``len(hash_ids) == ceil(input_length / 512)``). Arrivals are
    ``timestamp / 1000`` seconds; the last segment of a row is ``(h,
    input_length - (k - 1) * 512)``.
CC traces (``callanjfox/kv-cache-tester``, ``traces/trace_NNNN.json``)
    One JSON document per session: ``block_size`` (64), ``hash_id_scope``
    (``"local"``: ids mean something only inside their file) and
    ``requests``, each with ``t`` (seconds from the session's start), ``in``,
    ``out`` and ``hash_ids`` over *full* blocks only
    (``len(hash_ids) == in // block_size``). The ``in % block_size`` tokens
    after the last full block are a segment unique to the request. A
    ``"subagent"`` entry nests its own ``requests`` (``t`` from the sub-agent's
    start, which is its own ``t``) in the parent's id space; they are
    flattened. Requests are sorted by arrival (stable: file order breaks ties).

Ids in the trace's content: the file's hash ids (for several CC sessions of
scope ``"local"`` each session's ids are shifted above the previous
sessions'), then ``M + 1 + i`` for request ``i``'s output and ``M + 1 + n + i``
for its unhashed tail (CC), ``M`` the largest hash id. Errors are one line
naming the file, the line (Mooncake) or request (CC), the key, the value and
what is allowed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .content import PromptContent
from .content_blocks import MAX_ID
from .trace import Trace
from .trace_cells import _read_lines, _where
from .trace_columns import MAX_ARRIVAL_S, MAX_TOKENS, TraceError, UnsortedTraceError
from .trace_seed import _decode, _Duplicated

__all__ = ["load_cc_trace", "load_mooncake_trace"]

MOONCAKE_KEYS = ("timestamp", "input_length", "output_length", "hash_ids")
_SCOPES = ("local", "global")


def detect_prefix_trace(path: Path, first: str) -> str | None:
    """``"mooncake"`` or ``"cc"`` when ``first`` (a file's first line) is one of them."""
    if not first.startswith("{"):
        return None
    if '"hash_ids"' in first and '"input_length"' in first:
        kind = "mooncake"
    elif '"requests"' in first and '"block_size"' in first:
        kind = "cc"
    else:
        return None
    try:
        obj = _decode(first)
    except (ValueError, RecursionError):
        return None  # the seed JSONL reader names the broken line
    if not isinstance(obj, dict) or "input_toks" in obj:
        return None
    if kind == "mooncake":
        return kind if "hash_ids" in obj and "input_length" in obj else None
    return kind if "requests" in obj and "block_size" in obj else None


def _check_int(path: Path, where: str, key: str, value: object, minimum: int,
               maximum: int) -> int:
    if type(value) is not int or not minimum <= value <= maximum:
        raise TraceError(f"{path}: {where}: key {key!r} = {value!r}; must be an integer from "
                         f"{minimum} to {maximum}")
    return value


def _check_ids(path: Path, where: str, value: object, expected: int, rule: str) -> list[int]:
    if type(value) is not list:
        raise TraceError(f"{path}: {where}: key 'hash_ids' is a {type(value).__name__}; must "
                         f"be a list of integers >= 0")
    if value and (not all(type(v) is int for v in value)
                  or not 0 <= min(value) <= max(value) <= MAX_ID):
        bad = next(v for v in value if type(v) is not int or not 0 <= v <= MAX_ID)
        raise TraceError(f"{path}: {where}: key 'hash_ids' holds {bad!r}; ids must be integers "
                         f"from 0 to {MAX_ID}")
    if len(value) != expected:
        raise TraceError(f"{path}: {where}: key 'hash_ids' has {len(value)} ids; {rule} = "
                         f"{expected}")
    return value


def _check_time(path: Path, where: str, key: str, value: object, scale: float) -> float:
    """A time of ``value * scale`` seconds, finite, >= 0 and below MAX_ARRIVAL_S."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0:
        raise TraceError(f"{path}: {where}: key {key!r} = {value!r}; must be a finite number "
                         f">= 0")
    seconds = value * scale
    if seconds >= MAX_ARRIVAL_S:
        raise TraceError(f"{path}: {where}: key {key!r} = {value!r} is {seconds:.3g} s; arrivals "
                         f"must be below {MAX_ARRIVAL_S:.0e} s (about 3 years)")
    return seconds


def _object(path: Path, where: str, obj: object, keys: tuple[str, ...]) -> dict:
    if not isinstance(obj, dict):
        raise TraceError(f"{path}: {where}: expected a JSON object, got {type(obj).__name__}")
    if isinstance(obj, _Duplicated):
        key, values = next(iter(obj.duplicates.items()))
        raise TraceError(f"{path}: {where}: duplicate key {key!r} (values "
                         f"{', '.join(repr(v) for v in values)}); each key may appear once")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise TraceError(f"{path}: {where}: missing key(s) {missing}; found keys {list(obj)}. "
                         f"Expected {list(keys)}")
    return obj


def _check_block_size(where: str, block_size: object) -> int:
    if type(block_size) is not int or not 1 <= block_size <= MAX_TOKENS:
        raise TraceError(f"{where}: block_size must be an integer from 1 to {MAX_TOKENS}, got "
                         f"{block_size!r}")
    return block_size


def load_mooncake_trace(path: str | Path, *, block_size: int = 512, limit: int | None = None,
                        sort: bool = False) -> Trace:
    """Read a Mooncake FAST'25 JSONL trace into a :class:`Trace` with content.

    Parameters
    ----------
    path : str or pathlib.Path
        The JSONL file (keys ``timestamp`` in milliseconds, ``input_length``,
        ``output_length``, ``hash_ids``; other keys are ignored).
    block_size : int, optional
        Tokens per hashed block (512 in the Mooncake traces).
    limit : int or None, optional
        Read at most the first ``limit`` rows (in file order).
    sort : bool, optional
        By default a timestamp earlier than the one before is refused; with
        ``True`` rows are sorted by timestamp (stable).

    Returns
    -------
    Trace
        Arrivals ``timestamp / 1000`` seconds, as written (not rebased);
        content as the module docstring says.

    Raises
    ------
    TraceError
        Naming the file, line and key for a line that is no JSON object, a
        missing or duplicate key, a timestamp that is negative, non-finite or
        going backwards (without ``sort``), token counts out of range
        (``input_length >= 1``, ``output_length >= 0``) or ``hash_ids`` that
        are no list of ids ``>= 0`` of length ``ceil(input_length / block_size)``.
    """
    path = Path(path)
    bs = _check_block_size(f"{path}", block_size)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise TraceError(f"{path}: limit must be None or an integer >= 1, got {limit!r}")
    if not isinstance(sort, bool):
        raise TraceError(f"{path}: sort must be True or False, got {sort!r}")
    numbers, texts = _read_lines(path)
    if not texts:
        raise TraceError(f"{path}: file is empty; expected Mooncake JSON lines with keys "
                         f"{list(MOONCAKE_KEYS)}")
    texts, numbers = texts[:limit], numbers[:limit]
    n = len(texts)
    seconds = np.empty(n, dtype=np.float64)
    prompt = np.empty(n, dtype=np.int64)
    output = np.empty(n, dtype=np.int64)
    hashes: list[list[int]] = []
    for i, text in enumerate(texts):
        where = _where(numbers, i)
        try:
            obj = _decode(text)
        except (ValueError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
            raise TraceError(f"{path}: {where}: invalid JSON ({msg})") from None
        obj = _object(path, where, obj, MOONCAKE_KEYS)
        seconds[i] = _check_time(path, where, "timestamp", obj["timestamp"], 1e-3)
        p = _check_int(path, where, "input_length", obj["input_length"], 1, MAX_TOKENS)
        output[i] = _check_int(path, where, "output_length", obj["output_length"], 0, MAX_TOKENS)
        prompt[i] = p
        hashes.append(_check_ids(path, where, obj["hash_ids"], -(-p // bs),
                                 f"ceil(input_length {p} / block {bs})"))
    backwards = np.flatnonzero(np.diff(seconds) < 0)
    order = None
    if backwards.size:
        if not sort:
            i = int(backwards[0]) + 1
            raise UnsortedTraceError(
                f"{path}: {_where(numbers, i)}: key 'timestamp' goes backwards "
                f"({seconds[i] * 1e3:g} ms after {seconds[i - 1] * 1e3:g} ms); arrivals must be "
                f"non-decreasing. Pass sort=True to sort the requests by arrival (stable)")
        order = np.argsort(seconds, kind="stable")
    content = PromptContent.from_block_hashes(hashes, prompt, bs)
    source = f"{path} (Mooncake trace, {bs}-token blocks)"
    if order is not None:
        seconds, prompt, output = seconds[order], prompt[order], output[order]
        content = content.take(order)
    return Trace(seconds, prompt, output, source=source, content=content)


def _session_rows(path: Path, requests: object, where: str, start: float, bs: int,
                  rows: list[tuple[float, int, int, list[int]]]) -> None:
    """Append the requests of ``requests`` (sub-agents flattened) as ``(t, in, out, ids)``."""
    if type(requests) is not list:
        raise TraceError(f"{path}: {where}: key 'requests' is a {type(requests).__name__}; "
                         f"must be a list of request objects")
    for j, req in enumerate(requests):
        at = f"{where}[{j}]"
        req = _object(path, at, req, ("t",))
        t = start + _check_time(path, at, "t", req["t"], 1.0)
        if req.get("type") == "subagent":
            _object(path, at, req, ("t", "requests"))
            _session_rows(path, req["requests"], f"{at}.requests", t, bs, rows)
            continue
        _object(path, at, req, ("t", "in", "out", "hash_ids"))
        p = _check_int(path, at, "in", req["in"], 1, MAX_TOKENS)
        o = _check_int(path, at, "out", req["out"], 0, MAX_TOKENS)
        ids = _check_ids(path, at, req["hash_ids"], p // bs, f"floor(in {p} / block {bs})")
        if t >= MAX_ARRIVAL_S:
            raise TraceError(f"{path}: {at}: key 't' gives an arrival of {t:.3g} s; arrivals "
                             f"must be below {MAX_ARRIVAL_S:.0e} s")
        rows.append((t, p, o, ids))


def _read_session(path: Path) -> tuple[int, str, list[tuple[float, int, int, list[int]]]]:
    """One CC session file: its block size, hash id scope and flattened requests."""
    numbers, texts = _read_lines(path)  # the file checks (exists, text, UTF-8) of every reader
    if not texts:
        raise TraceError(f"{path}: file is empty; expected a CC trace session (a JSON object "
                         f"with 'block_size', 'hash_id_scope' and 'requests')")
    try:
        doc = _decode("\n".join(texts))
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: line {numbers[exc.lineno - 1]}: invalid JSON ({exc.msg})"
                         ) from None
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"{path}: invalid JSON ({type(exc).__name__})") from None
    doc = _object(path, "top level", doc, ("block_size", "requests"))
    bs = doc["block_size"]
    if type(bs) is not int or not 1 <= bs <= MAX_TOKENS:
        raise TraceError(f"{path}: top level: key 'block_size' = {bs!r}; must be an integer "
                         f"from 1 to {MAX_TOKENS}")
    scope = doc.get("hash_id_scope", "local")
    if scope not in _SCOPES:
        raise TraceError(f"{path}: top level: key 'hash_id_scope' = {scope!r}; must be one of "
                         f"{list(_SCOPES)}")
    rows: list[tuple[float, int, int, list[int]]] = []
    _session_rows(path, doc["requests"], "requests", 0.0, bs, rows)
    return bs, scope, rows


def load_cc_trace(path_or_dir: str | Path) -> Trace:
    """Read CC (Claude Code, "CC traces WEKA") sessions into a :class:`Trace` with content.

    Parameters
    ----------
    path_or_dir : str or pathlib.Path
        One session file (``trace_NNNN.json``), or a folder: all its
        ``trace_*.json`` files, in name order, each session starting at 0 s
        (they run concurrently) and merged in arrival order.

    Returns
    -------
    Trace
        Arrivals ``t`` seconds (sub-agent requests at the sub-agent's ``t``
        plus their own), sorted stably; content as the module docstring says.
        Sessions of scope ``"local"`` share no id with each other; sessions of
        scope ``"global"`` keep their ids.

    Raises
    ------
    TraceError
        For a missing path, a folder without ``trace_*.json``, files whose
        ``block_size`` or ``hash_id_scope`` differ, a session without
        requests, and (naming the file, the request as ``requests[i]`` and
        the key) any key missing or out of range: ``t`` >= 0 finite, ``in >=
        1``, ``out >= 0``, ``hash_ids`` a list of ids ``>= 0`` of length
        ``in // block_size``.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(path.glob("trace_*.json"))
        if not files:
            raise TraceError(f"{path}: folder holds no trace_*.json session files")
    else:
        files = [path]
    seconds: list[float] = []
    prompt: list[int] = []
    output: list[int] = []
    hashes: list[list[int]] = []
    offset, first = 0, None
    for file in files:
        bs, scope, rows = _read_session(file)
        if first is None:
            first = (file, bs, scope)
        elif (bs, scope) != first[1:]:
            raise TraceError(f"{file}: block_size {bs} and hash_id_scope {scope!r} differ from "
                             f"{first[0].name}'s ({first[1]}, {first[2]!r}); sessions read "
                             f"together must agree")
        if not rows:
            raise TraceError(f"{file}: key 'requests' holds no request; a session needs at "
                             f"least one")
        shift = offset if scope == "local" else 0
        top = -1
        for t, p, o, ids in rows:
            seconds.append(t)
            prompt.append(p)
            output.append(o)
            hashes.append([v + shift for v in ids] if shift else ids)
            top = max(top, max(ids, default=-1))
        offset += top + 1
        if offset > MAX_ID:
            raise TraceError(f"{file}: the sessions' hash ids, kept apart, exceed {MAX_ID}")
    order = np.argsort(np.array(seconds, dtype=np.float64), kind="stable")
    content = PromptContent.from_block_hashes([hashes[i] for i in order],
                                              np.array(prompt, dtype=np.int64)[order],
                                              first[1], last_block="omitted")
    what = f"{len(files)} session{'s' if len(files) != 1 else ''}"
    return Trace(np.array(seconds)[order], np.array(prompt, dtype=np.int64)[order],
                 np.array(output, dtype=np.int64)[order],
                 source=f"{path} (CC traces: {what}, {first[1]}-token blocks)", content=content)

"""The reuse cache's file (``--fast_run``): data only, checked before use.

A cache file is an uncompressed ``.npz`` archive (a zip of ``.npy`` arrays,
written by :func:`numpy.savez`) of six numeric arrays; nothing in it is code,
and it is never unpickled (arrays are read by :mod:`numpy.lib.format` with
``allow_pickle=False``, after their headers are checked)::

    header         uint8 (H,)      UTF-8 JSON, below
    entry_keys     int64 (N, 6)    name, kind (indices into the header's lists),
                                   batch, m, n, k of each instance key
    entry_costs    float64 (N, 3)  flops, bytes_read, bytes_written of each key
    entry_timings  float64 (N, 3)  latency, compute_latency, memory_latency
    table_timed    uint8 (C,)      per table, 1 for each column (length) timed
    table_timings  float64 (V,)    per table, its timed columns, row by row

The JSON header holds ``magic`` and ``format`` (:data:`CACHE_FORMAT`), the
wrapped engine's name and :func:`engine_hash`, ``row_chunk`` and the key
layouts (the field names of :mod:`.keys`), the op ``names`` and
``kinds`` the entry indices refer to, the distinct ``templates`` (their
fields), ``entries`` (N) and ``tables``: per table (in least-recently-used
order) its key, either ``{"key": "rows", "template", "dtype_bytes",
"chunk"}`` (one row of ``row_chunk`` columns) or ``{"key": "attention",
"shape", "dtype_bytes", "templates", "width"}`` (a row per template). A
table's columns that were never timed are NaN in memory; the file stores
which columns were timed instead, so every stored timing must be a number.

:func:`read_cache_file` checks everything before anything is added to a
cache: the archive's members, their dtypes and shapes, the header's magic,
format, engine hash and layouts, every index, key field and template, that
the table columns and timings add up, that keys are unique, and that every
timing and cost is finite and ``>= 0`` (the engine contract: an instance
without work takes 0 s). Anything wrong raises a one-line ValueError naming
the file; nothing is read in part.

The file's name carries its format (``reuse-<engine hash>-v3.npz``), so a
file of another format (format 2 was a pickle) is never opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ...models.ops import OpKind
from ...models.template import OpTemplate
from ..base import Engine
from .archive import InvalidFile, need, read_archive, write_archive
from .keys import (
    DECODE,
    INSTANCE_FIELDS,
    PROMPT,
    ROW_CHUNK,
    TIMING_FIELDS,
    attention_key,
    decode_instances,
    encode_instances,
    is_attention_key,
    is_int64,
    is_rows_key,
    rows_key,
    template_fields,
    template_from_fields,
)

CACHE_FORMAT = 4  # 4: templates with layer-kind fields; 3: data-only .npz; 2: a pickle
MAGIC = "llmsim_nb reuse cache"
#: Archive members: name -> (dtype, number of dimensions).
MEMBERS = {"header": ("|u1", 1), "entry_keys": ("<i8", 2), "entry_costs": ("<f8", 2),
           "entry_timings": ("<f8", 2), "table_timed": ("|u1", 1), "table_timings": ("<f8", 1)}
LAYOUT = {"entry_keys": list(INSTANCE_FIELDS[:6]), "entry_costs": list(INSTANCE_FIELDS[6:]),
          "entry_timings": list(TIMING_FIELDS)}


def engine_hash(engine: Engine) -> str:
    """A stable hash of what determines an engine's timings: its name, its spec
    and the package version (whose engines may time the same spec differently)."""
    from ..._version import __version__

    text = f"{engine.name}:{engine.spec!r}:llmsim_nb {__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path(engine: Engine) -> Path:
    """Where ``fast_run`` keeps ``engine``'s cache: one file per engine
    configuration and file format under ``$LLMSIM_CACHE_DIR`` (default
    ``~/.cache/llmsim_nb``)."""
    root = Path(os.environ.get("LLMSIM_CACHE_DIR", Path.home() / ".cache" / "llmsim_nb"))
    return root / f"reuse-{engine_hash(engine)}-v{CACHE_FORMAT}.npz"


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: a cache holds up to millions of
    key tuples, and each collection it triggers while they are built walks
    them all (it makes a large file several times slower to read)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- writing -------------------------------------------------------------------------

class _Encoder:
    """Builds the header and arrays; what does not fit the layout is left out
    (a cache loses only the chance to answer it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: dict[str, int] = {}
        self.templates: dict[OpTemplate, int] = {}
        self.template_fields: list[dict] = []

    def template(self, t: object) -> int | None:
        index = self.templates.get(t)
        if index is None:
            fields = template_fields(t)
            if fields is None:
                return None
            index = self.templates[t] = len(self.template_fields)
            self.template_fields.append(fields)
        return index

    def table(self, key: object, table: object) -> tuple[dict, np.ndarray] | None:
        """The table's header record and its cells as rows, or None."""
        if not isinstance(table, np.ndarray) or table.dtype != np.float64:
            return None
        if is_rows_key(key):
            _, template, dtype_bytes, chunk = key
            index = self.template(template)
            if (index is None or template.kind.is_attention or not is_int64(dtype_bytes)
                    or dtype_bytes < 1 or not is_int64(chunk) or chunk < 0
                    or table.shape != (ROW_CHUNK,)):
                return None
            return ({"key": "rows", "template": index, "dtype_bytes": int(dtype_bytes),
                     "chunk": int(chunk)}, table[None, :])
        if is_attention_key(key):
            _, shape, dtype_bytes, templates = key.parts
            indices = ([self.template(t) for t in templates] if type(templates) is tuple
                       else [None])
            if (None in indices or not indices or shape not in (DECODE, PROMPT)
                    or not all(t.kind.is_attention for t in templates)
                    or not is_int64(dtype_bytes) or dtype_bytes < 1 or table.ndim != 2
                    or table.shape[0] != len(indices) or table.shape[1] < 1):
                return None
            return ({"key": "attention", "shape": int(shape), "dtype_bytes": int(dtype_bytes),
                     "templates": indices, "width": table.shape[1]}, table)
        return None


def write_cache_file(path: str | Path, engine: Engine,
                     entries: Mapping[tuple, tuple],
                     tables: Iterable[tuple[object, np.ndarray]]) -> Path:
    """Write instance ``entries`` (key -> timings) and ``tables`` ((key, table)
    pairs), each oldest first, for ``engine``.

    The file is written beside its destination and renamed over it, so
    processes sharing a cache file (sweep workers) never read half a file;
    the last one to save wins. It is created with the umask's mode.
    """
    path = Path(path)
    encoder = _Encoder(engine)
    with _gc_paused():
        entry_keys, entry_costs, entry_timings = encode_instances(entries, encoder.names)
    records, timed, timings = [], [], []
    for key, table in tables:
        encoded = encoder.table(key, table)
        if encoded is None:
            continue
        record, cells = encoded
        # A column is timed when every op has a timing there (NaN: never timed).
        columns = np.all(np.isfinite(cells) & (cells >= 0), axis=0)
        records.append(record)
        timed.append(columns.astype("|u1"))
        timings.append(cells[:, columns].ravel())
    header = {"magic": MAGIC, "format": CACHE_FORMAT, "engine": engine.name,
              "engine_hash": engine_hash(engine), "row_chunk": ROW_CHUNK, "layout": LAYOUT,
              "names": list(encoder.names), "kinds": [kind.value for kind in OpKind],
              "templates": encoder.template_fields, "entries": len(entry_keys),
              "tables": records}
    arrays = {
        "header": np.frombuffer(json.dumps(header, allow_nan=False).encode(), dtype="|u1"),
        "entry_keys": entry_keys, "entry_costs": entry_costs, "entry_timings": entry_timings,
        "table_timed": np.concatenate(timed) if timed else np.zeros(0, dtype="|u1"),
        "table_timings": np.concatenate(timings) if timings else np.zeros(0, dtype="<f8"),
    }
    write_archive(path, arrays)
    return path


# --- reading -------------------------------------------------------------------------

def _count(value: object, what: str, least: int = 0) -> int:
    need(type(value) is int and value >= least, f"{what} is {value!r}, not an integer >= {least}")
    return value


def _finite(values: np.ndarray, what: str) -> None:
    bad = ~(np.isfinite(values) & (values >= 0))
    if bad.any():
        raise InvalidFile(f"{int(np.count_nonzero(bad))} of its {what} are not finite numbers >= 0 "
                          f"(the first is {float(values[bad][0])!r})")


def _decode(arrays: dict[str, np.ndarray], engine: Engine, max_cells: int | None):
    try:
        header = json.loads(arrays["header"].tobytes().decode("utf-8"),
                            parse_constant=lambda c: need(False, f"the header holds {c}"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidFile(f"its header is not JSON ({exc})") from None
    need(isinstance(header, dict) and header.get("magic") == MAGIC,
         "it is not a llmsim_nb reuse cache")
    need(header.get("format") == CACHE_FORMAT,
         f"it has format {header.get('format')!r}, this version reads format {CACHE_FORMAT}")
    expected = engine_hash(engine)
    if header.get("engine_hash") != expected:
        raise InvalidFile(f"it was made for engine configuration {header.get('engine_hash')!r} "
                          f"({header.get('engine')!r}), not this one ({expected}, "
                          f"{engine.name!r}); it would give another configuration's timings")
    need(header.get("row_chunk") == ROW_CHUNK and header.get("layout") == LAYOUT,
         "its key layout is not this version's")
    names, kinds, specs, tables = (header.get(k) for k in ("names", "kinds", "templates",
                                                            "tables"))
    need(isinstance(names, list) and all(type(n) is str for n in names),
         "its op names are not a list of strings")
    need(isinstance(kinds, list)
         and all(type(k) is str and k in {v.value for v in OpKind} for k in kinds),
         "its op kinds are not a list of kinds")
    need(isinstance(specs, list) and isinstance(tables, list),
         "its templates or tables are not lists")
    templates = [template_from_fields(fields, i) for i, fields in enumerate(specs)]

    # Instance entries.
    keys, costs, timings = arrays["entry_keys"], arrays["entry_costs"], arrays["entry_timings"]
    num = _count(header.get("entries"), "the number of entries")
    need(keys.shape == (num, 6) and costs.shape == (num, 3) and timings.shape == (num, 3),
         f"its entry arrays are not of {num} entries")
    need(num == 0 or (keys[:, 0].min() >= 0 and keys[:, 0].max() < len(names)
                      and keys[:, 1].min() >= 0 and keys[:, 1].max() < len(kinds)),
         "an entry's op name or kind index is out of range")
    need(num == 0 or keys[:, 2:].min() >= 0, "an entry's batch or shape is negative")
    _finite(costs, "entry costs (flops, bytes)")
    _finite(timings, "entry timings")
    entries = decode_instances(keys, costs, timings, names, [OpKind(k) for k in kinds])
    need(len(entries) == num, "two entries have the same key")

    # Tables: check every record and that the columns and timings add up.
    timed, cells = arrays["table_timed"], arrays["table_timings"]
    need(timed.size == 0 or timed.max() <= 1, "a table's timed flag is neither 0 nor 1")
    _finite(cells, "table timings")
    layout = []  # (key, rows, first column, width, first timing)
    column = value = 0
    for i, record in enumerate(tables):
        need(isinstance(record, dict), f"table {i} is not a record")
        kind = record.get("key")
        dtype_bytes = _count(record.get("dtype_bytes"), f"table {i}'s dtype_bytes", 1)
        if kind == "rows":
            need(set(record) == {"key", "template", "dtype_bytes", "chunk"},
                 f"table {i} has the fields {sorted(record)}")
            index = _count(record["template"], f"table {i}'s template")
            need(index < len(templates) and not templates[index].kind.is_attention,
                 f"table {i}'s template is not a non-attention template of the file")
            key = rows_key(templates[index], dtype_bytes,
                           _count(record["chunk"], f"table {i}'s chunk"))
            rows, width = 1, ROW_CHUNK
        elif kind == "attention":
            need(set(record) == {"key", "shape", "dtype_bytes", "templates", "width"},
                 f"table {i} has the fields {sorted(record)}")
            need(record["shape"] in (DECODE, PROMPT) and type(record["shape"]) is int,
                 f"table {i}'s shape is {record['shape']!r}")
            indices = record["templates"]
            need(isinstance(indices, list) and len(indices) > 0
                 and all(type(j) is int and 0 <= j < len(templates)
                         and templates[j].kind.is_attention for j in indices),
                 f"table {i}'s templates are not attention templates of the file")
            key = attention_key(record["shape"], dtype_bytes,
                                tuple(templates[j] for j in indices))
            rows, width = len(indices), _count(record["width"], f"table {i}'s width", 1)
        else:
            raise InvalidFile(f"table {i} has the key {kind!r}")
        need(column + width <= timed.size, "its tables have more columns than it stores")
        num_timed = int(np.count_nonzero(timed[column:column + width]))
        layout.append((key, rows, column, width, value))
        column += width
        value += rows * num_timed
        need(value <= cells.size, "its tables have more timings than it stores")
    need(column == timed.size and value == cells.size,
         "its tables do not use every column and timing it stores")
    need(len({entry[0] for entry in layout}) == len(layout), "two tables have the same key")
    total = num + sum(rows * width for _, rows, _, width, _ in layout)
    if max_cells is None:
        max_cells = total

    # Build the tables a cache of ``max_cells`` could keep: the newest that fit
    # (loading older ones would only evict them again).
    keep, size = len(layout), 0
    while keep and size + layout[keep - 1][1] * layout[keep - 1][3] <= max_cells:
        size += layout[keep - 1][1] * layout[keep - 1][3]
        keep -= 1
    built = []
    for key, rows, column, width, first in layout[keep:]:
        mask = timed[column:column + width].astype(bool)
        table = np.full((rows, width), np.nan)
        table[:, mask] = cells[first:first + rows * int(mask.sum())].reshape(rows, -1)
        built.append((key, table[0].copy() if is_rows_key(key) else table))
    return CacheContents(list(entries.items()), built, total, keep)


@dataclasses.dataclass(frozen=True)
class CacheContents:
    """What :func:`read_cache_file` found.

    Attributes
    ----------
    entries, tables : list of (key, value)
        Instance timings and tables, oldest first.
    num_timings : int
        Timings in the file (entries plus table cells), left-out tables included.
    num_left_out : int
        The oldest tables, left out because the newer ones fill ``max_cells``.
    """

    entries: list[tuple[tuple, tuple]]
    tables: list[tuple[object, np.ndarray]]
    num_timings: int
    num_left_out: int


def read_cache_file(path: str | Path, engine: Engine,
                    max_cells: int | None = None) -> CacheContents:
    """The entries and tables saved at ``path`` for ``engine``.

    Tables are built (NaN where never timed) only as far as a cache bounded
    by ``max_cells`` cells could keep them: the newest that fit; older ones
    would be evicted at once, so they are left out (and so are never
    allocated). Raises a one-line ValueError, naming the file, if it is not a
    valid cache file of this format for this engine configuration; then
    nothing is returned.
    """
    path = Path(path)
    try:
        arrays = read_archive(path, MEMBERS)
        with _gc_paused():
            return _decode(arrays, engine, max_cells)
    except InvalidFile as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 (unreadable, truncated, not a zip, ...)
        problem = f"{type(exc).__name__}: {exc}"
    problem = " ".join(problem.split())
    raise ValueError(f"reuse cache {str(path)!r} cannot be read: {problem}")

"""Keys of the reuse cache: what a cached timing is a function of.

:class:`~.cache.ReuseCache` holds two kinds of timings, and this module
is the one place that spells out their keys (the engine wrapper builds them,
the cache file writes and rebuilds them):

- instance timings, keyed by one instance's fields (:func:`instance_key`)::

      (name, kind, batch, m, n, k, flops, bytes_read, bytes_written)

  with ``name`` a str, ``kind`` an :class:`~..models.ops.OpKind`, the next
  four ints and the last three floats (or ints: vector ops with an integer
  FLOP count per element count their FLOPs in ints);
- tables of latencies: per non-attention template and chunk of ``ROW_CHUNK``
  token counts (:func:`rows_key`, a 1-d table indexed by ``rows % ROW_CHUNK``),
  and per attention templates and instance shape (:func:`attention_key`, a
  2-d table, ops by rows, indexed by context length for ``DECODE`` and by
  prompt length for ``PROMPT``). A table holds NaN where a length was never
  timed.

In a file, instance keys are columns of numbers (:func:`encode_instances`,
:func:`decode_instances`) and a template in a table's key is its fields
(:func:`template_fields`, :func:`template_from_fields`); what is read back is
equal to what was written, hash included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from operator import itemgetter

import numpy as np

from ...models.ops import OpKind
from ...models.template import TP_ROLES, OpTemplate
from .archive import need

#: Token counts a non-attention op is timed for at once (pure engines).
ROW_CHUNK = 128
#: Attention instance shapes kept in tables (see ``ReuseEngine._shape_table``).
DECODE, PROMPT = 0, 1
#: The fields of an instance key, in order.
INSTANCE_FIELDS = ("name", "kind", "batch", "m", "n", "k", "flops", "bytes_read",
                   "bytes_written")
#: The timings an instance key maps to, in order.
TIMING_FIELDS = ("latency", "compute_latency", "memory_latency")
#: The fields of an :class:`OpTemplate`, in order (name and kind first).
TEMPLATE_FIELDS = tuple(f.name for f in dataclasses.fields(OpTemplate))
#: Template fields that hold text (the rest hold numbers >= 0), and its values.
TEMPLATE_TEXT_FIELDS = ("tp_role",)


class TableKey:
    """A hashable key that computes its hash once (its parts hold templates,
    whose hashes walk every field). Equal parts make equal keys, so a key
    rebuilt from a cache file answers this process's keys."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, TableKey) and self.parts == other.parts)

    def __reduce__(self):
        # Copied or sent to another process as its parts: the hash of a str
        # differs between processes, so the copy hashes them afresh.
        return (TableKey, (self.parts,))

    def __repr__(self) -> str:
        return f"TableKey({self.parts!r})"


def instance_key(name, kind, batch, m, n, k, flops, bytes_read, bytes_written) -> tuple:
    """The key of one instance's timing (fields as :data:`INSTANCE_FIELDS`)."""
    return (name, kind, batch, m, n, k, flops, bytes_read, bytes_written)


def rows_key(template: OpTemplate, dtype_bytes: int, chunk: int) -> tuple:
    """The key of non-attention ``template``'s table for token counts
    ``chunk * ROW_CHUNK`` to ``(chunk + 1) * ROW_CHUNK - 1``. The template is
    part of the key, its name included: an engine may treat an op by name, as
    the gpu engine does rotary embeddings."""
    return ("rows", template, dtype_bytes, chunk)


def attention_key(shape: int, dtype_bytes: int, templates: tuple[OpTemplate, ...]) -> TableKey:
    """The key of the table of attention ``templates`` for instances of one
    ``shape`` (``DECODE`` or ``PROMPT``)."""
    return TableKey(("attention", shape, dtype_bytes, templates))


def is_rows_key(key: object) -> bool:
    return type(key) is tuple and len(key) == 4 and key[0] == "rows"


def is_attention_key(key: object) -> bool:
    return (type(key) is TableKey and type(key.parts) is tuple and len(key.parts) == 4
            and key.parts[0] == "attention")


def is_int64(x: object) -> bool:
    """An integer an int64 holds (a bool is not one)."""
    return (isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
            and -2**63 <= x < 2**63)


def template_fields(t: object) -> dict | None:
    """``t``'s fields as JSON values (ints stay ints, so the template read
    back is equal to ``t``), or None if ``t`` is no template of numbers >= 0."""
    if type(t) is not OpTemplate or type(t.name) is not str or type(t.kind) is not OpKind:
        return None
    fields = {"name": t.name, "kind": t.kind.value}
    for name in TEMPLATE_FIELDS[2:]:
        value = getattr(t, name)
        if name in TEMPLATE_TEXT_FIELDS:
            if type(value) is not str:
                return None
            fields[name] = value
        elif is_int64(value) and value >= 0:
            fields[name] = int(value)
        elif isinstance(value, (float, np.floating)) and math.isfinite(value) and value >= 0:
            fields[name] = float(value)
        else:
            return None
    return fields


def template_from_fields(fields: object, i: int) -> OpTemplate:
    """The template of :func:`template_fields`' ``fields`` (template ``i`` of
    a file); raises :class:`~.archive.InvalidFile` if they are not."""
    need(isinstance(fields, dict) and sorted(fields) == sorted(TEMPLATE_FIELDS),
         f"template {i} does not have the fields {list(TEMPLATE_FIELDS)}")
    need(type(fields["name"]) is str and type(fields["kind"]) is str
         and fields["kind"] in {k.value for k in OpKind},
         f"template {i} has an invalid name or kind")
    for name in TEMPLATE_FIELDS[2:]:
        value = fields[name]
        if name in TEMPLATE_TEXT_FIELDS:
            need(type(value) is str and value in TP_ROLES,
                 f"template {i} has {name}={value!r}, not one of {list(TP_ROLES)}")
            continue
        need(type(value) in (int, float) and math.isfinite(value) and value >= 0,
             f"template {i} has {name}={value!r}, not a number >= 0")
    return OpTemplate(**{**fields, "kind": OpKind(fields["kind"])})


def _is_timing(x: object) -> bool:
    return isinstance(x, (float, np.floating)) and math.isfinite(x) and x >= 0


def _is_amount(x: object) -> bool:
    """A number >= 0 that a float64 holds exactly and that, read back as one,
    is a key equal to it (with its hash): a float, or an int up to 2**53
    (vector ops with an integer FLOP count per element count in ints)."""
    return _is_timing(x) or (is_int64(x) and 0 <= x <= 2**53)


def _instance_ok(key: object, value: object) -> bool:
    """Whether an instance entry can be written (checked one by one)."""
    return (type(key) is tuple and len(key) == 9 and type(value) is tuple and len(value) == 3
            and type(key[0]) is str and type(key[1]) is OpKind
            and all(is_int64(x) and x >= 0 for x in key[2:6])
            and all(_is_amount(x) for x in key[6:]) and all(_is_timing(x) for x in value))


def _columns(keys: list, values: list) -> list[list]:
    """The 9 key fields and 3 timings of instance entries, as 12 columns."""
    return ([list(map(itemgetter(j), keys)) for j in range(9)]
            + [list(map(itemgetter(j), values)) for j in range(3)])


def _of_layout_types(keys: list, values: list) -> bool:
    """Whether every entry has the types of the layout (values checked later)."""
    if not ({type(k) for k in keys} | {type(v) for v in values} <= {tuple}
            and set(map(len, keys)) <= {9} and set(map(len, values)) <= {3}):
        return False
    columns = _columns(keys, values)
    types = [set(map(type, column)) for column in columns]
    return (types[0] <= {str} and types[1] <= {OpKind} and all(t <= {int} for t in types[2:6])
            and all(t <= {float, int} for t in types[6:9]) and all(t <= {float} for t in types[9:])
            and all(-2**63 <= min(c, default=0) and max(c, default=0) < 2**63
                    for c in columns[2:6])
            and all(max((x for x in c if type(x) is int), default=0) <= 2**53
                    for c in columns[6:9]))


def encode_instances(entries: Mapping[tuple, tuple], names: dict[str, int]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance ``entries`` (key -> timings) as int64 ``(N, 6)`` keys (name
    and kind as indices: into ``names``, extended as needed, and ``OpKind``),
    float64 ``(N, 3)`` costs and ``(N, 3)`` timings. Entries that do not fit
    (odd types, negative sizes, timings not finite and >= 0) are left out."""
    keys, values = list(entries), list(entries.values())
    if not _of_layout_types(keys, values):  # numpy scalars, say: one by one
        keys = [k for k, v in zip(keys, values) if _instance_ok(k, v)]
        values = [entries[k] for k in keys]
    columns = _columns(keys, values)
    ints = np.array(columns[2:6], dtype="<i8").reshape(4, -1)
    amounts = np.array(columns[6:], dtype="<f8").reshape(6, -1)
    ok = (ints >= 0).all(axis=0) & np.isfinite(amounts).all(axis=0) & (amounts >= 0).all(axis=0)
    kind_index = {kind: i for i, kind in enumerate(OpKind)}
    labels = np.array([[names.setdefault(n, len(names)) for n in columns[0]],
                       [kind_index[k] for k in columns[1]]], dtype="<i8").reshape(2, -1)
    return (np.ascontiguousarray(np.vstack([labels, ints]).T[ok]),
            np.ascontiguousarray(amounts[:3].T[ok]), np.ascontiguousarray(amounts[3:].T[ok]))


def decode_instances(keys: np.ndarray, costs: np.ndarray, timings: np.ndarray,
                     names: list[str], kinds: list[OpKind]) -> dict[tuple, tuple]:
    """The entries of :func:`encode_instances`' arrays, in order (the arrays
    checked by the caller: indices in range, numbers finite and >= 0)."""
    cols = keys.T.tolist()
    return dict(zip(zip(map(names.__getitem__, cols[0]), map(kinds.__getitem__, cols[1]),
                        *cols[2:], *costs.T.tolist()), zip(*timings.T.tolist())))

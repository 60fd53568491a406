"""Traces shipped with the package, found by name.

``load_trace("sharegpt-like-100")`` (or ``"sharegpt-like-100.tsv"``) reads a
packaged trace when no file of that name exists in the working directory; a
local file always wins. :func:`list_packaged_traces` lists the names.

The packaged traces
-------------------
``sharegpt-like-100``
    ``llmsim_nb/data/default_trace.tsv``: our own synthetic workload, 100
    requests with ShareGPT-like prompt and output lengths arriving as a
    Poisson process of 10 requests/s, generated with
    ``synthetic_trace(numpy.random.default_rng(0), 100, 10.0)`` by
    ``bench/derive_length_tables.py``. It is what ``llmsim run`` and
    ``Simulator(config)`` use without a trace (:func:`default_trace`). It is
    *not* LLMServingSim's ``share-gpt-req100-rate10.tsv``: its prompt and
    output lengths are drawn independently from that trace's length tables
    (:func:`sharegpt_like`) and its arrivals are new, so no row matches. The
    original file is not shipped; pass its path to load it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path, PurePath

from ._data import data_file

__all__ = ["list_packaged_traces", "packaged_trace_file", "unknown_trace_hint"]


@dataclass(frozen=True)
class _Packaged:
    file: str  # name inside llmsim_nb/data
    description: str


_PACKAGED: dict[str, _Packaged] = {
    "sharegpt-like-100": _Packaged(
        "default_trace.tsv",
        "synthetic: 100 ShareGPT-like requests, Poisson 10 req/s, seed 0 (the default trace)",
    ),
}


def list_packaged_traces() -> list[str]:
    """Names of the traces shipped with the package, sorted.

    Each can be given to :func:`load_trace` (and ``llmsim run --dataset``)
    with or without its file extension, e.g. ``load_trace("sharegpt-like-100")``.
    """
    return sorted(_PACKAGED)


def _bare_name(path: str | PurePath) -> str | None:
    """``path`` as a plain file name (no folder part), or None."""
    text = str(path)
    if not text or len(PurePath(text).parts) != 1 or text in (".", ".."):
        return None
    return text


def _lookup(name: str) -> tuple[str, _Packaged] | None:
    if name in _PACKAGED:
        return name, _PACKAGED[name]
    for key, entry in _PACKAGED.items():
        if name == key + Path(entry.file).suffix:
            return key, entry
    return None


def packaged_trace_file(path: str | PurePath):
    """The packaged resource that ``path`` names, as ``(name, Traversable)``, or None.

    Only a bare file name (no folder part) can name a packaged trace; the
    caller checks first that no file ``path`` exists.
    """
    name = _bare_name(path)
    found = None if name is None else _lookup(name)
    if found is None:
        return None
    key, entry = found
    return key, data_file(entry.file)


def unknown_trace_hint(path: str | PurePath) -> str:
    """Text added to "trace file not found" for a bare name: the packaged names
    and, when one is close, a did-you-mean."""
    name = _bare_name(path)
    if name is None:
        return ""
    names = list_packaged_traces()
    choices = {}
    for key in names:
        choices[key] = key
        choices[key + Path(_PACKAGED[key].file).suffix] = key
    stem = PurePath(name).stem if PurePath(name).suffix else name
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    close += difflib.get_close_matches(stem, list(choices), n=3, cutoff=0.5)
    suggestions = list(dict.fromkeys(choices[c] for c in close))
    text = (f" in the working directory ({Path.cwd()}), and it is not a packaged trace; "
            f"packaged traces: {names} (list_packaged_traces())")
    if suggestions:
        text += f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
    return text

"""The reuse cache: bounded, least-recently-used tables of operator timings.

:class:`ReuseCache` is what :class:`~.reuse.ReuseEngine` looks timings up
in; its keys are those of :mod:`.keys`, and it is saved to and loaded
from the data-only file of :mod:`.file`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..base import Engine
from .file import read_cache_file, write_cache_file
from .spot_check import spot_check


class ReuseCache:
    """Least-recently-used store of operator timings.

    It holds instance timings (key -> ``(latency, compute, memory)``) and
    tables of latencies (key -> array, see :class:`~.reuse.ReuseEngine`);
    both are saved and loaded. ``memo`` holds answers derived from them for
    one process (keyed by object identity), cleared with the rest, never saved.

    Parameters
    ----------
    max_entries : int
        Bound on cached timings: instance entries plus table cells (and,
        separately, memo entries). Least recently used tables go first.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"ReuseCache.max_entries must be a positive integer, "
                             f"got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[float, float, float]] = OrderedDict()
        self._tables: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._num_cells = 0
        self.memo: OrderedDict[tuple, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Cached timings: instance entries plus table cells."""
        return len(self._entries) + self._num_cells

    def get(self, key: tuple) -> tuple[float, float, float] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple[float, float, float]) -> None:
        self._entries[key] = value
        self._shrink()

    def get_table(self, key: tuple) -> np.ndarray | None:
        table = self._tables.get(key)
        if table is not None:
            self._tables.move_to_end(key)
        return table

    def put_table(self, key: tuple, table: np.ndarray) -> None:
        """Store (or replace) a table; the caller keeps filling it in place."""
        old = self._tables.pop(key, None)
        if old is not None:
            self._num_cells -= old.size
        self._tables[key] = table
        self._num_cells += table.size
        self._shrink()

    def remember(self, key: tuple, value: object) -> None:
        """A derived answer for this process (``memo``), bounded like the rest."""
        self.memo[key] = value
        if len(self.memo) > self.max_entries:
            self.memo.popitem(last=False)

    def _shrink(self) -> None:
        while len(self) > self.max_entries and self._tables:
            _, table = self._tables.popitem(last=False)
            self._num_cells -= table.size
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._tables.clear()
        self._num_cells = 0
        self.memo.clear()

    def save(self, path: str | Path, engine: Engine) -> Path:
        """Write the entries and tables, tagged with ``engine``'s hash
        (:func:`~.file.write_cache_file`: atomic, with the umask's mode)."""
        return write_cache_file(path, engine, self._entries, self._tables.items())

    def load(self, path: str | Path, engine: Engine) -> int:
        """Add the entries and tables saved at ``path``; return the timings added.

        Raises ValueError if the file is not a valid cache file of this
        format, was saved for a different engine configuration, or a sample
        of its timings disagrees with the engine (:mod:`.spot_check`);
        nothing is added then. The result is the same as putting every saved entry and
        table, oldest first.
        """
        contents = read_cache_file(path, engine, max_cells=self.max_entries)
        spot_check(contents, engine, str(path))  # well formed is not enough: right too
        if contents.num_left_out:
            # Tables the file had to leave out would have evicted every table
            # held now (they are newer), so those go too.
            self._tables.clear()
            self._num_cells = 0
        for key, value in contents.entries:
            self.put(key, value)
        for key, table in contents.tables:
            self.put_table(key, table)
        return contents.num_timings

"""Reuse of operator timings across layers, iterations and runs.

- :mod:`.engine`: :class:`ReuseEngine`, the wrapper every engine runs behind.
- :mod:`.cache`: :class:`ReuseCache`, the bounded tables and their counts.
- :mod:`.keys`: what identifies a timing (the key layouts).
- :mod:`.file`: the data-only cache file of ``--fast_run`` (:func:`cache_path`);
  :mod:`.archive` writes and reads its ``.npz`` with every member checked.
"""

from .engine import (CACHE_FORMAT, DECODE, PROMPT, ROW_CHUNK, ReuseCache, ReuseEngine, TableKey,
                     cache_path, engine_hash)

__all__ = ["CACHE_FORMAT", "DECODE", "PROMPT", "ROW_CHUNK", "ReuseCache", "ReuseEngine",
           "TableKey", "cache_path", "engine_hash"]

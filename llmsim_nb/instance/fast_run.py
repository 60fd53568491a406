"""FastRunFile: the ``--fast_run`` reuse cache on disk, around an instance's runs.

The original's compile bypass, done for every run (CLI, Python, sweep points):
the reuse cache is read from its file (:func:`~llmsim_nb.engines.reuse.cache_path`,
one per engine configuration) before the first run and written back after a
run that simulated something new. An unreadable, foreign or outdated file is
replaced, and a file that cannot be written is skipped, each with a warning:
the cache never costs a result (the file is data only and checked whole before
use, :mod:`llmsim_nb.engines.reuse.file`).
"""

from __future__ import annotations

import warnings

from ..engines.reuse import ReuseEngine, cache_path


class FastRunFile:
    """Loads and saves one instance's reuse cache file.

    Parameters
    ----------
    engine : Engine
        The instance's engine; nothing is done unless it is a ``ReuseEngine``
        and ``enabled``.
    enabled : bool
        ``SimConfig.fast_run``.
    """

    def __init__(self, engine, enabled: bool) -> None:
        reuse = isinstance(engine, ReuseEngine)
        self.cache = engine.cache if reuse else None
        self.engine = engine.inner if reuse else None
        self.path = cache_path(self.engine) if enabled and reuse else None
        self._loaded = False
        self._saved_misses = 0

    def before_run(self) -> None:
        """Read the file once, before the instance's first run."""
        if self.path is None or self._loaded:
            return
        self._loaded = True
        if self.path.exists():
            try:
                self.cache.load(self.path, self.engine)
            except ValueError as exc:  # damaged, foreign or another version's: start afresh
                warnings.warn(f"{exc}; starting a new cache there", stacklevel=3)
        self._saved_misses = self.cache.misses

    def after_run(self) -> None:
        """Write the cache back if the run timed something new."""
        if self.path is None or self.cache.misses <= self._saved_misses:
            return
        try:
            self.cache.save(self.path, self.engine)
            self._saved_misses = self.cache.misses
        except OSError as exc:
            warnings.warn(f"the reuse cache was not saved to {str(self.path)!r}: {exc}",
                          stacklevel=3)

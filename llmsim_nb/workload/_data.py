"""Locate files shipped in ``llmsim_nb/data`` (private)."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable


def data_file(name: str) -> Traversable:
    """Return the packaged resource ``llmsim_nb/data/<name>``.

    Uses :func:`importlib.resources.files`. If ``llmsim_nb`` was imported as a
    namespace package (a stale editable install made before its
    ``__init__.py`` existed), Python 3.11's namespace reader cannot handle the
    editable path hook; then the data directory is reached from this
    subpackage's own (regular) location instead.
    """
    try:
        root = resources.files("llmsim_nb")
        return root.joinpath("data", name)
    except (NotADirectoryError, TypeError, ValueError):
        here = resources.files(__package__)
        return here.joinpath("..", "data", name)

"""Sphinx configuration of the llmsim_nb docs site.

Build it from the repository root (``pip install -e '.[docs]'`` first)::

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

Every ``docs/*.md`` topic page is picked up by a glob in ``index.md``; the
tutorials are copied from ``tutorials/`` and rendered by myst-nb without being
executed (the test suite runs them); the CLI reference and the Dataset
variables table are generated at build time by ``docs/_ext/llmsim_docs.py``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the package, also when it is not installed

from llmsim_nb import __version__  # noqa: E402

# autosummary imports every submodule to list it; ``python -m llmsim_nb.cli``'s
# ``__main__`` would run the command line on import (sys.exit(main())) with
# Sphinx's own argv. A stand-in module keeps it from running; it has no API.
sys.modules.setdefault("llmsim_nb.cli.__main__", types.ModuleType("llmsim_nb.cli.__main__"))

project = "llmsim_nb"
author = "llmsim_nb contributors"
copyright = "2026, llmsim_nb contributors"
release = version = __version__

extensions = [
    "myst_nb",                 # MyST markdown pages and the tutorial notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",     # numpydoc-style docstrings
    "llmsim_docs",             # docs/_ext: CLI reference, variables table, tutorials
]

root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# The tutorials are tested code (nbmake runs them in the test suite); the docs
# render them as stored, without outputs, and never execute them.
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "ignore-module-all": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True       # "Attributes" as fields, so no duplicate attribute entries
napoleon_use_rtype = False

# Short names such as ``.validate`` or ``num_devices`` in docstrings can match
# several objects; Sphinx then links the first and warns. Unresolved references
# do not warn (nitpicky is off), so this is the only ``ref.python`` warning.
suppress_warnings = ["ref.python"]

html_theme = "furo"
html_title = f"llmsim_nb {release}"
html_static_path: list[str] = []

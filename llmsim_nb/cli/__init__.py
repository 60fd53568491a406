"""The ``llmsim`` command line (:mod:`.main`; one module per subcommand).

Run it as ``llmsim`` or ``python -m llmsim_nb.cli``.
"""

from .main import main

__all__ = ["main"]

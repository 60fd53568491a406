"""The ``llmsim`` command line (:mod:`.main`; one module per subcommand)."""

from .main import main

__all__ = ["main"]

"""``python -m llmsim_nb.cli``: the ``llmsim`` command."""

import sys

from .main import main

sys.exit(main())

"""The `devenv` command line (see ``devenv.cli.app``).

A library's warning (a deprecation inside a dependency, say) is for devenv's
developers, not for the person at the terminal: the CLI shows none unless
``PYTHONWARNINGS`` asks for them. This runs before any command module is imported,
so warnings raised at import time are covered too.
"""

from __future__ import annotations

import os
import warnings

if not os.environ.get("PYTHONWARNINGS"):
    warnings.simplefilter("ignore")

"""``python -m devenv.agent.presence``: the agent from a checkout (hosts run the zipapp)."""

import sys

from .cli import main

sys.exit(main())

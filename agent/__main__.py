"""``python -m agent …`` is the ``vrm`` command."""

import sys

from agent.cli import main

sys.exit(main())

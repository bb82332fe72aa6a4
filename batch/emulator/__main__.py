"""``python -m batch.emulator``: the same as ``batch emulator``."""

import sys

from .server import main

sys.exit(main())

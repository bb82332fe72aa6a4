"""``python -m batch.emulator``: the same as ``batch emulator``."""

import sys

from .command import main

sys.exit(main())

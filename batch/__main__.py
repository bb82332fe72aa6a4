"""``python -m batch`` is the same as the ``batch`` console script."""

import sys

from .cli import main

sys.exit(main())

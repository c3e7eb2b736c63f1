"""Entry point for ``python -m monitor_utils``."""

import sys

from .cli import main

sys.exit(main())

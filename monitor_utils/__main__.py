"""Entry point for ``python -m monitor_utils``."""

import sys

from .cli import entry

sys.exit(entry())

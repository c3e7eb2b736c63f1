"""Local mode only: the emulator, the simulated world and local mode's shortcuts; production modules never import it."""

from .server import (LocalAws, LocalAwsError, apply_local_environment, find_running, is_reachable,  # noqa: F401
                     local_environment, start)

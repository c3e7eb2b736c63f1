"""Local mode only: the embedded AWS, moto's server on loopback, started, found again and stopped."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import urllib.request
from dataclasses import dataclass, field

from ..aws import DUMMY_CREDENTIALS, LOCAL_ENDPOINT_ENV
from .caches import install as install_keeper
from .emulator import enable_step_functions_execution, serving_here

# Real credentials must never reach the emulator or a kernel it serves.
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                   "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


class LocalAwsError(RuntimeError):
    """The local AWS emulator could not start or be reached."""


@dataclass
class LocalAws:
    """A running moto server on 127.0.0.1 (started by this process, or found through the environment)."""

    url: str
    server: object | None = None
    previous_env: dict = field(default_factory=dict, repr=False)

    @property
    def owned(self) -> bool:
        """True when this process started the server (and so must stop it)."""
        return self.server is not None

    def stop(self) -> None:
        """Stop the server if this process owns it, and point the environment back where it pointed before."""
        if self.server is not None:
            try:
                self.server.stop()
            finally:
                self.server = None
                serving_here(self.url, False)
                ours = {LOCAL_ENDPOINT_ENV: self.url, "AWS_ENDPOINT_URL": self.url, "MOTO_PORT": self.url.rsplit(":", 1)[1]}
                for name, value in ours.items():
                    if os.environ.get(name) == value:
                        previous = self.previous_env.get(name)
                        if previous is None:
                            os.environ.pop(name, None)
                        else:
                            os.environ[name] = previous

    def __enter__(self) -> "LocalAws":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def local_environment(url: str) -> dict[str, str]:
    """Environment variables that point boto3 (in this process or a kernel) at the emulator with dummy credentials."""
    return {
        LOCAL_ENDPOINT_ENV: url,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIALS["aws_secret_access_key"],
    }


def apply_local_environment(url: str, env: dict | None = None) -> dict:
    """Remove real credentials from ``env`` (default ``os.environ``) and point it at the emulator."""
    env = os.environ if env is None else env
    for name in _CREDENTIAL_ENV:
        env.pop(name, None)
    env.update(local_environment(url))
    return env


def is_reachable(url: str, timeout: float = 2.0) -> bool:
    """True when a moto server answers at ``url``."""
    try:  # the config endpoint answers in constant time (data.json serialises every backend)
        with urllib.request.urlopen(f"{url}/moto-api/config", timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(configure_step_functions: bool = True, port: int = 0) -> LocalAws:
    """Start moto's threaded server on 127.0.0.1 at ``port`` (0: a free port), point this process at it and install local mode's
    keeper (:class:`caches.DiskKeeper`).

    Raises
    ------
    LocalAwsError
        When moto is not installed or the server does not answer, with what to do about it.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # a production install (without the local extra)
        raise LocalAwsError(f"local mode needs moto's server ({exc}): install the package's local extra "
                            "(`pip install 'monitor_utils[local]'`; `make run` does), or set aws_mode: aws") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from .emulator import install as install_emulator

    install_emulator()
    install_keeper()
    last_error: Exception | None = None
    wanted = port
    for _ in range(1 if wanted else 3):
        port = wanted or _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        try:
            server.start()
        except Exception as exc:  # port taken between probe and bind, or the socket is refused
            last_error = exc
            continue
        url = f"http://127.0.0.1:{port}"
        if is_reachable(url, timeout=5):
            previous = {k: os.environ.get(k) for k in (LOCAL_ENDPOINT_ENV, "AWS_ENDPOINT_URL", "MOTO_PORT")}
            apply_local_environment(url)
            os.environ["MOTO_PORT"] = str(port)  # where moto's Step Functions sends aws-sdk task calls
            local = LocalAws(url, server, previous)
            serving_here(url)
            if configure_step_functions:
                enable_step_functions_execution(url)
            atexit.register(local.stop)
            return local
        server.stop()
        last_error = LocalAwsError(f"no answer from {url}")
    raise LocalAwsError(f"the local AWS emulator (moto server on 127.0.0.1) could not start: {last_error}. "
                        "Check that loopback sockets are allowed, or run against a real account with aws_mode: aws")


def find_running() -> LocalAws | None:
    """The emulator a runner started for this process (named in the environment), if it answers (local mode's
    keeper is then installed in this process too)."""
    url = os.environ.get(LOCAL_ENDPOINT_ENV)
    if url and is_reachable(url):
        apply_local_environment(url)
        install_keeper()
        return LocalAws(url)
    return None

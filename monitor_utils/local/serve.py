"""Local mode only: ``python -m monitor_utils emulator``: the emulator with a simulated world, served for aws mode to rehearse."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

import yaml

from .. import config
from ..aws import DUMMY_CREDENTIALS, connect
from . import server, world
from .cloudwatch import evaluate_alarms_at

# keys that describe only the simulated world or local runs: the aws-mode params leave them out
LOCAL_ONLY_KEYS = ("scenario", "seed", "world", "faults", "data_path", "outbox_dir", "run_dir")


def aws_params(cfg: config.Params, now: str) -> dict:
    """The aws-mode params that point the suite at the world ``cfg`` built: the same names, the world's prefixes
    written out, the run's clock pinned to the world's end (``now``)."""
    out = {k: v for k, v in cfg.to_dict().items() if k not in LOCAL_ONLY_KEYS}
    out.update(aws_mode="aws", now=now, profile="", role_arn="", capture_prefix=cfg.capture_uri,
               ground_truth_prefix=cfg.ground_truth_uri)
    config.validate(out, source="the written aws-mode params")  # what it writes, the suite accepts
    return out


def instructions(url: str, params_path: str | None) -> str:
    """What to set to run the suite in aws mode against the served world."""
    env = (f"AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID={DUMMY_CREDENTIALS['aws_access_key_id']} "
           f"AWS_SECRET_ACCESS_KEY={DUMMY_CREDENTIALS['aws_secret_access_key']}")
    target = params_path or "<the aws-mode params (--write-params FILE writes them)>"
    return (f"emulator serving on {url}\n"
            f"run the suite in aws mode against it:\n  {env} python -m monitor_utils run -f {target}\n"
            "(the credentials are the emulator's dummy ones; it accepts any). Stop it with Ctrl-C or SIGTERM.")


def serve(files: list[str], overrides: list[str], port: int = 0, write_params: str | None = None,
          say: Callable[[str], None] = print, stop: threading.Event | None = None) -> int:
    """Start the emulator, build the world of the params in it, write the aws-mode params, and serve until ``stop``
    is set (SIGINT or SIGTERM set it when this runs in the main thread). Returns the exit code."""
    cfg = config.load(files, overrides)
    if cfg.aws_mode != "local":
        cfg = config.validate({**cfg.to_dict(), "aws_mode": "local"}, source="emulator params")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    local = server.start(port=port)
    try:
        aws = connect(cfg, local.url, faults=False)
        manifest = world.build(aws, cfg, progress=lambda m: say("  " + m))
        now = manifest["now"]
        # CloudWatch evaluates alarms as time passes; the served world's time stands at its end
        evaluate_alarms_at(config.parse_time(now), dt.timedelta(days=cfg.days))
        params = aws_params(cfg, now)
        if write_params:
            path = Path(write_params)
            path.parent.mkdir(parents=True, exist_ok=True)
            header = ("# aws-mode params for the world served by `python -m monitor_utils emulator` at "
                      f"{local.url}\n# (written by it; run with AWS_ENDPOINT_URL={local.url})\n")
            path.write_text(header + yaml.safe_dump(params, sort_keys=False))
        say(instructions(local.url, write_params))
        sys.stdout.flush()
        stop.wait()
    finally:
        local.stop()
        say("emulator stopped")
    return 0


def main(args) -> int:
    """CLI entry for ``emulator``."""
    try:
        return serve(args.file or [], args.param or [], args.port, args.write_params)
    except config.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except server.LocalAwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

"""Command line: ``python -m monitor_utils run ...`` (and ``monitor-utils run ...``)."""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    """The argument parser (documented in the README)."""
    p = argparse.ArgumentParser(prog="python -m monitor_utils",
                                description="Model-monitoring runbooks for a SageMaker regression endpoint.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the stage notebooks and write the run's records")
    r.add_argument("-f", "--file", action="append", metavar="PARAMS",
                   help="YAML params file; repeat to merge in order (later files win)")
    r.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="override one parameter, applied last; dotted keys reach sections (drift.alpha=0.01)")
    r.add_argument("--stages", metavar="A,B", help="comma-separated stages to run (setup, metrics, drift, alerting, "
                                                   "dashboard, retraining); default all")
    r.add_argument("--output", metavar="DIR", help="run folder (default runs/<run_id>)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch."""
    args = parser().parse_args(argv)
    if args.command == "run":
        from .runner import main_run

        return main_run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())

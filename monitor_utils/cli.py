"""Command line: ``python -m monitor_utils run | iam-policy | workflow | schedule | emulator | migrate | retraining-step ...`` (and ``monitor-utils ...``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _params_options(command: argparse.ArgumentParser) -> None:
    """The params options every command that reads params takes: ``-f PARAMS`` (repeatable) and ``-p KEY=VALUE``."""
    command.add_argument("-f", "--file", action="append", metavar="PARAMS", help="YAML params file; repeat to merge in order")
    command.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override one parameter, applied last")


def parser() -> argparse.ArgumentParser:
    """The argument parser (documented in the README)."""
    p = argparse.ArgumentParser(prog="python -m monitor_utils",
                                description="Model-monitoring runbooks for a SageMaker regression endpoint.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the stage notebooks and write the run's records")
    r.add_argument("-f", "--file", action="append", metavar="PARAMS",
                   help="YAML params file; repeat to merge in order (later files win). Without -f: the embedded "
                        "local default (params/local.yaml). params/NAME.yaml not found under the working directory "
                        "is the copy shipped with the package")
    r.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                   help="override one parameter, applied last; dotted keys reach sections (drift.alpha=0.01)")
    r.add_argument("--stages", metavar="A,B", help="comma-separated stages to run (setup, metrics, drift, alerting, "
                                                   "dashboard, retraining); default all")
    r.add_argument("--output", metavar="DIR", help="run folder (default runs/<run_id>); s3://BUCKET/PREFIX/ (aws mode) "
                                                   "uploads the records to PREFIX/<run_id>/ and the index also to "
                                                   "PREFIX/latest/index.html")
    r.add_argument("--wait-for-lease", action="store_true",
                   help="aws mode: when another run holds the S3 lease (state/lease.json), wait for it with progress "
                        "lines instead of exiting with code 3")
    i = sub.add_parser("iam-policy", help="print the least-privilege IAM policy (JSON) these params need",
                       description="Print the IAM policy document the suite needs with these params: no wildcard "
                                   "actions, resources scoped to the configured names. Without --account-id or "
                                   "--resolve-account the account field of ARNs is '*' (IAM allows it).")
    _params_options(i)
    acct = i.add_mutually_exclusive_group()
    acct.add_argument("--account-id", metavar="ID", default="*", help="12-digit account id in resource ARNs")
    acct.add_argument("--resolve-account", action="store_true",
                      help="ask STS (GetCallerIdentity) for the account, with the params' credentials (aws mode)")
    i.add_argument("--sagemaker-role-arn", metavar="ARN", default="",
                   help="the live model's execution role, passed to SageMaker when a retrained version is created "
                        "(default: any role of the account, only to SageMaker)")
    i.add_argument("--model-data-url", action="append", metavar="S3URI", default=[],
                   help="the live model's artifact when it lies outside the suite's prefix (read); repeatable")
    i.add_argument("--role", choices=("suite", "suite-job", "schedule-deployer", "state-machine", "scheduler",
                                      "migrate"),
                   default="suite",
                   help="whose policy: the suite's (default), the scheduled suite's Processing job role (the suite's "
                        "plus its package, params, records, logs and image), whoever runs `schedule`, the retraining "
                        "state machine's role, the role EventBridge Scheduler uses to start the workflow and the "
                        "suite's jobs, or whoever runs `migrate` (read-only)")
    w = sub.add_parser("workflow", help="print the retraining workflow's definition and input (JSON) for these params",
                       description="Print {\"definition\": ..., \"input\": ...}: the Step Functions definition and the "
                                   "input every execution receives (scheduled or started by the stage). No AWS access.")
    _params_options(w)
    s = sub.add_parser("schedule", help="create or update the EventBridge Scheduler schedule that runs the suite as a "
                                        "SageMaker Processing job (aws mode)",
                       description="Build the wheelhouse (the package's wheel and its runtime dependencies' wheels), "
                                   "upload it and the params file to S3 (only what changed), and create or update the "
                                   "schedule (suite_schedule params). A second run with the same params changes nothing.")
    _params_options(s)
    mode = s.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="print the schedule and job requests and the uploads, build nothing, call no AWS API")
    mode.add_argument("--fire", action="store_true",
                      help="rehearsal against an emulator (AWS_ENDPOINT_URL): read the schedule back and run its "
                           "Processing job on this machine as SageMaker would")
    s.add_argument("--execution-id", metavar="ID", help="with --fire: the firing's <aws.scheduler.execution-id>")
    e = sub.add_parser("emulator", help="serve the emulator with the simulated world of these params, for aws mode",
                       description="Start the local AWS emulator (moto's server and the suite's additions) on "
                                   "127.0.0.1, build the simulated world of these params in it, print its URL, write "
                                   "aws-mode params pointing the suite at that world (--write-params), and serve until "
                                   "Ctrl-C or SIGTERM. Then: AWS_ENDPOINT_URL=<url> python -m monitor_utils run -f "
                                   "<written params>. Needs the local extra (moto).")
    _params_options(e)
    e.add_argument("--port", type=int, default=0, metavar="N", help="port on 127.0.0.1 (default: a free one)")
    e.add_argument("--write-params", metavar="FILE", help="write the aws-mode params for the served world here")
    m = sub.add_parser("migrate", help="print the params that carry a SageMaker Model Monitor schedule over to the suite",
                       description="Read Model Monitor schedule(s) (DescribeMonitoringSchedule, their data- or "
                                   "model-quality job definitions, the endpoint's Data Capture config) and print the "
                                   "params block (YAML) that reuses their baseline, constraints, ground truth, metric "
                                   "publishing and cadence, and the calls that retire the old schedule once the suite "
                                   "has run (printed, never executed). Read-only.")
    m.add_argument("--schedule", action="append", required=True, metavar="NAME",
                   help="MonitoringScheduleName; repeat for the endpoint's data-quality and model-quality schedules")
    _params_options(m)
    sub.add_parser("retraining-step", add_help=False,
                   help="run one job step of the retraining workflow (decide, train, compare); what its SageMaker "
                        "jobs run (see --help)")
    return p


def _iam_policy(args) -> int:
    """CLI entry for ``iam-policy``: the policy JSON on stdout, notes on stderr."""
    import json
    import re

    from . import config, iam

    try:
        cfg = config.load(args.file or [], args.param or [])
        if args.sagemaker_role_arn and not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/.+", args.sagemaker_role_arn):
            raise config.ParamsError(f"--sagemaker-role-arn {args.sagemaker_role_arn!r} is not an IAM role ARN")
        bad_urls = [u for u in args.model_data_url if not re.fullmatch(r"s3://[^/]+/.+", u)]
        if bad_urls:
            raise config.ParamsError(f"--model-data-url {bad_urls[0]!r} is not an S3 object URI (s3://bucket/key)")
        account = args.account_id
        if args.resolve_account:
            if cfg.aws_mode != "aws":
                raise config.ParamsError("--resolve-account needs aws_mode: aws (local mode has no real account); "
                                         "use --account-id")
            from .aws import connect

            try:
                account = connect(cfg).account_id
            except Exception as exc:  # noqa: BLE001 - no credentials, no network: say so, no traceback
                print(f"error: could not resolve the account with STS: {exc}", file=sys.stderr)
                return 1
        if args.role == "suite":
            document, notes = iam.policy(cfg, account, args.sagemaker_role_arn, tuple(args.model_data_url))
        elif args.role == "suite-job":
            from . import iam_schedule

            document, notes = iam_schedule.suite_job_policy(cfg, account, args.sagemaker_role_arn,
                                                            tuple(args.model_data_url))
        elif args.role == "migrate":
            from . import migrate

            document, notes = migrate.policy(cfg, account)
        elif args.role == "schedule-deployer":
            from . import iam_schedule

            document, notes = iam_schedule.deployer_policy(cfg, account)
        else:
            from . import iam_workflow

            make = iam_workflow.state_machine_policy if args.role == "state-machine" else iam_workflow.scheduler_policy
            document, notes = make(cfg, account, args.sagemaker_role_arn)
    except config.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _workflow(args) -> int:
    """CLI entry for ``workflow``: the definition and the execution input on stdout."""
    import json

    from . import config, workflow

    try:
        cfg = config.load(args.file or [], args.param or [])
    except config.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"definition": workflow.definition(cfg), "input": workflow.execution_input(cfg)}, indent=2))
    for warning in workflow_warnings(cfg):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _schedule(args) -> int:
    """CLI entry for ``schedule``: the plan (--dry-run), the deploy, or a local firing (--fire); JSON on stdout."""
    import json
    import tempfile

    from . import config, suite_schedule

    try:
        cfg = config.load(args.file or [], args.param or [])
        suite_schedule.check_settings(cfg)
        if cfg.suite_schedule["stages"].strip():
            from .runner import RunnerError, resolve_stages

            try:
                resolve_stages(cfg.suite_schedule["stages"])
            except RunnerError as exc:
                raise config.ParamsError(f"parameter 'suite_schedule.stages': {exc}") from None
        suite_schedule.check_requests(cfg)
    except (config.ParamsError, suite_schedule.RequestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cfg.now:
        print(f"warning: now is pinned to {cfg.now}: every scheduled run would use that clock", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(suite_schedule.plan(cfg), indent=2))
        return 0
    from .aws import connect

    aws = connect(cfg)
    with tempfile.TemporaryDirectory(prefix="monitor-utils-schedule-") as tmp:
        if args.fire:
            from .local import processing as local_processing  # local mode only: the rehearsal of a firing

            try:
                result = local_processing.fire(aws, suite_schedule.schedule_name(cfg), Path(tmp),
                                               execution_id=args.execution_id)
            except local_processing.FireError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(json.dumps(result, indent=2))
            return 0 if result["exit_code"] == 0 else 1
        try:
            result = suite_schedule.deploy(aws, cfg, Path(tmp))
        except config.ParamsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - no credentials, a denied call, a failed build: say it, no traceback
            print(f"error: schedule failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2))
    return 0


def _migrate(args) -> int:
    """CLI entry for ``migrate``: the params block on stdout (YAML, with comments), errors on stderr."""
    import os

    from botocore.exceptions import BotoCoreError, ClientError

    from . import config, migrate
    from .aws import LOCAL_ENDPOINT_ENV, connect

    try:
        cfg = config.load(args.file or [], args.param or [])
    except config.ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    endpoint_url = os.environ.get(LOCAL_ENDPOINT_ENV) or os.environ.get("AWS_ENDPOINT_URL")
    if cfg.aws_mode == "local" and not endpoint_url:
        print("error: migrate reads the schedules of an account: use aws-mode params (or, for an emulator, set "
              "AWS_ENDPOINT_URL to it)", file=sys.stderr)
        return 2
    try:
        plan = migrate.plan(connect(cfg, endpoint_url).client("sagemaker"), args.schedule)
        if cfg.endpoint_name != plan.params["endpoint_name"]:
            plan.notes.append(f"{cfg.origin('endpoint_name')} names endpoint {cfg.endpoint_name}; the schedules "
                              f"monitor {plan.params['endpoint_name']}: give this block after it (-f), it wins")
        unknown = migrate.unknown_keys(plan.params)
        migrate.check(cfg, plan.params)
    except (migrate.MigrationError, config.ParamsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: reading the schedule failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(migrate.render(plan, cfg.region, unknown), end="")
    return 0


WORKFLOW_JOB_SETTINGS = {
    "retraining.state_machine_role_arn": "the state machine is not created without it",
    "retraining.job_role_arn": "the workflow's SageMaker training and processing jobs run with this role",
    "retraining.image_uri": "the workflow's jobs run in this SageMaker scikit-learn framework image",
}


def workflow_warnings(cfg) -> list[str]:
    """In aws mode, one warning per empty job setting of the retraining workflow (the definition printed holds
    empty strings where they go)."""
    if cfg.aws_mode != "aws":
        return []
    return [f"{key} is empty ({why}); set it in {cfg.origin(key)}" for key, why in WORKFLOW_JOB_SETTINGS.items()
            if not cfg.retraining[key.split(".", 1)[1]]]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and dispatch."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["retraining-step"]:
        from . import steps

        return steps.main(argv[1:])
    args = parser().parse_args(argv)
    from . import assets

    args.file = [str(assets.params_file(f)) for f in args.file or []]  # params/local.yaml also outside a checkout
    if args.command == "run":
        from .runner import main_run

        return main_run(args)
    if args.command == "iam-policy":
        return _iam_policy(args)
    if args.command == "workflow":
        return _workflow(args)
    if args.command == "schedule":
        return _schedule(args)
    if args.command == "migrate":
        return _migrate(args)
    if args.command == "emulator":
        from .local.serve import main as serve_emulator  # local mode only: needs the local extra

        return serve_emulator(args)
    return 2


def entry() -> int:
    """The process's entry (``python -m monitor_utils``, the ``monitor-utils`` script): :func:`main`, then an exit
    without the interpreter's closing garbage collections. Python collects several times at exit, each pass over
    every object still alive (after a local run: moto's store, botocore's service models, the world's frames),
    which took 1.5-2 s; ``gc.freeze()`` keeps those objects out of the passes (reference counting still frees
    them). Everything the command writes is written before."""
    import gc

    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())

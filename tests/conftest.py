"""Shared fixtures: one local AWS emulator per test session, and small fresh simulated worlds on it."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, settings

from monitor_utils import config, local
from monitor_utils.local import world
from monitor_utils.aws import connect
from monitor_utils.context import run_clock

# property tests (tests/test_lines_properties.py): a few hundred examples each in `make test`, thousands with
# `--hypothesis-profile=long`; nothing is written to an example database (failures found are kept as @example)
_HYPOTHESIS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", max_examples=150, **_HYPOTHESIS)
settings.register_profile("long", max_examples=4000, **_HYPOTHESIS)
settings.load_profile("default")  # the plugin loads --hypothesis-profile after this file

WORLD_END = "2026-11-28T00:00:00Z"
_ids = itertools.count(1)
_CACHE_ENV = "MONITOR_UTILS_TEST_CACHE"


def pytest_configure(config):
    """The session's disk caches (local mode's kept objects, windows and worlds, estimator fits, matplotlib's font
    list) go to a folder of the session's own: made by the controller, inherited by xdist's workers and every kernel
    a test starts. Tests write nothing under the user's ``~/.cache``, and a developer's second run starts as cold as
    CI's first."""
    if os.environ.get(_CACHE_ENV):  # an xdist worker: the controller's folder is already set
        return
    folder = tempfile.mkdtemp(prefix="monitor-utils-tests-cache-")
    config.stash[_CACHE_KEY] = (folder, os.environ.get("XDG_CACHE_HOME"))
    os.environ[_CACHE_ENV] = os.environ["XDG_CACHE_HOME"] = folder


def pytest_unconfigure(config):
    folder, before = config.stash.get(_CACHE_KEY, (None, None))
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_CACHE_ENV, None)
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


_CACHE_KEY = pytest.StashKey[tuple]()


@pytest.fixture(scope="session")
def emulator():
    """The embedded local AWS for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = local.start()
    yield server
    server.stop()


def small_world_params(name: str, **overrides) -> dict:
    """Parameters of a small, fast world whose AWS names cannot collide with another test's."""
    values = {"now": WORLD_END, "bucket": f"test-world-{name}", "endpoint_name": f"ep-{name}",
              "sns_topic_name": f"alerts-{name}", "dashboard_name": f"dash-{name}", "log_group": f"/test/{name}",
              "days": 14, "world": {"requests_per_day": 600, "train_rows": 6000, "test_rows": 1500,
                                    "drift_start_fraction": 0.5}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


# Overrides for a fresh world that tests mechanics (what is published once, what a crash, an outage or a corrupt line
# leaves): a few days of traffic are enough. What depends on the data keeps the full small world.
MECHANICS = {"days": 6, "world": {"requests_per_day": 300, "train_rows": 4000, "test_rows": 1000}}


@pytest.fixture
def make_world(emulator):
    """Build a fresh small world (unique bucket, endpoint, topic) and return (cfg, aws, now)."""

    def make(**overrides):
        cfg = config.validate(small_world_params(f"w{next(_ids)}", **overrides))
        aws = connect(cfg, emulator.url)
        world.build(aws, cfg, progress=lambda m: None)
        return cfg, aws, run_clock(cfg, aws)

    return make


# --- which worker runs what (pytest-xdist, `--dist loadfile --no-loadscope-reorder` in pyproject.toml) -------------
# A session fixture is built once per worker process. The files that use a costly one run on one worker, so it is
# built once per session: the scheduler below keeps each file whole on one worker, as loadfile does, and treats a
# group of FILE_GROUPS as one file. (xdist's own loadgroup cannot do it here: with pytest 9.2 the group suffix it writes
# into node ids is lost, pytest-xdist issue 1386.) Collection checks that every file using one of these fixtures
# (directly, or through `pytest.mark.shares_session_fixture("<name>")` when it asks for it at run time) is in its group.
SHARED_SESSION_FIXTURES = {"full_run": "end-to-end-run", "served_world": "end-to-end-run", "drift_world": "shared-worlds",
                           "stable_world": "shared-worlds", "retraining_world": "retraining-world"}
FILE_GROUPS = {"test_runner.py": "end-to-end-run", "test_reports_browser.py": "end-to-end-run",
               "test_rehearsal.py": "end-to-end-run",
               "test_stages.py": "shared-worlds", "test_faults.py": "shared-worlds",
               "test_stage_retraining.py": "retraining-world", "test_workflow.py": "retraining-world"}
# Collection order, which the workers take the files in: the longest first, so that none of them ends the session
# alone; the rest follow in their usual order. A scheduling hint only: a file missing here runs all the same.
LONGEST_FIRST = ("test_stages.py", "test_faults.py", "test_notebooks.py", "test_stage_retraining.py", "test_workflow.py",
                 "test_rehearsal.py", "test_runner.py", "test_reports_browser.py", "test_iam.py", "test_engine.py",
                 "test_drift.py", "test_package.py", "test_schedule.py")


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        uses = {name for name in SHARED_SESSION_FIXTURES if name in item.fixturenames}
        uses |= {str(m.args[0]) for m in item.iter_markers("shares_session_fixture")}
        for name in uses:
            if FILE_GROUPS.get(_file(item.nodeid)) != SHARED_SESSION_FIXTURES.get(name):
                raise pytest.UsageError(f"{item.nodeid} uses the session fixture {name}: put its file in the group "
                                        f"{SHARED_SESSION_FIXTURES.get(name)!r} of FILE_GROUPS in tests/conftest.py")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    first = {}
    for i, item in enumerate(items):
        first.setdefault(_file(item.nodeid), i)
    position = {id(item): i for i, item in enumerate(items)}  # a stable sort: each file keeps its own order
    items.sort(key=lambda it: (rank.get(_file(it.nodeid), len(rank)), first[_file(it.nodeid)], position[id(it)]))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with each group of FILE_GROUPS scheduled as one file."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileGroupScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return FILE_GROUPS.get(_file(nodeid)) or super()._split_scope(nodeid)

    return FileGroupScheduling(config, log)


FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIA-LOOKS-REAL-0001",
                    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYREALSECRET",
                    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEREALSESSIONTOKEN0123456789"}
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")  # each test process that needs the run makes its own
FULL_RUN_WORLD = ["days=10", "world.requests_per_day=300", "world.train_rows=4000", "world.test_rows=1000",
                  "now=2026-11-28T00:00:00Z", f"bucket=runner-full-{_WORKER}", f"endpoint_name=runner-full-{_WORKER}",
                  f"sns_topic_name=runner-full-{_WORKER}", f"dashboard_name=runner-full-{_WORKER}",
                  f"log_group=/runner/full-{_WORKER}"]


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    """One end-to-end run of all six stages through the runner, shared by every test that reads a run's records.

    Credential-shaped values sit in the environment while it runs, so tests can check that no record leaks them.
    Returns (exit code, run folder).
    """
    from pathlib import Path

    from monitor_utils import runner

    root = Path(__file__).resolve().parents[1]
    with pytest.MonkeyPatch.context() as mp:  # the runner starts and stops its own emulator
        for name in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL", "MONITOR_UTILS_RUN_ID"):
            mp.delenv(name, raising=False)
        for key, value in FAKE_CREDENTIALS.items():
            mp.setenv(key, value)
        out = tmp_path_factory.mktemp("full-run") / "run"
        code, run_dir = runner.run([str(root / "params" / "local.yaml")], FULL_RUN_WORLD, output=str(out),
                                   progress=lambda m: None)
    return code, run_dir


class ServedWorld(NamedTuple):
    """A world served by ``python -m monitor_utils emulator`` in a process of its own (see :func:`serve_world`)."""

    url: str  # the emulator's endpoint
    params: Path  # the aws-mode params it wrote for that world
    env: dict  # the environment of an aws-mode process pointed at it (AWS_ENDPOINT_URL, the emulator's dummy keys)
    log: Path  # what the emulator printed


def aws_mode_environment(url: str) -> dict:
    """This process's environment without local mode's names or any credential, pointed at ``url`` with the
    emulator's dummy credentials: what a user sets to rehearse aws mode."""
    dropped = {"MONITOR_UTILS_LOCAL_ENDPOINT", "MOTO_PORT", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE",
               "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "MONITOR_UTILS_RUN_ID"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


@contextlib.contextmanager
def serve_world(folder: Path, overrides: list[str], timeout_s: float = 120.0):
    """Start ``python -m monitor_utils emulator -f params/local.yaml -p ...`` (a fresh world of its own, on a free
    port), wait until it serves, yield a :class:`ServedWorld`, and stop it with SIGTERM (checking it exits cleanly)."""
    root = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    params, log = folder / "aws.yaml", folder / "emulator.log"
    command = [sys.executable, "-m", "monitor_utils", "emulator", "-f", str(root / "params" / "local.yaml"),
               *(a for o in overrides for a in ("-p", o)), "--write-params", str(params)]
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL", "MOTO_PORT")}
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder)
    try:
        deadline = time.monotonic() + timeout_s
        url = None
        while url is None:
            found = re.search(r"emulator serving on (http://127\.0\.0\.1:\d+)", log.read_text())
            url = found.group(1) if found else None
            if url is None and (proc.poll() is not None or time.monotonic() > deadline):
                raise RuntimeError(f"the emulator did not start (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.2)
        yield ServedWorld(url, params, aws_mode_environment(url), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def served_world(tmp_path_factory):
    """The world of :data:`FULL_RUN_WORLD` (the one ``full_run`` runs on in local mode), served by the emulator
    command in a process of its own for aws-mode runs against it (tests/test_rehearsal.py runs the suite on it
    first; a test that changes the world serves a fresh one with :func:`serve_world`)."""
    with serve_world(tmp_path_factory.mktemp("served-world"), FULL_RUN_WORLD) as served:
        yield served


class SharedWorld:
    """A small world the setup, metrics, drift and alerting stages have run on once, shared by the tests that only
    read what those runs left (or rerun a stage to check that nothing changes)."""

    def __init__(self, emulator, name: str, **overrides):
        self.cfg = config.validate(small_world_params(name, **overrides))
        self.aws = connect(self.cfg, emulator.url)
        world.build(self.aws, self.cfg, progress=lambda m: None)
        self.now = run_clock(self.cfg, self.aws)
        from monitor_utils import alerting, stages

        topic, _ = alerting.ensure_paging(self.aws, self.cfg)
        self.queue = subscribe_queue(self.aws, topic, f"q-{self.cfg.endpoint_name}")  # every notification of the run
        self.results = {s: stages.run(s, self.cfg, self.aws, self.now)
                        for s in ("00_setup", "10_metrics", "20_drift", "30_alerting")}


class WorldSnapshot:
    """What a world holds in the emulator at one moment, as far as its own names reach: S3 objects (key and ETag),
    SageMaker models, endpoint configs and the endpoint, alarm states, state machines, SQS queues and the topic's
    subscriptions. ``restore`` takes a world back to the snapshot and then checks that it is there: tests that act on
    one world in turn (each retraining) start from what a freshly built world gives them, or fail saying what differs.

    Objects that existed at the snapshot are never rewritten by a restore: if a test changed one, restoring fails.
    """

    def __init__(self, aws, cfg):
        self.aws, self.cfg = aws, cfg
        self.state = self._take()

    def _take(self) -> dict:
        aws, cfg, ep = self.aws, self.cfg, self.cfg.endpoint_name
        sm, cw, sfn, sqs, sns = (aws.client(s) for s in ("sagemaker", "cloudwatch", "stepfunctions", "sqs", "sns"))
        objects = {o["Key"]: o["ETag"] for page in aws.client("s3").get_paginator("list_objects_v2").paginate(
            Bucket=cfg.bucket) for o in page.get("Contents", [])}
        endpoint = sm.describe_endpoint(EndpointName=ep)
        endpoint.pop("ResponseMetadata")
        endpoint.pop("LastModifiedTime")
        alarms = {a["AlarmName"]: a["StateValue"] for page in cw.get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=ep) for a in page["MetricAlarms"] + page.get("CompositeAlarms", [])}
        machines = {m["name"]: m["stateMachineArn"] for page in sfn.get_paginator("list_state_machines").paginate()
                    for m in page["stateMachines"] if m["name"].startswith(ep)}
        queues = sorted(q for q in sqs.list_queues().get("QueueUrls", []) if ep in q.rsplit("/", 1)[1])
        topic = f"arn:aws:sns:{aws.region}:{aws.account_id}:{cfg.sns_topic_name}"
        subs = sorted(s["SubscriptionArn"] for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
            TopicArn=topic) for s in page["Subscriptions"])
        return {"objects": objects,
                "models": sorted(m["ModelName"] for m in sm.list_models(NameContains=ep, MaxResults=100)["Models"]),
                "configs": sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs(
                    NameContains=ep, MaxResults=100)["EndpointConfigs"]),
                "endpoint": endpoint, "alarms": alarms, "machines": machines, "queues": queues, "subscriptions": subs}

    def restore(self) -> None:
        """Undo what was added since the snapshot (objects, models, configs, machines, queues, subscriptions), put
        the alarm states and the endpoint's config back, then check that the world equals the snapshot."""
        aws, cfg, was = self.aws, self.cfg, self.state
        now = self._take()
        changed = [k for k, etag in was["objects"].items() if now["objects"].get(k) != etag]
        assert not changed, f"objects of the snapshot were changed or deleted, a restore cannot undo that: {changed}"
        cw, sm = aws.client("cloudwatch"), aws.client("sagemaker")
        for name, state in was["alarms"].items():
            if now["alarms"].get(name) != state:
                cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test world restored")
        if now["endpoint"] != was["endpoint"]:
            sm.update_endpoint(EndpointName=cfg.endpoint_name, EndpointConfigName=was["endpoint"]["EndpointConfigName"])
        for name in set(now["configs"]) - set(was["configs"]):
            sm.delete_endpoint_config(EndpointConfigName=name)
        for name in set(now["models"]) - set(was["models"]):
            sm.delete_model(ModelName=name)
        added = sorted(set(now["objects"]) - set(was["objects"]))
        for i in range(0, len(added), 1000):
            aws.client("s3").delete_objects(Bucket=cfg.bucket,
                                            Delete={"Objects": [{"Key": k} for k in added[i:i + 1000]]})
        for name, arn in now["machines"].items():
            if name not in was["machines"]:
                aws.client("stepfunctions").delete_state_machine(stateMachineArn=arn)
        for url in set(now["queues"]) - set(was["queues"]):
            aws.client("sqs").delete_queue(QueueUrl=url)
        for arn in set(now["subscriptions"]) - set(was["subscriptions"]):
            aws.client("sns").unsubscribe(SubscriptionArn=arn)
        again = self._take()
        differs = {k: (was[k], again[k]) for k in was if again[k] != was[k]}
        assert not differs, f"the world was not restored to its snapshot: {differs}"


@pytest.fixture(scope="session")
def retraining_world(emulator):
    """The small drift world after setup, metrics, drift and alerting, for the tests that retrain on it in turn, and
    its snapshot at that point: (cfg, aws, now, snapshot). A test calls ``snapshot.restore()`` before it starts (and
    after, for whoever comes next), so it sees the world as freshly built and run up to alerting."""
    cfg = config.validate(small_world_params(f"retraining-{_WORKER}", scenario="drift",
                                             retraining={"recent_days": 7}))  # drifted for 7 of its 14 days
    aws = connect(cfg, emulator.url)
    world.build(aws, cfg, progress=lambda m: None)
    now = run_clock(cfg, aws)
    from monitor_utils import stages

    for s in ("00_setup", "10_metrics", "20_drift", "30_alerting"):
        stages.run(s, cfg, aws, now)
    return cfg, aws, now, WorldSnapshot(aws, cfg)


def subscribe_queue(aws, topic_arn: str, name: str) -> str:
    """A new SQS queue subscribed to ``topic_arn``; returns its URL (tests read the notifications from it)."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture(scope="session")
def drift_world(emulator):
    """The small drift world after setup, metrics, drift and alerting (no test-fire), shared per test process."""
    return SharedWorld(emulator, f"shared-drift-{_WORKER}", scenario="drift", test_fire="never")


@pytest.fixture(scope="session")
def stable_world(emulator):
    """The small stable world after setup, metrics, drift and alerting (with the test-fire), shared per test process."""
    return SharedWorld(emulator, f"shared-stable-{_WORKER}", scenario="stable")


def date_labels_apart(fig, ax) -> bool:
    """Whether the drawn x tick labels of ``ax`` keep clear of each other (at least four of them)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    labels = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    return len(boxes) >= 4 and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))

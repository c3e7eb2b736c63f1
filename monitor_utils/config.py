"""Load, merge and validate the suite's parameters (params files, -p overrides, notebook globals)."""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


class ParamsError(ValueError):
    """A parameter is unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default, help text and allowed values."""

    type: type
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    item_type: type | None = None


@dataclass(frozen=True)
class Section:
    """A nested group of parameters (a mapping in the params file, a dict in a notebook)."""

    help: str
    params: dict[str, Param] = field(default_factory=dict)


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

SCHEMA: dict[str, Param | Section] = {
    "aws_mode": Param(str, "local", "local: AWS emulated on loopback with a simulated production world; aws: a real account", choices=("local", "aws")),
    "region": Param(str, "us-east-1", "AWS region of the endpoint, bucket, alarms and dashboard", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$"),
    "profile": Param(str, "", "named AWS profile for aws mode (empty means the standard credential chain)"),
    "role_arn": Param(str, "", "IAM role to assume in aws mode (empty means none)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
    "bucket": Param(str, "msd-monitoring-local", "S3 bucket holding capture, ground truth, baselines, models and state", pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"),
    "create_bucket": Param(bool, False, "aws mode: create the bucket when it is missing (Block Public Access, default encryption, a TLS-only policy and versioning); false means a missing bucket is an error before anything is created. Local mode always creates its bucket"),
    "prefix": Param(str, "msd-year", "key prefix inside the bucket", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$"),
    "endpoint_name": Param(str, "msd-year-predictor", "SageMaker endpoint being monitored", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"),
    "variant_name": Param(str, "AllTraffic", "production variant of the endpoint", pattern=_NAME),
    "namespace": Param(str, "MillionSongModel", "CloudWatch namespace of the suite's own metrics", pattern=r"^[^:][^:]{0,254}$"),
    "capture_prefix": Param(str, "", "S3 URI of Data Capture (the endpoint config's DestinationS3Uri; empty means s3://BUCKET/PREFIX/datacapture)", pattern=r"^(|s3://.+)$"),
    "ground_truth_prefix": Param(str, "", "S3 URI where labels land as ground-truth JSONL (empty means s3://BUCKET/PREFIX/ground-truth)", pattern=r"^(|s3://.+)$"),
    "sns_topic_name": Param(str, "msd-year-predictor-alerts", "SNS topic that alarms notify", pattern=r"^[A-Za-z0-9_\-]{1,256}$"),
    "kms_key_id": Param(str, "", "KMS key (id, alias or ARN) encrypting the SNS topic and the S3 objects the suite writes; empty means the services' defaults"),
    "alert_emails": Param(list, [], "e-mail addresses subscribed to the alert topic", item_type=str),
    "log_group": Param(str, "/msd-monitoring/msd-year-predictor", "CloudWatch Logs group for the suite's run logs", pattern=r"^[\.\-_/#A-Za-z0-9]{1,512}$"),
    "test_fire": Param(str, "local", "set the heartbeat alarm to ALARM and confirm the notification arrives: local: only on the emulator, always (pages subscribers in aws mode), never", choices=("local", "always", "never")),
    "alarm_overrides": Param(dict, {}, "per alarm (rmse, r2, estimated-rmse, data-drift, heartbeat, error-rate, latency-p99, and data-quality when alarms.data_quality is on), PutMetricAlarm fields to change: Period, EvaluationPeriods, DatapointsToAlarm, Threshold, TreatMissingData, ActionsEnabled"),
    "dashboard_name": Param(str, "MillionSongModel", "CloudWatch dashboard name", pattern=r"^[A-Za-z0-9_\-]{1,255}$"),
    "window": Param(str, "daily", "length of a monitoring window", choices=("hourly", "daily")),
    "segment_columns": Param(list, [], "extra columns of the joined records to break metrics down by, besides release decade (numeric ones are cut into quartiles)", item_type=str),
    "metrics_transport": Param(str, "api", "how metrics reach CloudWatch: api (PutMetricData) or emf (Embedded Metric Format lines in log_group; CloudWatch extracts the metrics in aws mode, the emulator does not)", choices=("api", "emf")),
    "label_wait_days": Param(int, 3, "days a window waits for delayed ground truth before it is closed and published", min=0, max=30),
    "max_label_wait_days": Param(int, 14, "days a window whose records have no labels at all stays open (the verdict names ground_truth_prefix) before it closes as 'unlabelled'; at least label_wait_days", min=0, max=365),
    "now": Param(str, "", "clock of the run, ISO 8601 UTC (empty means real clock in aws mode, end of the simulated world in local mode)"),
    "data_path": Param(str, "", "the real UCI YearPredictionMSD.txt or .zip (local path or s3:// URI); empty means deterministic synthetic data"),
    "scenario": Param(str, "drift", "simulated world (local mode): drift: newer songs and a broken feature part-way through; stable: no drift", choices=("drift", "stable")),
    "days": Param(int, 30, "days of simulated production traffic (local mode)", min=2, max=365),
    "seed": Param(int, 7, "seed of the simulated world; same seed, same world", min=0, max=2**31 - 1),
    "outbox_dir": Param(str, "", "local folder keeping undelivered metrics and notifications for the next run (empty means runs/outbox at the repo root)"),
    "run_dir": Param(str, "", "folder for this stage's JSON record (empty means runs/interactive at the repo root)"),
    "world": Section("size and shape of the simulated production world (local mode)", {
        "requests_per_day": Param(int, 1000, "records (scored rows) per simulated day; multi-record requests pack several", min=24, max=200_000),
        "capture_formats": Param(list, ["csv", "csv_batch", "json_instances", "json_features", "json_named", "jsonlines", "base64"],
                                 "request shapes the simulated endpoint captures, each request drawing one at random (csv, csv_batch, json_instances, json_features, json_named, jsonlines, base64; the json ones and csv_batch carry 1-5 records)",
                                 choices=("csv", "csv_batch", "json_instances", "json_features", "json_named", "jsonlines", "base64"), item_type=str),
        "train_rows": Param(int, 20_000, "synthetic training rows for the baseline model", min=1000, max=463_715),
        "test_rows": Param(int, 5_000, "synthetic test rows (baseline test-set metrics)", min=500, max=51_630),
        "label_delay_days": Param(float, 2.0, "mean delay before a label lands as ground truth", min=0.0, max=20.0),
        "label_coverage": Param(float, 0.9, "share of invocations that ever get a label", min=0.05, max=1.0),
        "drift_start_fraction": Param(float, 0.6, "where in the world drift begins (drift scenario)", min=0.05, max=0.95),
        "broken_feature": Param(str, "timbre_avg_01", "feature whose upstream pipeline breaks (drift scenario)"),
        "missing_share": Param(float, 0.0, "share of records whose broken_feature value is captured missing (null), from the day drift_start_fraction names (any scenario); data-quality completeness_check shows it", min=0.0, max=1.0),
        "text_share": Param(float, 0.0, "share of records whose broken_feature value is captured as text (\"unknown\"), from the day drift_start_fraction names (any scenario); data-quality data_type_check shows it", min=0.0, max=1.0),
    }),
    "thresholds": Section("alarm thresholds on model quality and endpoint health", {
        "rmse_max": Param(float, 9.0, "RMSE (years) above which the quality alarm fires", min=0.0),
        "r2_min": Param(float, 0.15, "R2 below which the quality alarm fires", min=-10.0, max=1.0),
        "error_rate_max": Param(float, 0.05, "share of invocations returning 4XX/5XX above which the error alarm fires", min=0.0, max=1.0),
        "latency_p99_ms_max": Param(float, 250.0, "ModelLatency p99 (milliseconds) above which the latency alarm fires", min=0.0),
        "estimated_rmse_max": Param(float, 0.0, "label-free estimated RMSE (years) above which the estimated-rmse alarm fires the day a window closes (0 means thresholds.rmse_max)", min=0.0),
    }),
    "alarms": Section("optional alarms (off by default)", {
        "data_quality": Param(bool, False, "put the data-quality alarm (<endpoint_name>-data-quality: DataQualityViolations >= 1 in a window) that pages like the others; alarm_overrides can then tune it"),
    }),
    "drift": Section("drift detection", {
        "alpha": Param(float, 0.01, "significance level after multiple-testing correction (per window: a daily false alarm about once in 100 days)", min=1e-12, max=0.5),
        "correction": Param(str, "bh", "multiple-testing correction", choices=("bh", "bonferroni", "none")),
        "effect_size": Param(str, "wasserstein", "effect size a drifted feature must also pass", choices=("wasserstein", "psi", "ks")),
        "min_effect": Param(float, 0.0, "practical threshold on the effect size (0: the detector's default for that effect size)", min=0.0),
        "dataset_rule": Param(str, "count", "how feature verdicts make the dataset verdict", choices=("count", "share", "weighted")),
        "dataset_threshold": Param(float, 1.0, "drifted features (count) or share of features (share/weighted) that make the dataset drift", min=0.0),
    }),
    "model_monitor": Section("an existing SageMaker Model Monitor data-quality baseline as the drift reference (empty: the suite's own baseline)", {
        "statistics_uri": Param(str, "", "S3 URI of the baselining job's statistics.json (with constraints_uri; empty means none)", pattern=r"^(|s3://.+)$"),
        "constraints_uri": Param(str, "", "S3 URI of the baselining job's constraints.json (with statistics_uri; empty means none)", pattern=r"^(|s3://.+)$"),
        "schedule_name": Param(str, "", "data-quality monitoring schedule whose baseline (DescribeMonitoringSchedule and its job definition) is used when the URIs are empty; also the <schedule> of the per-window files' layout and the MonitoringSchedule dimension (empty there means <endpoint_name>-suite)", pattern=r"^(|[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62})$"),
        "publish_metrics": Param(bool, False, "also publish Model Monitor's own metrics (feature_baseline_drift_<f>, feature_non_null_<f>, feature_data_<f> to aws/sagemaker/Endpoints/data-metrics; mae, mse, rmse, r2 to aws/sagemaker/Endpoints/model-metrics) with dimensions Endpoint and MonitoringSchedule, exactly once like the suite's"),
        "model_quality_constraints_uri": Param(str, "", "S3 URI of a model-quality baselining job's constraints.json (regression_constraints) each window's model quality is checked against; empty means the one setup writes from the test split", pattern=r"^(|s3://.+)$"),
        "attribution_ndcg_min": Param(float, 0.9, "feature-attribution drift: a window whose nDCG of global SHAP values against the baseline's is below this violates (Clarify's default 0.9)", min=0.0, max=1.0),
    }),
    "retraining": Section("retraining and deployment", {
        "dry_run": Param(bool, False, "decide and compare but never deploy"),
        "min_interval_days": Param(float, 7.0, "minimum days between two retrains", min=0.0),
        "rmse_margin": Param(float, 0.02, "relative RMSE improvement the challenger needs over the champion", min=0.0, max=1.0),
        "segment_tolerance": Param(float, 0.10, "relative RMSE regression allowed in any decade segment", min=0.0, max=1.0),
        "min_segment_share": Param(float, 0.05, "share of the holdout a decade needs to veto a promotion (smaller ones are reported only)", min=0.0, max=1.0),
        "recent_days": Param(int, 14, "days of newly labelled traffic used to retrain and compare", min=2, max=365),
        "holdout_fraction": Param(float, 0.3, "newest share of the recent labelled traffic held out to compare champion and challenger", min=0.05, max=0.9),
        "traffic_shifting": Param(str, "canary", "blue/green traffic shifting of a deploy", choices=("canary", "linear", "all_at_once")),
        "shift_percent": Param(int, 10, "canary size, or the step of linear shifting, in percent of capacity", min=1, max=100),
        "shift_wait_seconds": Param(int, 600, "baking time between traffic shifts (auto-rollback watches the alarms meanwhile)", min=0, max=3600),
        "state_machine_role_arn": Param(str, "", "IAM role of the retraining state machine (aws mode; empty means the workflow is not created)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
        "schedule": Param(str, "", "EventBridge Scheduler expression starting the workflow in aws mode, e.g. cron(0 7 * * ? *); empty means unscheduled"),
        "scheduler_role_arn": Param(str, "", "IAM role EventBridge Scheduler uses to start the workflow (aws mode)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
        "recent_weight": Param(float, 1.0, "weight of a newly labelled row relative to a training row", min=0.01, max=100.0),
        "job_role_arn": Param(str, "", "IAM role the workflow's SageMaker training and processing jobs run with (aws mode)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
        "image_uri": Param(str, "", "SageMaker scikit-learn framework image the workflow's jobs run in (aws mode), e.g. <registry>/sagemaker-scikit-learn:1.2-1-cpu-py3 for your region", pattern=r"^(|[a-z0-9.\-]+(:\d+)?/[a-z0-9._/\-]+(:[A-Za-z0-9._\-]+|@sha256:[0-9a-f]{64}))$"),
        "instance_type": Param(str, "ml.m5.large", "instance type of the workflow's training and processing jobs (aws mode)", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$"),
        "code_uri": Param(str, "", "S3 prefix holding the package source for the jobs: monitor_utils/ and sourcedir.tar.gz (empty means s3://BUCKET/PREFIX/code)", pattern=r"^(|s3://.+)$"),
    }),
    "suite_schedule": Section("the suite scheduled in the account: EventBridge Scheduler starts it as a SageMaker Processing job (python -m monitor_utils schedule)", {
        "expression": Param(str, "cron(0 6 * * ? *)", "EventBridge Scheduler expression of the suite's runs: cron(...), rate(...) or at(...)", pattern=r"^(cron\([^()]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$"),
        "timezone": Param(str, "UTC", "IANA time zone the expression is read in, e.g. Europe/Berlin"),
        "scheduler_role_arn": Param(str, "", "IAM role EventBridge Scheduler assumes to start the job (iam-policy --role scheduler)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
        "job_role_arn": Param(str, "", "IAM role the suite's Processing job runs with (iam-policy --role suite-job)", pattern=r"^(|arn:aws[a-z-]*:iam::\d{12}:role/.+)$"),
        "image_uri": Param(str, "", "Python framework image the job runs in (its python3 must be python_version), e.g. <registry>/sagemaker-scikit-learn:<tag> for your region", pattern=r"^(|[a-z0-9.\-]+(:\d+)?/[a-z0-9._/\-]+(:[A-Za-z0-9._\-]+|@sha256:[0-9a-f]{64}))$"),
        "instance_type": Param(str, "ml.m5.large", "instance type of the suite's Processing job", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$"),
        "max_runtime_minutes": Param(int, 120, "the job is stopped after this long (StoppingCondition.MaxRuntimeInSeconds)", min=5, max=7200),
        "python_version": Param(str, "3.11", "Python version of the image's python3: the wheelhouse holds wheels for it (manylinux x86_64)", pattern=r"^3\.\d{1,2}$"),
        "stages": Param(str, "", "stages the scheduled run runs, comma-separated (setup, metrics, drift, alerting, dashboard, retraining); empty means all", pattern=r"^[a-z0-9_, ]*$"),
    }),
    "retries": Section("boto3 retry behaviour", {
        "mode": Param(str, "standard", "botocore retry mode", choices=("standard", "adaptive", "legacy")),
        "max_attempts": Param(int, 12, "attempts per AWS call, first included", min=1, max=50),
    }),
    "faults": Section("fault injection (local mode only)", {
        "throttle_fraction": Param(float, 0.0, "share of AWS calls answered with throttling", min=0.0, max=0.9),
        "malformed_capture_fraction": Param(float, 0.0, "share of capture lines written corrupt", min=0.0, max=0.5),
    }),
    "engine": Param(str, "local", "where the per-window work (read, parse, join, metrics, drift tests) runs: local: one window after the other in the stage's process; dask: one Dask task per window on the cluster at dask_address", choices=("local", "dask")),
    "dask_address": Param(str, "", "Dask scheduler for engine dask, e.g. tcp://scheduler:8786 (empty means a local cluster of worker processes on this machine, one per core)", pattern=r"^(|(tcp|tls|ws|wss|ucx)://.+)$"),
    "run_lease": Param(bool, True, "aws mode: a run takes the lease state/lease.json under the prefix (one runner at a time per bucket and prefix; a second exits with code 3, or waits with run --wait-for-lease); false runs without it (watermarks still publish each window once)"),
    "lease_seconds": Param(int, 300, "how long the run's S3 lease lasts unless renewed (renewed every third of it while the run runs); an expired lease may be taken over", min=30, max=86_400),
    "lock_wait_seconds": Param(int, 0, "how long a run waits for an overlapping run of the same params to finish (0: exit at once with a message)", min=0, max=86_400),
    "stage_timeout_seconds": Param(int, 900, "timeout of one stage (seconds) when run by the runner", min=10, max=86_400),
    "parallel_stages": Param(bool, True, "the runner runs metrics beside drift, and the dashboard beside retraining (each in its own kernel)"),
}


def defaults() -> dict[str, Any]:
    """Return every parameter at its default, sections as nested dicts."""
    out: dict[str, Any] = {}
    for name, spec in SCHEMA.items():
        if isinstance(spec, Section):
            out[name] = {k: copy.deepcopy(p.default) for k, p in spec.params.items()}
        else:
            out[name] = copy.deepcopy(spec.default)
    return out


class Params(dict):
    """Validated parameters with attribute access (``p.region``, ``p.drift.alpha``) and derived values."""

    _origins: dict[str, str] = {}
    _source: str = "params"

    def origin(self, key: str) -> str:
        """Where ``key`` (dotted for a section's key) was set: a params file, ``-p``, or the sources it was loaded
        from when it keeps its default (named in error messages)."""
        return _origin_of(self._origins, key, self._source)

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return _AttrDict(value) if isinstance(value, dict) else value

    def _uri(self, key: str, default_suffix: str) -> str:
        return self[key] or f"s3://{self['bucket']}/{self['prefix']}/{default_suffix}"

    @property
    def capture_uri(self) -> str:
        """S3 URI of Data Capture for this endpoint's config (DestinationS3Uri)."""
        return self._uri("capture_prefix", "datacapture")

    @property
    def ground_truth_uri(self) -> str:
        """S3 URI where ground-truth JSONL lands."""
        return self._uri("ground_truth_prefix", "ground-truth")

    @property
    def estimated_rmse_max(self) -> float:
        """Threshold of the estimated-rmse alarm: ``thresholds.estimated_rmse_max``, or ``thresholds.rmse_max`` when 0."""
        t = self["thresholds"]
        return float(t["estimated_rmse_max"] or t["rmse_max"])

    def metric_dimensions(self, **extra: str) -> dict[str, str]:
        """The suite's CloudWatch dimensions for this endpoint (plus e.g. Segment or Feature)."""
        return {"EndpointName": self["endpoint_name"], "VariantName": self["variant_name"], **extra}

    def key(self, *parts: str) -> str:
        """S3 key under the suite's prefix."""
        return "/".join([self["prefix"].strip("/"), *parts])

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy."""
        return copy.deepcopy(dict(self))


class _AttrDict(dict):
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _accepted(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _coerce(where: str, spec: Param, value: Any) -> Any:
    if spec.type is str and isinstance(value, (dt.date, dt.datetime)):
        value = value.isoformat()  # YAML turns 2026-01-02 into a date: keep it text
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.type is list and isinstance(value, tuple):
        value = list(value)
    ok = isinstance(value, spec.type) and not (spec.type in (int, float) and isinstance(value, bool))
    if not ok:
        raise ParamsError(
            f"parameter '{where}' must be {spec.type.__name__}, got {type(value).__name__} {value!r} ({spec.help})"
        )
    if spec.choices and spec.type is list:
        if not value:
            raise ParamsError(f"parameter '{where}' is empty; give one or more of: {', '.join(map(str, spec.choices))}")
        for item in value:
            if item not in spec.choices:
                raise ParamsError(f"parameter '{where}' holds {item!r}; accepted values: {', '.join(map(str, spec.choices))}")
    elif spec.choices and value not in spec.choices:
        raise ParamsError(f"parameter '{where}' is {value!r}; accepted values: {', '.join(map(str, spec.choices))}")
    if spec.type is float and not math.isfinite(value):
        raise ParamsError(f"parameter '{where}' is {value!r}; it must be a finite number ({spec.help})")
    if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
        raise ParamsError(f"parameter '{where}' is {value!r}, out of range [{spec.min}, {spec.max}] ({spec.help})")
    if spec.pattern and not re.match(spec.pattern, value):
        raise ParamsError(f"parameter '{where}' is {value!r}, which is not a valid value ({spec.help})")
    if spec.item_type:
        for item in value:
            if not isinstance(item, spec.item_type):
                raise ParamsError(f"parameter '{where}' must hold {spec.item_type.__name__} items, got {item!r}")
    return value


def _check_now(value: str) -> None:
    if value:
        try:
            parse_time(value)
        except ValueError as exc:
            raise ParamsError(f"parameter 'now' is {value!r}, not a valid time ({exc}); use ISO 8601 UTC like "
                              "2026-11-28T00:00:00Z or 2026-11-28, or leave it empty for the real clock") from None


def _check_timezone(value: str) -> None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ParamsError(f"parameter 'suite_schedule.timezone' is {value!r}, which is not an IANA time zone; "
                          "use e.g. UTC or Europe/Berlin") from None


def _origin_of(origins: Mapping[str, str], key: str, source: str) -> str:
    return origins.get(key) or origins.get(key.split(".", 1)[0]) or source


def validate(values: Mapping[str, Any], source: str = "params", origins: Mapping[str, str] | None = None) -> Params:
    """Check every key and value against SCHEMA and the rest of the suite (:mod:`params_checks`), and fill defaults.

    Parameters
    ----------
    values : Mapping[str, Any]
        Parameters, sections as nested mappings.
    source : str
        Where the values came from, named in error messages.
    origins : Mapping[str, str], optional
        Where each key (dotted for a section's key) was set, when the values were merged from several sources
        (:func:`load`): an error names the file (or ``-p``) that set the bad value.

    Returns
    -------
    Params
        Complete, validated parameters.

    Raises
    ------
    ParamsError
        Naming the unknown key and the accepted keys, or the bad value and why.
    """
    origins = dict(origins or {})
    where = lambda key: _origin_of(origins, key, source)  # noqa: E731
    out = defaults()
    for name, value in values.items():
        spec = SCHEMA.get(name)
        if spec is None:
            raise ParamsError(f"{where(name)}: unknown parameter '{name}'; accepted parameters: {_accepted(SCHEMA)}")
        if isinstance(spec, Section):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ParamsError(f"{where(name)}: parameter '{name}' must be a mapping of {_accepted(spec.params)}")
            for sub, subvalue in value.items():
                if sub not in spec.params:
                    raise ParamsError(f"{where(f'{name}.{sub}')}: unknown parameter '{name}.{sub}'; accepted keys of "
                                      f"'{name}': {_accepted(spec.params)}")
                try:
                    out[name][sub] = _coerce(f"{name}.{sub}", spec.params[sub], subvalue)
                except ParamsError as exc:
                    raise ParamsError(f"{where(f'{name}.{sub}')}: {exc}") from None
        else:
            try:
                out[name] = _coerce(name, spec, value)
            except ParamsError as exc:
                raise ParamsError(f"{where(name)}: {exc}") from None
    for key, check in (("now", lambda: _check_now(out["now"])),
                       ("suite_schedule.timezone", lambda: _check_timezone(out["suite_schedule"]["timezone"]))):
        try:
            check()
        except ParamsError as exc:
            raise ParamsError(f"{where(key)}: {exc}") from None
    if out["max_label_wait_days"] < out["label_wait_days"]:
        raise ParamsError(f"{where('max_label_wait_days')}: parameter 'max_label_wait_days' is "
                          f"{out['max_label_wait_days']}, below label_wait_days ({out['label_wait_days']}); a window "
                          "cannot stop waiting for labels before it starts waiting: raise max_label_wait_days or lower "
                          "label_wait_days")
    params = Params(out)
    params._origins, params._source = origins, source
    from . import params_checks  # checks against the alarms, the capture's columns and the schema's features

    return _checked(params, params_checks.CHECKS, where)


def check_files(params: Params) -> Params:
    """Check the parameters that name files on this machine (``data_path``); return ``params``.

    :func:`load` and :func:`from_namespace` call it; :func:`validate` alone does not, because the retraining
    workflow's jobs validate the run's parameters on another machine.

    Raises
    ------
    ParamsError
        Naming the key, where it was set, the value and the fix.
    """
    from . import params_checks

    return _checked(params, params_checks.FILE_CHECKS, params.origin)


def _checked(params: Params, checks, where) -> Params:
    """``params`` after each ``(key, check)`` passed; a check's ValueError becomes a ParamsError naming where
    ``key`` was set (``where(key)``)."""
    for key, check in checks:
        try:
            check(params)
        except ValueError as exc:
            raise ParamsError(f"{where(key)}: {exc}") from None
    return params


class _TextDatesLoader(yaml.SafeLoader):
    """YAML's safe loader, except that dates and times stay text: ``now: 2026-02-30`` would raise inside the
    loader (an impossible date), and a valid one would come back as a date object; every time parameter is text,
    checked by :func:`validate` with the key and file named."""


_TextDatesLoader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_TextDatesLoader)  # noqa: S506 - a SafeLoader subclass


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` from the command line; VALUE is read as YAML (numbers, booleans, lists; dates stay text)."""
    if "=" not in text:
        raise ParamsError(f"-p {text!r}: expected KEY=VALUE, e.g. -p scenario=stable or -p drift.alpha=0.01")
    key, raw = text.split("=", 1)
    try:
        value = _load_yaml(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):
        value = raw
    return key.strip(), value


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"-p {dotted}: '{part}' is not a section")
    node[parts[-1]] = value


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Read one YAML params file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} does not exist")
    try:
        data = _load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"params file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"params file {path} must hold a mapping of parameter names to values")
    return data


def merge(base: dict, extra: Mapping) -> dict:
    """Merge ``extra`` into a copy of ``base``; sections merge key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load(files: Iterable[str | Path] = (), overrides: Iterable[str] = ()) -> Params:
    """Merge params files in order, then ``KEY=VALUE`` overrides (dotted keys reach sections), and validate.

    Parameters
    ----------
    files : Iterable[str | Path]
        YAML params files, later ones win.
    overrides : Iterable[str]
        ``KEY=VALUE`` strings applied last.

    Returns
    -------
    Params
    """
    merged: dict[str, Any] = {}
    sources = []
    origins: dict[str, str] = {}
    for f in files:
        data = read_params_file(f)
        merged = merge(merged, data)
        sources.append(str(f))
        _note_origins(origins, data, str(f))
    over: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(over, key, value)
    _note_origins(origins, over, "-p")
    merged = merge(merged, over)
    source = " + ".join(sources + (["-p"] if over else [])) or "params"
    return check_files(validate(merged, source=source, origins=origins))


def _note_origins(origins: dict[str, str], data: Mapping, source: str) -> None:
    """Record ``source`` as where each key of ``data`` was set (a section's keys dotted)."""
    for key, value in data.items():
        origins[str(key)] = source
        if isinstance(value, Mapping):
            for sub in value:
                origins[f"{key}.{sub}"] = source


def from_namespace(namespace: Mapping[str, Any]) -> Params:
    """Build parameters from a notebook's globals: every schema key defined there is taken, the rest default."""
    values = {k: namespace[k] for k in SCHEMA if k in namespace}
    return check_files(validate(values, source="notebook parameters"))


def parse_time(value: str | dt.datetime) -> dt.datetime:
    """Parse an ISO 8601 time into an aware UTC datetime (naive means UTC)."""
    if isinstance(value, dt.datetime):
        t = value
    else:
        t = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


"""Tests for monitor_utils.config: schema validation, params files, -p overrides, notebook globals, times."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pytest
import yaml

from monitor_utils import config as C
from monitor_utils.config import ParamsError, Section

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = sorted(C.SCHEMA)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- defaults


def test_defaults_validate_to_themselves():
    d = C.defaults()
    assert set(d) == set(C.SCHEMA)
    for name, spec in C.SCHEMA.items():
        if isinstance(spec, Section):
            assert set(d[name]) == set(spec.params)
    p = C.validate({})
    assert dict(p) == d
    assert dict(C.validate(d)) == d


def test_defaults_are_fresh_copies():
    a = C.defaults()
    a["alert_emails"].append("x@example.com")
    a["drift"]["alpha"] = 0.3
    b = C.defaults()
    assert b["alert_emails"] == []
    assert b["drift"]["alpha"] == C.SCHEMA["drift"].params["alpha"].default != 0.3


def test_every_default_satisfies_its_own_constraints():
    for name, spec in C.SCHEMA.items():
        params = spec.params.items() if isinstance(spec, Section) else [(None, spec)]
        for sub, p in params:
            where = f"{name}.{sub}" if sub else name
            v = p.default
            assert isinstance(v, p.type) and not (p.type in (int, float) and isinstance(v, bool)), where
            if p.choices:
                assert set(v) <= set(p.choices) if p.type is list else v in p.choices, where
            if p.min is not None:
                assert v >= p.min, where
            if p.max is not None:
                assert v <= p.max, where
            if p.pattern:
                assert re.match(p.pattern, v), where


def test_shipped_params_files_are_valid():
    files = sorted((REPO / "params").glob("*.yaml"))
    assert files, "the repo ships at least one params file"
    for f in files:
        C.load([f])


# --------------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_names_key_and_lists_accepted():
    with pytest.raises(ParamsError) as e:
        C.validate({"dayz": 10})
    msg = str(e.value)
    assert "'dayz'" in msg
    for name in TOP_LEVEL:
        assert name in msg
    # the accepted keys are listed, sorted, as one list
    assert ", ".join(TOP_LEVEL) in msg


def test_unknown_section_key_names_key_and_lists_section_keys():
    with pytest.raises(ParamsError) as e:
        C.validate({"drift": {"alpah": 0.01}})
    msg = str(e.value)
    assert "drift.alpah" in msg
    assert ", ".join(sorted(C.SCHEMA["drift"].params)) in msg


def test_section_must_be_a_mapping():
    with pytest.raises(ParamsError, match=r"'drift' must be a mapping"):
        C.validate({"drift": 0.01})


def test_section_none_means_defaults():
    assert C.validate({"drift": None}).drift == C.defaults()["drift"]


def test_partial_section_keeps_other_defaults():
    p = C.validate({"drift": {"alpha": 0.01}})
    assert p["drift"]["alpha"] == 0.01
    assert p["drift"]["correction"] == C.SCHEMA["drift"].params["correction"].default


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("values, param, why", [
    ({"days": "ten"}, "days", "must be int"),
    ({"days": 0}, "days", "out of range"),
    ({"days": 366}, "days", "out of range"),
    ({"days": 10.0}, "days", "must be int"),
    ({"aws_mode": "cloud"}, "aws_mode", "accepted values: local, aws"),
    ({"window": "weekly"}, "window", "accepted values"),
    ({"region": "US East"}, "region", "not a valid value"),
    ({"bucket": "Bad_Bucket"}, "bucket", "not a valid value"),
    ({"role_arn": "admin"}, "role_arn", "not a valid value"),
    ({"alert_emails": "ops@example.com"}, "alert_emails", "must be list"),
    ({"alert_emails": ["ops@example.com", 3]}, "alert_emails", "str items"),
    ({"drift": {"alpha": "x"}}, "drift.alpha", "must be float"),
    ({"drift": {"alpha": 0.9}}, "drift.alpha", "out of range"),
    ({"drift": {"correction": "holm"}}, "drift.correction", "accepted values"),
    ({"world": {"requests_per_day": 10}}, "world.requests_per_day", "out of range"),
    ({"retraining": {"dry_run": "yes"}}, "retraining.dry_run", "must be bool"),
    ({"retraining": {"dry_run": 1}}, "retraining.dry_run", "must be bool"),
    ({"now": "yesterday"}, "now", "ISO 8601"),
])
def test_bad_values_fail_naming_the_parameter(values, param, why):
    with pytest.raises(ParamsError) as e:
        C.validate(values)
    msg = str(e.value)
    assert f"'{param}'" in msg
    assert why in msg


@pytest.mark.parametrize("values, param", [
    ({"days": True}, "days"),
    ({"seed": False}, "seed"),
    ({"world": {"train_rows": True}}, "world.train_rows"),
    ({"drift": {"alpha": True}}, "drift.alpha"),
])
def test_bool_is_not_a_number(values, param):
    with pytest.raises(ParamsError, match=re.escape(f"'{param}' must be")) as e:
        C.validate(values)
    assert "bool" in str(e.value)


def test_int_is_accepted_for_float_and_becomes_float():
    p = C.validate({"thresholds": {"rmse_max": 10}, "world": {"label_delay_days": 0}})
    assert p["thresholds"]["rmse_max"] == 10.0 and type(p["thresholds"]["rmse_max"]) is float
    assert type(p["world"]["label_delay_days"]) is float


def test_range_bounds_are_inclusive():
    p = C.validate({"days": 2, "drift": {"alpha": 0.5}, "world": {"label_coverage": 1.0}})
    assert p.days == 2 and p.drift.alpha == 0.5 and p.world.label_coverage == 1.0
    with pytest.raises(ParamsError):
        C.validate({"days": 1})


def test_tuple_accepted_for_list():
    p = C.validate({"alert_emails": ("a@example.com", "b@example.com")})
    assert p.alert_emails == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("values", [{"drift": {"alpha": float("nan")}},
                                    {"world": {"label_coverage": float("nan")}},
                                    {"thresholds": {"r2_min": float("nan")}}])
def test_nan_is_rejected_for_bounded_floats(values):
    with pytest.raises(ParamsError):
        C.validate(values)


def test_yaml_nan_is_rejected_from_an_override_and_a_params_file(tmp_path):
    # the way a NaN gets in: YAML's .nan in a params file or -p drift.alpha=.nan
    key, value = C.parse_override("drift.alpha=.nan")
    assert key == "drift.alpha" and math.isnan(value)
    with pytest.raises(ParamsError, match="'drift.alpha'.*finite"):
        C.load(overrides=["drift.alpha=.nan"])
    f = write(tmp_path / "nan.yaml", "thresholds:\n  rmse_max: .nan\n")
    with pytest.raises(ParamsError, match="nan.yaml.*'thresholds.rmse_max'.*finite"):
        C.load([f])


# --------------------------------------------------------------------------- now / YAML dates


def test_yaml_date_for_now_is_text_and_accepted(tmp_path):
    f = write(tmp_path / "p.yaml", "now: 2026-11-28\n")
    assert isinstance(yaml.safe_load(f.read_text())["now"], dt.date)  # YAML really produces a date
    p = C.load([f])
    assert p.now == "2026-11-28"
    assert C.parse_time(p.now) == dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)


def test_yaml_datetime_for_now_is_text_and_accepted(tmp_path):
    f = write(tmp_path / "p.yaml", "now: 2026-11-28T06:30:00Z\n")
    p = C.load([f])
    assert isinstance(p.now, str)
    assert C.parse_time(p.now) == dt.datetime(2026, 11, 28, 6, 30, tzinfo=dt.timezone.utc)


def test_now_from_override_is_text():
    p = C.load(overrides=["now=2026-11-28T00:00:00Z"])
    assert isinstance(p.now, str)
    assert C.parse_time(p.now) == dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)


# --------------------------------------------------------------------------- load / overrides


def test_load_merges_files_in_order_then_overrides(tmp_path):
    f1 = write(tmp_path / "a.yaml", "days: 10\nseed: 3\ndrift:\n  alpha: 0.1\n  correction: none\n")
    f2 = write(tmp_path / "b.yaml", "days: 20\ndrift:\n  correction: bonferroni\nworld:\n  train_rows: 5000\n")
    p = C.load([f1, f2], ["days=30", "drift.alpha=0.01", "alert_emails=[a@example.com, b@example.com]",
                          "world.label_coverage=0.5"])
    assert p.days == 30                               # -p beats both files
    assert p.seed == 3                                # from the first file only
    assert p.drift.alpha == 0.01                      # dotted -p reaches the section
    assert p.drift.correction == "bonferroni"         # later file beats earlier, key by key
    assert p.drift.effect_size == C.SCHEMA["drift"].params["effect_size"].default  # untouched key: default
    assert p.world.train_rows == 5000
    assert p.world.label_coverage == 0.5
    assert p.alert_emails == ["a@example.com", "b@example.com"]


def test_load_later_file_wins(tmp_path):
    f1 = write(tmp_path / "a.yaml", "scenario: stable\n")
    f2 = write(tmp_path / "b.yaml", "scenario: drift\n")
    assert C.load([f1, f2]).scenario == "drift"
    assert C.load([f2, f1]).scenario == "stable"


@pytest.mark.parametrize("text, key, value", [
    ("days=12", "days", 12),
    ("drift.alpha=0.01", "drift.alpha", 0.01),
    ("retraining.dry_run=true", "retraining.dry_run", True),
    ("alert_emails=[a@example.com]", "alert_emails", ["a@example.com"]),
    ("scenario=stable", "scenario", "stable"),
    ("now=", "now", ""),
    ("prefix=a=b", "prefix", "a=b"),
    (" days = 5", "days", 5),
])
def test_parse_override_reads_yaml(text, key, value):
    k, v = C.parse_override(text)
    assert (k, v) == (key, value)
    assert type(v) is type(value)


def test_override_types_reach_params():
    p = C.load(overrides=["days=12", "retraining.dry_run=true", "thresholds.rmse_max=8"])
    assert p.days == 12 and p.retraining.dry_run is True and p.thresholds.rmse_max == 8.0


@pytest.mark.parametrize("text", ["days", "", "drift.alpha"])
def test_override_without_equals_errors(text):
    with pytest.raises(ParamsError, match="KEY=VALUE"):
        C.load(overrides=[text])


@pytest.mark.parametrize("text, named", [
    ("days=[1,", "days"),                    # malformed YAML stays text, then fails the type check
    ("alert_emails=[a@example.com", "alert_emails"),
    ("days.x=1", "days"),                    # a dotted key into a plain parameter
    ("drift.bogus=1", "drift.bogus"),
    ("nosuch=1", "nosuch"),
])
def test_malformed_override_errors_naming_parameter(text, named):
    with pytest.raises(ParamsError) as e:
        C.load(overrides=[text])
    assert named in str(e.value)


def test_missing_params_file_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ParamsError) as e:
        C.load([missing])
    assert str(missing) in str(e.value)


def test_invalid_yaml_file_named(tmp_path):
    f = write(tmp_path / "broken.yaml", "days: [1, 2\n")
    with pytest.raises(ParamsError) as e:
        C.load([f])
    assert str(f) in str(e.value) and "YAML" in str(e.value)


def test_non_mapping_file_named(tmp_path):
    f = write(tmp_path / "list.yaml", "- days\n- seed\n")
    with pytest.raises(ParamsError) as e:
        C.load([f])
    assert str(f) in str(e.value)


def test_empty_file_means_defaults(tmp_path):
    f = write(tmp_path / "empty.yaml", "# nothing\n")
    assert dict(C.load([f])) == C.defaults()


def test_unknown_key_in_file_names_the_file(tmp_path):
    f = write(tmp_path / "p.yaml", "dayz: 3\n")
    with pytest.raises(ParamsError) as e:
        C.load([f])
    assert str(f) in str(e.value) and "'dayz'" in str(e.value)


def test_bad_top_level_value_in_file_names_the_file(tmp_path):
    f = write(tmp_path / "p.yaml", "days: ten\n")
    with pytest.raises(ParamsError) as e:
        C.load([f])
    assert str(f) in str(e.value) and "'days'" in str(e.value)


def test_bad_section_value_in_file_names_the_file(tmp_path):
    f = write(tmp_path / "p.yaml", "drift:\n  alpha: lots\n")
    with pytest.raises(ParamsError) as e:
        C.load([f])
    assert "'drift.alpha'" in str(e.value)
    assert str(f) in str(e.value)


# --------------------------------------------------------------------------- notebook globals


def test_from_namespace_picks_schema_keys_and_ignores_others():
    ns = {"days": 9, "drift": {"alpha": 0.02}, "np": object(), "In": [], "_": None, "unrelated": "x",
          "scenario": "stable"}
    p = C.from_namespace(ns)
    assert p.days == 9 and p.scenario == "stable" and p.drift.alpha == 0.02
    assert "unrelated" not in p and "np" not in p
    assert p.seed == C.defaults()["seed"]


def test_from_namespace_validates():
    with pytest.raises(ParamsError, match="notebook parameters.*'days'"):
        C.from_namespace({"days": "ten"})



# --------------------------------------------------------------------------- Params


def test_params_attribute_access():
    p = C.validate({"drift": {"alpha": 0.02}, "region": "eu-west-1"})
    assert p.region == p["region"] == "eu-west-1"
    assert p.drift.alpha == 0.02
    assert p.drift["correction"] == C.SCHEMA["drift"].params["correction"].default
    with pytest.raises(AttributeError):
        _ = p.no_such_param
    with pytest.raises(AttributeError):
        _ = p.drift.no_such_key


def test_params_derived_uris_default_from_bucket_and_prefix():
    p = C.validate({"bucket": "my-bucket", "prefix": "a/b"})
    assert p.capture_uri == "s3://my-bucket/a/b/datacapture"
    assert p.ground_truth_uri == "s3://my-bucket/a/b/ground-truth"


def test_params_derived_uris_explicit():
    p = C.validate({"capture_prefix": "s3://elsewhere/cap", "ground_truth_prefix": "s3://labels/gt"})
    assert p.capture_uri == "s3://elsewhere/cap"
    assert p.ground_truth_uri == "s3://labels/gt"
    with pytest.raises(ParamsError, match="capture_prefix"):
        C.validate({"capture_prefix": "elsewhere/cap"})


def test_params_key_and_to_dict():
    p = C.validate({"prefix": "msd/"})
    assert p.key("state", "x.json") == "msd/state/x.json"
    d = p.to_dict()
    assert type(d) is dict and d == dict(p)
    before = p.drift.alpha
    d["drift"]["alpha"] = 0.3
    assert p.drift.alpha == before != 0.3


# --------------------------------------------------------------------------- parse_time


UTC = dt.timezone.utc


@pytest.mark.parametrize("text, expected", [
    ("2026-11-28T00:00:00Z", dt.datetime(2026, 11, 28, tzinfo=UTC)),
    ("2026-11-28T00:00:00", dt.datetime(2026, 11, 28, tzinfo=UTC)),           # naive means UTC
    ("2026-11-28T02:00:00+02:00", dt.datetime(2026, 11, 28, tzinfo=UTC)),
    ("2026-11-27T19:00:00-05:00", dt.datetime(2026, 11, 28, tzinfo=UTC)),
    (" 2026-11-28T13:45:10.250Z ", dt.datetime(2026, 11, 28, 13, 45, 10, 250000, tzinfo=UTC)),
    ("2026-11-28", dt.datetime(2026, 11, 28, tzinfo=UTC)),
])
def test_parse_time(text, expected):
    t = C.parse_time(text)
    assert t == expected
    assert t.utcoffset() == dt.timedelta(0)


def test_parse_time_datetimes():
    assert C.parse_time(dt.datetime(2026, 1, 1, 5)) == dt.datetime(2026, 1, 1, 5, tzinfo=UTC)
    est = dt.timezone(dt.timedelta(hours=-5))
    t = C.parse_time(dt.datetime(2026, 1, 1, 5, tzinfo=est))
    assert t == dt.datetime(2026, 1, 1, 10, tzinfo=UTC) and t.tzinfo == UTC


def test_parse_time_rejects_garbage():
    with pytest.raises(ValueError):
        C.parse_time("28/11/2026")

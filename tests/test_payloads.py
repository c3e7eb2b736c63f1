"""Tests for monitor_utils.payloads: every body shape real SageMaker capture and ground truth hold (fixtures
are built here in the shapes of real files: XGBoost CSV, Linear Learner JSON and JSON Lines, TF Serving)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from monitor_utils import config, data as D, payloads as P

FEATURES = D.FEATURES
ROWS = np.round(np.random.default_rng(3).normal(0, 50, size=(3, 90)), 5)


def side(data: str, ctype: str | None, encoding: str = "JSON") -> dict:
    out = {"observedContentType": ctype, "mode": "INPUT", "data": data, "encoding": encoding}
    return out if ctype is not None else {k: v for k, v in out.items() if k != "observedContentType"}


def csv_row(r) -> str:
    return ",".join(repr(float(v)) for v in r)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("data, ctype", [
    (csv_row(ROWS[0]), "text/csv"),                                   # XGBoost example: stripped row
    (csv_row(ROWS[0]) + "\n", "text/csv"),                            # the docs' example: trailing newline
    (csv_row(ROWS[0]), "text/csv; charset=utf-8"),
    (json.dumps({"instances": [ROWS[0].tolist()]}), "application/json"),
    (json.dumps({"instances": ROWS[0].tolist()}), "application/json"),  # one flat instance
    (json.dumps({"instances": [{"features": ROWS[0].tolist()}]}), "application/json"),
    (json.dumps({"features": ROWS[0].tolist()}), "application/json"),
    (json.dumps(ROWS[0].tolist()), "application/json"),
    (json.dumps(dict(zip(FEATURES, ROWS[0].tolist()))), "application/json"),
    (json.dumps({"features": ROWS[0].tolist()}, separators=(",", ":")), "application/jsonlines"),
])
def test_one_record_request_shapes(data, ctype):
    x = P.parse_input(side(data, ctype), FEATURES)
    np.testing.assert_array_equal(x, ROWS[:1])


@pytest.mark.parametrize("data, ctype", [
    ("\n".join(csv_row(r) for r in ROWS), "text/csv"),
    ("".join(csv_row(r) + "\n" for r in ROWS), "text/csv"),
    (json.dumps({"instances": ROWS.tolist()}), "application/json"),
    (json.dumps({"instances": [{"features": r} for r in ROWS.tolist()]}), "application/json"),
    (json.dumps(ROWS.tolist()), "application/json"),
    (json.dumps([dict(zip(FEATURES, r)) for r in ROWS.tolist()]), "application/json"),
    (json.dumps({"instances": [dict(zip(FEATURES, r)) for r in ROWS.tolist()]}), "application/json"),
    ("\n".join(json.dumps({"features": r}, separators=(",", ":")) for r in ROWS.tolist()), "application/jsonlines"),
    ("\n".join(json.dumps(r) for r in ROWS.tolist()) + "\n", "application/jsonlines"),
])
def test_multi_record_request_shapes(data, ctype):
    np.testing.assert_array_equal(P.parse_input(side(data, ctype), FEATURES), ROWS)


def test_named_features_map_by_name_not_by_order():
    shuffled = dict(reversed(list(zip(FEATURES, ROWS[0].tolist()))))
    x = P.parse_input(side(json.dumps({"instances": [shuffled]}), "application/json"), FEATURES)
    np.testing.assert_array_equal(x, ROWS[:1])


def test_feature_names_come_from_the_caller():
    names = ["a", "b", "c"]
    x = P.parse_input(side(json.dumps([{"c": 3, "a": 1, "b": 2}]), "application/json"), names)
    np.testing.assert_array_equal(x, [[1.0, 2.0, 3.0]])
    with pytest.raises(P.BodyError, match="has 90 values, the baseline has 3"):
        P.parse_input(side(csv_row(ROWS[0]), "text/csv", "CSV"), names)


@pytest.mark.parametrize("inner", [
    lambda: side(csv_row(ROWS[0]), "text/csv", "CSV"),
    lambda: side(json.dumps({"instances": ROWS.tolist()}), "application/json"),
    lambda: side("\n".join(json.dumps({"features": r}) for r in ROWS.tolist()), "application/jsonlines"),
])
def test_base64_of_any_shape(inner):
    plain = inner()
    coded = {**plain, "data": base64.b64encode(plain["data"].encode()).decode(), "encoding": "BASE64"}
    np.testing.assert_array_equal(P.parse_input(coded, FEATURES), P.parse_input(plain, FEATURES))


def test_content_type_missing_is_guessed_from_the_body():
    assert P.parse_input(side(json.dumps({"instances": ROWS.tolist()}), None), FEATURES).shape == (3, 90)
    assert P.parse_input(side(csv_row(ROWS[1]), None, "CSV"), FEATURES).shape == (1, 90)


@pytest.mark.parametrize("data, ctype, encoding, reason", [
    (",".join(["1"] * 69), "text/csv", "CSV", "has 69 values, the baseline has 90"),
    (",".join(FEATURES), "text/csv", "CSV", "header row"),
    (",".join(["1"] * 89 + ["n/a"]), "text/csv", "CSV", "'n/a', not a number"),
    ("{\"instances\": [[1, 2", "application/json", "JSON", "not valid JSON"),
    (json.dumps({"instances": [[1.0] * 90, [1.0] * 12]}), "application/json", "JSON", "record 1 has 12 values"),
    (json.dumps({"instances": [{k: 1 for k in FEATURES[:80]}]}), "application/json", "JSON", "lacks"),
    (json.dumps({"instances": "x"}), "application/json", "JSON", "not a list of records"),
    ("{\"features\": [1]}\n{oops", "application/jsonlines", "JSON", "JSON Lines record 1 is not valid JSON"),
    (csv_row(ROWS[0]), "text/csv", "XML", "unknown encoding 'XML'"),
    ("%%%", "text/csv", "BASE64", "not valid base64"),
    ("", "text/csv", "CSV", "empty"),
])
def test_unreadable_requests_say_why(data, ctype, encoding, reason):
    with pytest.raises(P.BodyError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        P.parse_input(side(data, ctype, encoding), FEATURES)


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize("data, ctype, expected", [
    ("0.036397725343704224", "text/csv; charset=utf-8", [0.036397725343704224]),    # XGBoost
    ("1999.5\n2001.25\n", "text/csv", [1999.5, 2001.25]),
    ("1999.5,2001.25", "text/csv", [1999.5, 2001.25]),
    (json.dumps({"predictions": [{"score": 0.9899773597717285, "predicted_label": 1},
                                 {"score": 0.5041388273239136, "predicted_label": 1}]}), "application/json",
     [0.9899773597717285, 0.5041388273239136]),                                     # Linear Learner JSON
    ("{\n    \"predictions\": [3.5, 4.0, 5.5\n    ]\n}", "application/json", [3.5, 4.0, 5.5]),  # TF Serving
    (json.dumps({"predictions": [[3.5], [4.0]]}), "application/json", [3.5, 4.0]),
    ("2001.5", "application/json", [2001.5]),
    ("{\"predicted_label\":1,\"score\":0.989977359771728}\n{\"predicted_label\":1,\"score\":0.504138827323913}\n",
     "application/jsonlines", [0.989977359771728, 0.504138827323913]),              # Linear Learner JSON Lines
])
def test_response_shapes(data, ctype, expected):
    np.testing.assert_array_equal(P.parse_output(side(data, ctype, "CSV" if "csv" in ctype else "JSON")), expected)


@pytest.mark.parametrize("data, ctype, reason", [
    ("nan", "text/csv", "not finite"),
    ("yes", "text/csv", "not a list of scores"),
    (json.dumps({"predictions": [{"label": 1}]}), "application/json", "no 'score'"),
    (json.dumps({"predictions": ["high"]}), "application/json", "not a score"),
])
def test_unreadable_responses_say_why(data, ctype, reason):
    with pytest.raises(P.BodyError, match=reason):
        P.parse_output(side(data, ctype, "CSV" if "csv" in ctype else "JSON"))


# --------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("gt, expected", [
    ({"data": "0", "encoding": "CSV"}, [0.0]),
    ({"data": "1987", "encoding": "CSV"}, [1987.0]),
    ({"data": "1987\n2003\n", "encoding": "CSV"}, [1987.0, 2003.0]),
    ({"data": json.dumps({"label": 1}), "encoding": "JSON"}, [1.0]),
    ({"data": "1999", "encoding": "JSON"}, [1999.0]),
    ({"data": json.dumps({"instances": [{"label": 0}, {"label": 1}, {"label": 1}]}), "encoding": "JSON"}, [0.0, 1.0, 1.0]),
    ({"data": base64.b64encode(b"2005").decode(), "encoding": "BASE64"}, [2005.0]),
])
def test_ground_truth_shapes(gt, expected):
    np.testing.assert_array_equal(P.parse_labels(gt), expected)


@pytest.mark.parametrize("gt, reason", [
    ({"data": "old", "encoding": "CSV"}, "not a number"),
    ({"data": json.dumps({"instances": [{"value": 1}]}), "encoding": "JSON"}, "no 'label'"),
    ({"data": "", "encoding": "CSV"}, "no label"),
    ({"data": 1987, "encoding": "CSV"}, "stores bodies as strings"),
])
def test_unreadable_ground_truth_says_why(gt, reason):
    with pytest.raises(P.BodyError, match=reason):
        P.parse_labels(gt)


# --------------------------------------------------------------------------- writers match readers


@pytest.mark.parametrize("fmt", P.FORMATS)
def test_every_world_format_reads_back(fmt):
    rows = ROWS[:1] if fmt not in P.MULTI_RECORD else ROWS
    scores = np.array([1990.12344, 2001.5, 1975.0])[: len(rows)]
    inp, out = P.encode_request(fmt, rows, scores, FEATURES)
    assert inp["mode"] == "INPUT" and out["mode"] == "OUTPUT"
    assert isinstance(inp["data"], str) and isinstance(out["data"], str)  # SageMaker stores bodies as strings
    np.testing.assert_array_equal(P.parse_input(inp, FEATURES), rows)
    np.testing.assert_allclose(P.parse_output(out), scores, atol=5e-5)


def test_jsonlines_output_ends_with_a_newline_and_uses_json_encoding():
    inp, out = P.encode_request("jsonlines", ROWS, [1.0, 2.0, 3.0], FEATURES)
    assert inp["encoding"] == out["encoding"] == "JSON"  # no JSONLINES encoding exists
    assert out["data"].endswith("\n") and out["data"].count("\n") == 3
    assert inp["observedContentType"] == "application/jsonlines"


def test_multi_record_labels_mirror_the_request():
    assert P.encode_labels([1990.0]) == {"data": "1990", "encoding": "CSV"}
    gt = P.encode_labels([1990.0, 2001.0])
    assert json.loads(gt["data"]) == {"instances": [{"label": 1990}, {"label": 2001}]} and gt["encoding"] == "JSON"


def test_world_format_choices_are_the_writer_formats():
    assert config.SCHEMA["world"].params["capture_formats"].choices == P.FORMATS
    assert set(config.defaults()["world"]["capture_formats"]) == set(P.FORMATS)
    with pytest.raises(config.ParamsError, match="'world.capture_formats' holds 'xml'"):
        config.validate({"world": {"capture_formats": ["csv", "xml"]}})
    with pytest.raises(config.ParamsError, match="empty"):
        config.validate({"world": {"capture_formats": []}})

"""Tests for monitor_utils.local.caches: local copies found by ETag, parsed windows reused, and never stale."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor_utils import aws as A, capture as C, config, data as D, windows as W
from monitor_utils.local import caches as O

BUCKET = "unit-test-object-cache"
BASE = f"s3://{BUCKET}/capture/ep/AllTraffic"
DAY = W.Window(dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc), dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc))


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "monitor_utils"


@pytest.fixture(scope="module")
def local(emulator):
    session = A.connect(config.validate({}), emulator.url, faults=False)
    A.ensure_bucket(session, BUCKET)
    return session


def _gets(session) -> list[str]:
    """Keys of every GetObject this session sends from now on."""
    seen: list[str] = []
    session.client("s3").meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: seen.append(params["Key"]))
    return seen


def _write_day(session, seed: int, n: int = 60) -> None:
    rng = np.random.default_rng(seed)
    frame = D.generate(n, seed=seed)
    times = pd.Series(DAY.start + pd.to_timedelta(np.sort(rng.uniform(0, 86399, n)), unit="s")).dt.floor("us")
    lines = [C.capture_line(frame[D.FEATURES].to_numpy()[i:i + 1], np.array([1990.0 + i]), f"e-{seed}-{i}", f"r-{seed}-{i}",
                            W.iso(times[i].to_pydatetime()), "csv") for i in range(n)]
    C.write_hourly(session, BASE, times, lines, "cap")


def test_a_copy_is_served_from_disk_until_the_object_changes(local, cache_home):
    A.put_bytes(local, BUCKET, "x/one.jsonl", b"first\n")
    listed = C.objects_between(local, f"s3://{BUCKET}/x", DAY.start, DAY.end)  # nothing partitioned there
    assert listed == []
    obj = O.Listed("x/one.jsonl", local.client("s3").head_object(Bucket=BUCKET, Key="x/one.jsonl")["ETag"], 6)
    gets = _gets(local)
    assert O.fetch(local, BUCKET, obj) == b"first\n" and O.fetch(local, BUCKET, obj) == b"first\n"
    assert gets == ["x/one.jsonl"]  # the second read came from the copy
    A.put_bytes(local, BUCKET, "x/one.jsonl", b"second\n")  # rewritten: S3 gives it a new ETag
    head = local.client("s3").head_object(Bucket=BUCKET, Key="x/one.jsonl")
    assert O.fetch(local, BUCKET, O.Listed("x/one.jsonl", head["ETag"], head["ContentLength"])) == b"second\n"
    assert len(gets) == 2


def test_nothing_is_kept_in_aws_mode_or_while_faults_are_injected(local, cache_home, monkeypatch):
    A.put_bytes(local, BUCKET, "y/two.jsonl", b"data\n")
    head = local.client("s3").head_object(Bucket=BUCKET, Key="y/two.jsonl")
    obj = O.Listed("y/two.jsonl", head["ETag"], head["ContentLength"])
    monkeypatch.setattr(local, "faults_injected", {"throttled": 0})
    assert O.fetch(local, BUCKET, obj) == b"data\n" and not cache_home.exists()
    monkeypatch.setattr(local, "faults_injected", {})
    monkeypatch.setattr(local, "mode", "aws")
    assert O.parsed(local, "k", [obj], "", lambda: 1, (O,)) == 1 and not cache_home.exists()


def test_a_parsed_window_is_reused_and_equals_a_fresh_parse(local, cache_home, monkeypatch):
    _write_day(local, seed=3)
    gets = _gets(local)
    first = C.read_capture(local, BASE, DAY)
    again = C.read_capture(local, BASE, DAY)
    n_objects = first.files
    assert n_objects > 1 and len(gets) == n_objects  # the second read parsed nothing and fetched nothing
    monkeypatch.setattr(O, "enabled", lambda session: False)
    fresh = C.read_capture(local, BASE, DAY)
    for batch in (first, again):
        pd.testing.assert_frame_equal(batch.records, fresh.records)
        assert (batch.files, batch.requests, batch.quarantined) == (fresh.files, fresh.requests, fresh.quarantined)


def test_a_new_object_in_the_window_or_a_changed_parser_parses_again(local, cache_home, monkeypatch):
    calls = []

    def parse():
        calls.append(1)
        return len(calls)

    objs = [O.Listed("a", '"e1"', 1)]
    assert O.parsed(local, "t", objs, "w", parse, (O,)) == 1
    assert O.parsed(local, "t", objs, "w", parse, (O,)) == 1
    assert O.parsed(local, "t", [*objs, O.Listed("b", '"e2"', 1)], "w", parse, (O,)) == 2
    assert O.parsed(local, "t", objs, "other window", parse, (O,)) == 3
    assert O.parsed(local, "t", objs, "w", parse, (O, C)) == 4  # other code: never an old result


def test_prune_removes_what_was_not_read_for_a_month(local, cache_home):
    calls = []
    O.parsed(local, "p", [O.Listed("old", '"1"', 1)], "", lambda: calls.append(1), (O,))
    O.parsed(local, "p", [O.Listed("new", '"2"', 1)], "", lambda: calls.append(1), (O,))
    old = next(p for p in (cache_home / "parsed" / "p").glob("*/*"))
    now = time.time()
    os.utime(old, (now - 40 * 86400, now - 40 * 86400))
    assert O.prune(now=now) == 1 and not old.exists()
    assert len(list((cache_home / "parsed" / "p").glob("*/*"))) == 1


# --------------------------------------------------------------------------- fingerprints of values


def frame(**changes) -> pd.DataFrame:
    """A small frame built afresh on every call (``changes``: columns replaced)."""
    values = {"year": np.array([1990.0, 2001.5, 1975.25]), "n": np.array([1, 2, 3]), "tag": ["a", "b", "c"],
              **changes}
    return pd.DataFrame(values, index=pd.RangeIndex(3))


def test_equal_values_built_separately_have_one_fingerprint():
    assert O.fingerprint(frame()) == O.fingerprint(frame())
    assert O.fingerprint(frame()) == O.fingerprint(pd.DataFrame(frame().to_dict()))  # another construction
    one = {"a": 1, "b": [1.5, "x"], "c": {"z": None, "y": (1, 2)}}
    other = {"c": {"y": (1, 2), "z": None}, "b": [1.5, "x"], "a": 1}  # other insertion orders
    assert list(one) != list(other) and O.fingerprint(one) == O.fingerprint(other)
    names = [f"window-{i:02d}" for i in range(40)]
    assert O.fingerprint(set(names)) == O.fingerprint(set(reversed(names))) == O.fingerprint(set(names[::3])
                                                                                             | set(names))
    assert O.fingerprint(np.arange(6.0).reshape(2, 3)) == O.fingerprint(np.arange(6.0).reshape(2, 3).copy(order="F"))
    labels = pd.Series([1.0, 2.0], name="year")
    assert O.fingerprint({"labels": frame(), "features": ["a", "b"], "score": {"x", "y"}, "series": labels}) == \
        O.fingerprint({"series": labels.copy(), "score": {"y", "x"}, "features": ["a", "b"], "labels": frame()})


@pytest.mark.parametrize("changed", [
    frame(year=np.array([1990.0, 2001.5, 1975.0])),  # one cell
    frame(n=np.array([1.0, 2.0, 3.0])),  # a dtype, equal values
    frame(tag=pd.Categorical(["a", "b", "c"])),  # a dtype whose cells hash as the strings do
    frame().rename(columns={"n": "m"}),  # a column's name
    frame()[["n", "year", "tag"]],  # the columns' order
    frame().set_axis([0, 1, 3]),  # the index
    frame().iloc[:2],  # a row fewer
    frame(tag=["a", "b", "C"]),  # a string cell
])
def test_a_changed_frame_has_another_fingerprint(changed):
    assert O.fingerprint(changed) != O.fingerprint(frame())


def test_a_changed_value_has_another_fingerprint():
    names = {f"window-{i:02d}" for i in range(40)}
    base = O.fingerprint(names)
    assert O.fingerprint(names - {"window-07"}) != base
    assert O.fingerprint(names - {"window-07"} | {"window-7"}) != base
    assert O.fingerprint({"a": 1, "b": 2}) != O.fingerprint({"a": 1, "b": 3}) != O.fingerprint({"a": 1, "c": 2})
    assert O.fingerprint({"a": {"x": [1, 2]}}) != O.fingerprint({"a": {"x": [2, 1]}})  # nested, ordered
    assert len({O.fingerprint(v) for v in (1, 1.0, True, "1", (1,), [1], None, b"1")}) == 8  # types count
    assert O.fingerprint(np.zeros(4)) != O.fingerprint(np.zeros((2, 2))) != O.fingerprint(np.zeros(4, dtype="f4"))
    assert O.fingerprint(pd.Series([1.0], name="a")) != O.fingerprint(pd.Series([1.0], name="b"))
    assert O.fingerprint(pd.Series([1.0, 2.0])) != O.fingerprint(pd.Series([1.0, 2.5]))


def test_an_object_array_is_fingerprinted_by_its_contents():
    cells = np.empty(2, dtype=object)
    cells[:] = [["a"], ["b"]]
    before = O.fingerprint(cells)
    cells[0].append("changed")
    assert O.fingerprint(cells) != before


FINGERPRINTS_ELSEWHERE = """
import json, sys
from monitor_utils.local import caches as O
names = {f"window-{i:02d}" for i in range(40)}
value = {"features": ["b", "a"], "score": names, "n": 3, "opts": {"alpha": 0.01, "tests": ("ks", "psi")}}
print(json.dumps({"set": O.fingerprint(names), "dict": O.fingerprint(value), "order": list(names),
                  "package": O.package_digest()}))
"""


def test_fingerprints_and_the_package_digest_are_the_same_in_every_process():
    import json
    import subprocess
    import sys

    names = {f"window-{i:02d}" for i in range(40)}
    value = {"n": 3, "opts": {"tests": ("ks", "psi"), "alpha": 0.01}, "score": set(sorted(names)),
             "features": ["b", "a"]}
    procs = [subprocess.Popen([sys.executable, "-c", FINGERPRINTS_ELSEWHERE], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]  # side by side
    seen = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert len({tuple(s["order"]) for s in seen}) > 1  # the processes really iterate the set in other orders
    for s in seen:
        assert (s["set"], s["dict"], s["package"]) == (O.fingerprint(names), O.fingerprint(value), O.package_digest())


def test_the_package_digest_is_stable_and_follows_the_source(monkeypatch):
    first = O.package_digest()
    assert O.package_digest() == first and len(first) == 64
    monkeypatch.delitem(O._code_digests, "package")
    assert O.package_digest() == first  # computed again from the same files: the same digest
    monkeypatch.delitem(O._code_digests, "package")
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: real(p) + (b"# edited\n" if p.name == "windows.py" else b""))
    assert O.package_digest() != first  # one module's source changed: another digest

"""Tests for what keeps a window's memory near its bytes: bounded read-ahead, frames built without extra copies."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from monitor_utils import capture as C, data as D, reader as R, windows as W

UTC = dt.timezone.utc
HOUR = dt.datetime(2026, 11, 28, 10, tzinfo=UTC)
WINDOW = W.Window(HOUR, HOUR + dt.timedelta(hours=1))
KEY = "p/datacapture/ep/AllTraffic/2026/11/28/10/00-00-000-x.jsonl"
X = D.generate(30, seed=8)[D.FEATURES].to_numpy(dtype=float)


def body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def test_ahead_holds_at_most_limit_results_in_order():
    made, taken, most = [], [], [0]
    lock = threading.Lock()

    def fn(i: int) -> int:
        with lock:
            made.append(i)
            most[0] = max(most[0], len(made) - len(taken))
        return i * i

    with ThreadPoolExecutor(8) as pool:
        for value in C.ahead(pool, fn, range(50), 3):
            with lock:
                taken.append(value)
    assert taken == [i * i for i in range(50)]
    assert most[0] <= 4  # the limit fetched ahead plus the one being handed over; pool.map would reach 50


def test_frame_released_equals_frame_kept_and_lets_the_blocks_go():
    lines = [C.capture_line(X[i], 1990.0 + i, f"ev-{i}", f"inf-{i}" if i % 2 else None,
                            W.iso(HOUR + dt.timedelta(minutes=59 - 2 * i)), "csv") for i in range(30)]
    lines.append(C.capture_line(X[:3], [1.0, 2.0, 3.0], "multi", "m", W.iso(HOUR), "json_instances"))
    parsed = R.parse_object(KEY, body(lines), WINDOW, D.FEATURES, 0)
    kept = parsed.frame(D.FEATURES)
    released = parsed.frame(D.FEATURES, release=True)
    pd.testing.assert_frame_equal(released, kept)
    assert parsed.blocks == [] and len(released) == 33
    assert released["inference_time"].is_monotonic_increasing  # written in reverse time order: sorted on the way
    assert list(released["record_index"][released["event_id"] == "multi"]) == [0, 1, 2]
    values = released[D.FEATURES]._mgr.blocks  # the features are one block, held without a second copy
    assert len(values) == 1 and values[0].values.shape == (len(D.FEATURES), 33)


def test_an_impossible_date_in_the_plain_form_is_read_as_the_per_line_pass_reads_it():
    good = C.capture_line(X[0], 1990.0, "ev-0", "inf-0", W.iso(HOUR), "csv")
    bad = good.replace("2026-11-28T10:00:00Z", "2026-02-30T10:00:00Z").replace("ev-0", "ev-1")
    lines = [good, bad, C.capture_line(X[2], 1992.0, "ev-2", None, W.iso(HOUR + dt.timedelta(minutes=5)), "csv")]
    fast = R.parse_object(KEY, body(lines), WINDOW, D.FEATURES, 0)
    slow = R.parse_lines(KEY, R.split_lines(body(lines)), WINDOW, D.FEATURES, 0)
    pd.testing.assert_frame_equal(fast.frame(D.FEATURES), slow.frame(D.FEATURES))
    assert fast.quarantined == slow.quarantined and len(fast.quarantined) == 1
    assert "2026-02-30" in fast.quarantined[0]["reason"] and fast.quarantined[0]["line"] == 2
    np.testing.assert_array_equal(fast.frame(D.FEATURES)[D.FEATURES].to_numpy(), X[[0, 2]])

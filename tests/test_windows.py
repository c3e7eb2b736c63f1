"""Tests for monitor_utils.windows: bounds, labels, partitions."""

from __future__ import annotations

import datetime as dt

import pytest

from monitor_utils import windows as W
from monitor_utils.windows import Window

UTC = dt.timezone.utc
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def t(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("when, window, expected", [
    (t(2026, 11, 28, 13, 45, 10, 5), "daily", t(2026, 11, 28)),
    (t(2026, 11, 28, 13, 45, 10, 5), "hourly", t(2026, 11, 28, 13)),
    (t(2026, 11, 28), "daily", t(2026, 11, 28)),
    (t(2026, 11, 28, 13), "hourly", t(2026, 11, 28, 13)),
    (t(2026, 11, 28, 23, 59, 59, 999999), "daily", t(2026, 11, 28)),
])
def test_floor(when, window, expected):
    assert W.floor(when, window) == expected


def test_floor_converts_to_utc_first():
    # 01:30 at UTC+2 is 23:30 UTC the day before
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert W.floor(dt.datetime(2026, 11, 28, 1, 30, tzinfo=plus2), "daily") == t(2026, 11, 27)
    assert W.floor(dt.datetime(2026, 11, 28, 1, 30, tzinfo=plus2), "hourly") == t(2026, 11, 27, 23)


def test_floor_unknown_window():
    with pytest.raises(ValueError, match="hourly, daily"):
        W.floor(t(2026, 1, 1), "weekly")


def test_window_labels_and_from_label_round_trip():
    for start in [t(2026, 1, 1), t(2026, 2, 28), t(2024, 2, 29), t(2026, 12, 31)]:
        w = Window(start, start + D)
        assert w.label == start.strftime("%Y-%m-%d")
        assert W.from_label(w.label, "daily") == w
    for start in [t(2026, 11, 1, 0), t(2026, 11, 1, 13), t(2026, 12, 31, 23)]:
        w = Window(start, start + H)
        assert w.label == start.strftime("%Y-%m-%dT%H")
        assert W.from_label(w.label, "hourly") == w


def test_labels_concrete():
    assert Window(t(2026, 11, 1), t(2026, 11, 2)).label == "2026-11-01"
    assert Window(t(2026, 11, 1, 13), t(2026, 11, 1, 14)).label == "2026-11-01T13"
    assert W.from_label("2026-11-01T13", "hourly") == Window(t(2026, 11, 1, 13), t(2026, 11, 1, 14))


def test_from_label_rejects_wrong_format():
    with pytest.raises(ValueError):
        W.from_label("2026-11-01T13", "daily")
    with pytest.raises(ValueError):
        W.from_label("2026-11-01", "hourly")


def test_windows_between_daily():
    ws = W.windows_between(t(2026, 11, 1, 6), t(2026, 11, 5, 12), "daily")
    # the first whole day starts at the boundary after 06:00; the partial last day is left out
    assert [w.label for w in ws] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert all(w.end - w.start == D for w in ws)
    assert all(a.end == b.start for a, b in zip(ws, ws[1:]))


def test_windows_between_on_boundaries_is_inclusive_start_exclusive_end():
    ws = W.windows_between(t(2026, 11, 1), t(2026, 11, 4), "daily")
    assert [w.label for w in ws] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert W.windows_between(t(2026, 11, 1), t(2026, 11, 1, 23), "daily") == []
    assert W.windows_between(t(2026, 11, 2), t(2026, 11, 1), "daily") == []


def test_windows_between_hourly():
    ws = W.windows_between(t(2026, 11, 28, 22, 15), t(2026, 11, 29, 2, 0), "hourly")
    assert [w.label for w in ws] == ["2026-11-28T23", "2026-11-29T00", "2026-11-29T01"]
    for w in ws:
        assert W.from_label(w.label, "hourly") == w


def test_windows_between_count_over_a_month():
    ws = W.windows_between(t(2026, 11, 1), t(2026, 12, 1), "hourly")
    assert len(ws) == 30 * 24
    assert len(set(w.label for w in ws)) == len(ws)


def test_containing():
    when = t(2026, 11, 28, 13, 45)
    assert W.containing(when, "daily") == Window(t(2026, 11, 28), t(2026, 11, 29))
    assert W.containing(when, "hourly") == Window(t(2026, 11, 28, 13), t(2026, 11, 28, 14))
    w = W.containing(t(2026, 11, 28, 14), "hourly")
    assert w.start == t(2026, 11, 28, 14)  # a boundary belongs to the window it starts
    for window in ("daily", "hourly"):
        w = W.containing(when, window)
        assert w.start <= when < w.end


def test_window_hours():
    assert Window(t(2026, 11, 28), t(2026, 11, 29)).hours() == [t(2026, 11, 28, h) for h in range(24)]
    assert Window(t(2026, 11, 28, 5, 30), t(2026, 11, 28, 7)).hours() == [t(2026, 11, 28, 5), t(2026, 11, 28, 6)]


def test_partition_prefix():
    assert W.partition_prefix("cap/ep/AllTraffic", t(2026, 1, 2, 3, 4)) == "cap/ep/AllTraffic/2026/01/02/03/"
    assert W.partition_prefix("cap/ep/AllTraffic/", t(2026, 11, 28, 23)) == "cap/ep/AllTraffic/2026/11/28/23/"


def test_partition_prefixes_sort_chronologically():
    times = [t(2026, 1, 1) + k * 7 * H for k in range(400)]
    prefixes = [W.partition_prefix("b", x) for x in times]
    assert prefixes == sorted(prefixes)


def test_iso():
    assert W.iso(t(2026, 11, 28, 13, 5, 9, 123456)) == "2026-11-28T13:05:09Z"
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert W.iso(dt.datetime(2026, 11, 28, 1, 0, tzinfo=plus2)) == "2026-11-27T23:00:00Z"


def test_windows_order():
    a, b = Window(t(2026, 1, 1), t(2026, 1, 2)), Window(t(2026, 1, 2), t(2026, 1, 3))
    assert sorted([b, a]) == [a, b]

"""The run's index page: a verdict block first, a picture per stage series, headline counts as integers."""

from __future__ import annotations

import json
import struct
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pytest

from monitor_utils import plots, records, runner

ROOT = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """What a reader of index.html meets: body elements in order, the verdict block's items, images, table rows."""

    def __init__(self, text: str):
        super().__init__()
        self.body_children: list[tuple[str, dict]] = []  # direct children of <body>, in order
        self.verdict_items: list[str] = []
        self.verdict_text = ""
        self.verdict_class = None
        self.images: list[dict] = []
        self.rows: dict[str, str] = {}  # row id -> its text
        self._depth = 0
        self._body_depth = None
        self._in_verdict = 0
        self._li: list[str] | None = None
        self._row: tuple[str, list[str]] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        void = tag in ("img", "meta", "br", "link", "input", "hr")
        if tag == "body":
            self._body_depth = self._depth + 1
        elif self._body_depth is not None and self._depth == self._body_depth:
            self.body_children.append((tag, attrs))
        if tag == "section" and attrs.get("id") == "verdict":
            self._in_verdict = self._depth + 1
            self.verdict_class = attrs.get("class")
        if self._in_verdict and tag == "li":
            self._li = []
        if tag == "tr" and attrs.get("id"):
            self._row = (attrs["id"], [])
        if tag == "img":
            self.images.append(attrs)
        if not void:
            self._depth += 1

    def handle_endtag(self, tag):
        self._depth -= 1
        if tag == "li" and self._li is not None:
            self.verdict_items.append("".join(self._li).strip())
            self._li = None
        if tag == "section" and self._in_verdict and self._depth + 1 == self._in_verdict:
            self._in_verdict = 0
        if tag == "tr" and self._row:
            self.rows[self._row[0]] = " ".join("".join(self._row[1]).split())
            self._row = None

    def handle_data(self, data):
        if self._in_verdict:
            self.verdict_text += data
            if self._li is not None:
                self._li.append(data)
        if self._row:
            self._row[1].append(data + " ")


def series(values, threshold=None, label="RMSE (years)"):
    return {"label": label, "windows": [f"2026-11-{d:02d}" for d in range(1, len(values) + 1)], "values": values,
            "threshold": threshold}


def entry(run_dir: Path, stage: str, status: str = "ok", headline: dict | None = None, **record) -> dict:
    """A summary entry as the runner makes it from a stage record (with the stage's report file present)."""
    (run_dir / f"{stage}.html").write_text("<html></html>")
    e = {"stage": stage, "status": status, "duration_s": 1.5, "headline": headline or {}}
    if status == "ok":
        e.update(records.stage_summary(run_dir, stage, record))
    return e


def summary_of(stages: list[dict], status: str = "ok", **extra) -> dict:
    return {"run_id": "20261128T000000Z-abcd", "status": status, "aws_mode": "local", "started": "2026-11-28T00:00:00+00:00",
            "duration_s": 12.0, "stages": stages, **extra}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_verdict_block_comes_first_and_lists_attention_then_failures(tmp_path):
    stages = [
        entry(tmp_path, "00_setup", verdict={"text": "Baseline v0001 in place.", "attention": False}),
        entry(tmp_path, "10_metrics", verdict={"text": "RMSE 9.4 years on 2026-11-27 is over the 9.0 alarm.", "attention": True},
              series=series([6.1, 7.0, 9.4], threshold=9.0)),
        entry(tmp_path, "20_drift", verdict={"text": "26 features drifted; timbre_avg_01 leads.", "attention": True}),
        {"stage": "30_alerting", "status": "failed", "duration_s": 0.4, "error": "RuntimeError: topic unreachable"},
        {"stage": "40_dashboard", "status": "skipped", "duration_s": 0.0},
    ]
    page = Page(records.write_index(tmp_path, summary_of(stages, status="failed")).read_text())

    assert [t for t, _ in page.body_children[:2]] == ["h1", "section"]
    assert page.body_children[1][1].get("id") == "verdict" and page.verdict_class == "attention"
    assert page.verdict_items == ["10_metrics: RMSE 9.4 years on 2026-11-27 is over the 9.0 alarm.",
                                  "20_drift: 26 features drifted; timbre_avg_01 leads.",
                                  "30_alerting: failed: RuntimeError: topic unreachable"]
    assert "Baseline v0001" not in page.verdict_text  # a calm verdict is not news
    assert "Nothing else needs attention (00_setup)" in page.verdict_text
    assert "Not run because an earlier stage failed: 40_dashboard" in page.verdict_text
    assert "All clear" not in page.verdict_text
    assert "Baseline v0001 in place." in page.rows["stage-00_setup"]  # every verdict is in its row


def test_all_clear_only_when_every_stage_ran_and_gave_a_calm_verdict(tmp_path):
    calm = [entry(tmp_path, s, verdict={"text": f"{s} is fine.", "attention": False}) for s in runner.STAGES]
    page = Page(records.write_index(tmp_path, summary_of(calm)).read_text())
    assert page.verdict_items == [] and page.verdict_class == "clear"
    assert "All clear: 6 stages ran and none reports anything that needs attention." in page.verdict_text

    silent = calm[:4] + [entry(tmp_path, s) for s in runner.STAGES[4:]]  # two stages give no verdict (today's notebooks)
    page = Page(records.write_index(tmp_path, summary_of(silent)).read_text())
    assert page.verdict_class == "unverified" and "All clear" not in page.verdict_text
    assert "2 of the 6 stages that ran give no verdict (40_dashboard, 50_retraining)" in page.verdict_text

    none = [entry(tmp_path, s) for s in runner.STAGES]
    page = Page(records.write_index(tmp_path, summary_of(none)).read_text())
    assert page.verdict_class == "unverified" and page.verdict_items == []
    assert "None of the 6 stages that ran gives a verdict (00_setup, " in page.verdict_text


def test_a_run_that_failed_before_the_stages_says_so(tmp_path):
    page = Page(records.write_index(tmp_path, summary_of([], status="failed", error="OSError: emulator did not start")).read_text())
    assert page.verdict_items == ["run: stopped before the stages finished: OSError: emulator did not start"]


def test_each_series_is_a_picture_that_exists_and_a_stage_without_one_says_so(tmp_path):
    stages = [
        entry(tmp_path, "10_metrics", series=series([6.2, None, 6.8, 7.1], threshold=9.0)),
        entry(tmp_path, "20_drift", series=series([0, 3, 26], label="drifted features")),
        entry(tmp_path, "30_alerting", series=None),
        entry(tmp_path, "40_dashboard", series=series([None, None], label="widgets")),
    ]
    page = Page(records.write_index(tmp_path, summary_of(stages)).read_text())

    assert [i["src"] for i in page.images] == ["10_metrics.spark.png", "20_drift.spark.png"]
    for img in page.images:
        assert png_size(tmp_path / img["src"]) == (480, 96)  # 240x48 shown, drawn at twice the density
        assert img["width"] == "240" and img["height"] == "48" and img["alt"]
    assert page.images[0]["alt"] == ("RMSE (years) over 4 windows, 2026-11-01 to 2026-11-04; latest 7.1; "
                                     "threshold 9 (dashed)")
    assert "latest 26 (2026-11-03)" in page.rows["stage-20_drift"]
    assert "no series" in page.rows["stage-30_alerting"]
    assert "widgets: no value yet" in page.rows["stage-40_dashboard"]
    assert not (tmp_path / "30_alerting.spark.png").exists() and not (tmp_path / "40_dashboard.spark.png").exists()


def test_a_sparkline_named_but_missing_is_not_a_broken_image(tmp_path):
    s = entry(tmp_path, "10_metrics", series=series([1.0, 2.0]))
    (tmp_path / s["sparkline"]).unlink()
    page = Page(records.write_index(tmp_path, summary_of([s])).read_text())
    assert page.images == [] and "picture missing" in page.rows["stage-10_metrics"]


def test_headline_counts_show_as_integers(tmp_path):
    headline = json.loads(json.dumps({"quarantined": 2908.0, "windows published": 5, "latest RMSE": 6.76712,
                                      "latest R2": 0.5, "drift": True, "in ALARM": [], "features": ["a", "b"]}))
    page = Page(records.write_index(tmp_path, summary_of([entry(tmp_path, "10_metrics", headline=headline)])).read_text())
    row = page.rows["stage-10_metrics"]
    assert "quarantined: 2908;" in row and "2908.0" not in row
    assert "windows published: 5;" in row and "latest RMSE: 6.767;" in row and "latest R2: 0.5;" in row
    assert "drift: yes;" in row and "in ALARM: none;" in row and "features: a, b" in row


@pytest.mark.parametrize("value, shown", [
    (2908.0, "2908"), (np.float64(2908.0), "2908"), (np.int64(2908), "2908"), (2908, "2908"), (-3.0, "-3"),
    (6.76712, "6.767"), (0.1, "0.1"), (0.00012, "0.00012"), (float("nan"), "n/a"), (None, "none"),
    (np.bool_(False), "no"), (True, "yes"), ([1.0, 2.5], "1, 2.5"), ([], "none"), ("v0001", "v0001"),
])
def test_format_value(value, shown):
    assert records.format_value(value) == shown


def test_stage_summary_reads_the_contract_and_tolerates_its_absence(tmp_path):
    full = records.stage_summary(tmp_path, "10_metrics", {"verdict": {"text": " Fine. ", "attention": 0},
                                                          "series": series([1.0, 2.0], threshold=1.5)})
    assert full["verdict"] == {"text": "Fine.", "attention": False}
    assert full["sparkline"] == "10_metrics.spark.png" and (tmp_path / full["sparkline"]).exists()
    assert full["series"]["threshold"] == 1.5
    assert records.stage_summary(tmp_path, "20_drift", {"history": []}) == {"verdict": None, "series": None,
                                                                            "sparkline": None}
    broken = records.stage_summary(tmp_path, "30_alerting", {"series": series(["not a number"])})
    assert broken["sparkline"] is None and "ValueError" in broken["sparkline_error"]


def test_sparkline_draws_values_with_gaps_and_the_threshold_dashed():
    fig = plots.sparkline(series([6.0, None, 7.0, 8.0], threshold=9.0))
    ax = fig.axes[0]
    assert tuple(fig.get_size_inches() * fig.dpi) == pytest.approx((240, 48))
    line = ax.lines[0]
    assert np.isnan(line.get_ydata()[1]) and list(line.get_ydata()[[0, 2, 3]]) == [6.0, 7.0, 8.0]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [9.0, 9.0]
    low, high = ax.get_ylim()
    assert low < 6.0 and high > 9.0  # the threshold is inside the picture


def _notebook(code: str) -> nbformat.NotebookNode:
    params = nbformat.v4.new_code_cell("run_dir: str = ''")
    params.metadata["tags"] = ["parameters"]
    return nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(code)],
                                    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}})


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def test_runner_takes_headline_verdict_and_series_from_the_stage_json(tmp_path, clean_env):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    typed = {"changes": [1, 2, 3], "headline": {"rows read": 2908.0},
             "verdict": {"text": "Baseline profile rebuilt.", "attention": True},
             "series": series([3.0, 4.0, 5.0], threshold=4.5, label="rows (thousands)")}
    write = "import json, pathlib; pathlib.Path(run_dir, '{stage}.json').write_text(json.dumps({record!r}))"
    nbformat.write(_notebook(write.format(stage="00_setup", record=typed)), nbs / "00_setup.ipynb")
    untyped = {"windows_published": ["2026-11-26", "2026-11-27"], "latest": {"rmse": 6.76712}, "quarantined": 0}
    nbformat.write(_notebook(write.format(stage="10_metrics", record=untyped)), nbs / "10_metrics.ipynb")
    out = tmp_path / "run"
    names = [f"{k}=records-typed" for k in ("bucket", "endpoint_name", "sns_topic_name", "dashboard_name")]
    code, _ = runner.run([str(ROOT / "params" / "local.yaml")],
                         ["days=2", "world.requests_per_day=100", "world.train_rows=2000", "world.test_rows=500",
                          "now=2026-11-28T00:00:00Z", "log_group=/records/typed", *names],
                         stages="setup,metrics", output=str(out), notebooks_dir=nbs, progress=lambda m: None)
    assert code == 0
    by_stage = {s["stage"]: s for s in json.loads((out / "summary.json").read_text())["stages"]}
    setup, metrics = by_stage["00_setup"], by_stage["10_metrics"]
    assert setup["headline"] == {"rows read": 2908.0}  # the stage's own headline
    assert setup["verdict"] == typed["verdict"] and setup["series"] == typed["series"]
    assert setup["sparkline"] == "00_setup.spark.png" and png_size(out / "00_setup.spark.png") == (480, 96)
    assert metrics["headline"] == {}  # a record without a headline gives none (the stages own their headlines)
    assert metrics["verdict"] is None and metrics["sparkline"] is None
    page = Page((out / "index.html").read_text())
    assert page.verdict_items == ["00_setup: Baseline profile rebuilt."]
    assert [i["src"] for i in page.images] == ["00_setup.spark.png"]
    assert "rows read: 2908 " in page.rows["stage-00_setup"] and "2908.0" not in page.rows["stage-00_setup"]

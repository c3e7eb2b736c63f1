"""A run's pages as a reviewer sees them: index.html and two stage reports rendered in headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the Python ``playwright`` package
(``pip install playwright``, part of the dev extras; playwright drives the system browser through
``executable_path`` and downloads nothing). Without them the tests are skipped, saying what to install,
unless ``MONITOR_UTILS_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where a missing browser fails them.
``MONITOR_UTILS_SCREENSHOTS=<folder>`` saves a screenshot of every page opened.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from monitor_utils import records, runner

ROOT = Path(__file__).resolve().parents[1]
REQUIRE = os.environ.get("MONITOR_UTILS_REQUIRE_BROWSER", "") not in ("", "0")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPORTS = ("10_metrics", "20_drift")
SMALL_WORLD = ["days=8", "world.requests_per_day=300", "world.train_rows=4000", "world.test_rows=1000",
               "now=2026-11-28T00:00:00Z", "bucket=browser-run", "endpoint_name=browser-run",
               "sns_topic_name=browser-run", "dashboard_name=browser-run", "log_group=/browser/run"]
NO_VERDICT_YET = "stage reports gain their verdict block in the typed-results change"
pytestmark = pytest.mark.shares_session_fixture("full_run")  # run_dir asks for it at run time

# The first element after the page's <h1> (outside it) that a reader sees: visible, with text of its own or a picture.
FIRST_CONTENT_JS = """() => {
  const h1 = document.querySelector('h1');
  if (!h1) return null;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_ELEMENT);
  let seen = false;
  for (let el = walker.nextNode(); el; el = walker.nextNode()) {
    if (el === h1) { seen = true; continue; }
    if (!seen || h1.contains(el)) continue;
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden' || box.width === 0 || box.height === 0) continue;
    const ownText = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (ownText || ['IMG', 'svg', 'CANVAS'].includes(el.tagName)) {
      return {tag: el.tagName, inVerdict: !!el.closest('.verdict'), inVerdictBlock: !!el.closest('#verdict'), text: el.textContent.trim().slice(0, 160)};
    }
  }
  return null;
}"""
IMAGES_JS = "els => els.map(e => ({src: e.getAttribute('src').slice(0, 60), complete: e.complete, width: e.naturalWidth}))"


def unavailable(reason: str):
    """Skip, saying what to install; fail instead where the browser is required (CI)."""
    if REQUIRE:
        pytest.fail(f"{reason} (MONITOR_UTILS_REQUIRE_BROWSER is set: this test must run here)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Debian's Chromium: ``chromium`` or ``chromium-browser`` on PATH."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by playwright, or a skip that says what to install."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("the playwright Python package is missing: pip install playwright (or pip install -e '.[dev]')")
    exe = chromium_path()
    if not exe:
        unavailable("no Chromium on PATH (looked for chromium and chromium-browser): apt-get install chromium")
    with sync_playwright() as p:
        try:
            instance = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Error as exc:
            unavailable(f"Chromium at {exe} does not start under playwright: {exc}")
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def run_dir(browser, request, tmp_path_factory) -> Path:
    """A finished run's folder: the session's end-to-end run when conftest has one, else a small run of our own."""
    try:
        shared = request.getfixturevalue("full_run")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        return Path(shared[1] if isinstance(shared, tuple) else shared)
    with pytest.MonkeyPatch.context() as mp:  # the runner starts and stops its own emulator
        for name in ("MONITOR_UTILS_LOCAL_ENDPOINT", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        code, folder = runner.run([str(ROOT / "params" / "local.yaml")], SMALL_WORLD,
                                  output=str(tmp_path_factory.mktemp("browser") / "run"), progress=lambda m: None)
    assert code == 0, f"the run failed; see {folder / 'summary.json'}"
    return folder


class Opened:
    """A page loaded in the browser, with the console errors, page errors and non-local requests it produced."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url[:80]} {r.failure}"))
        self.page.on("request", lambda r: self.outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        shots = os.environ.get("MONITOR_UTILS_SCREENSHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(shots) / f"{path.parent.name}-{path.stem}.png"), full_page=True)

    def images(self) -> list[dict]:
        return self.page.eval_on_selector_all("img", IMAGES_JS)

    def check_clean(self) -> None:
        """Every image loaded, nothing went to the console as an error, nothing was fetched from outside."""
        broken = [i for i in self.images() if not (i["complete"] and i["width"] > 0)]
        assert not broken, f"images that did not load: {broken}"
        assert not self.errors, self.errors
        assert not self.outside, f"the page loads resources from outside the run folder: {self.outside}"

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def open_page(browser):
    pages: list[Opened] = []

    def opener(path: Path) -> Opened:
        pages.append(Opened(browser, path))
        return pages[-1]

    yield opener
    for p in pages:
        p.close()


def test_index_opens_with_the_verdict_and_its_pictures_load(run_dir, open_page):
    summary = json.loads((run_dir / "summary.json").read_text())
    index = open_page(run_dir / "index.html")
    block = index.page.locator("#verdict")
    assert block.is_visible()
    said = block.inner_text().strip()
    assert said, "the verdict block is empty"
    assert index.page.evaluate("() => document.querySelector('h1').nextElementSibling.id") == "verdict"
    first = index.page.evaluate(FIRST_CONTENT_JS)
    assert first and first["inVerdictBlock"], f"the first thing after the title is not the verdict: {first}"
    flagged = [s for s in summary["stages"] if (s.get("verdict") or {}).get("attention")]
    for s in flagged:
        assert f"{s['stage']}: {s['verdict']['text']}" in said
    if not flagged:
        assert "Nothing flagged" in said or "All clear" in said
    pictures = [s["sparkline"] for s in summary["stages"] if s.get("sparkline")]
    assert [i["src"] for i in index.images()] == pictures
    index.check_clean()


@pytest.mark.parametrize("stage", REPORTS)
def test_stage_report_renders_cleanly(run_dir, open_page, stage):
    report = open_page(run_dir / f"{stage}.html")
    assert report.page.locator("h1").first.is_visible()
    assert report.images(), f"{stage}.html shows no figure"
    report.check_clean()


@pytest.mark.parametrize("stage", REPORTS)
def test_stage_report_opens_with_its_verdict(run_dir, open_page, stage):
    record = json.loads((run_dir / f"{stage}.json").read_text())
    report = open_page(run_dir / f"{stage}.html")
    first = report.page.evaluate(FIRST_CONTENT_JS)
    if not (first and first["inVerdict"]) and "verdict" not in record:
        pytest.xfail(NO_VERDICT_YET)
    assert first and first["inVerdict"], f"{stage}.html: the first thing after the title is not .verdict: {first}"
    assert report.page.locator(".verdict").first.inner_text().strip()


def test_index_of_a_run_with_attention_failure_and_pictures(tmp_path, open_page):
    """The index's own parts (pictures, all verdict kinds) in the browser, independent of what today's stages give."""
    def series(values, threshold=None):
        return {"label": "RMSE (years)", "windows": [f"2026-11-{d:02d}" for d in range(1, len(values) + 1)],
                "values": values, "threshold": threshold}

    stages = []
    for stage, record in (("10_metrics", {"verdict": {"text": "RMSE over the alarm.", "attention": True},
                                          "series": series([6.0, None, 9.5], threshold=9.0)}),
                          ("20_drift", {"verdict": {"text": "No drift.", "attention": False}, "series": series([0, 1, 0])}),
                          ("30_alerting", {"series": None})):
        stages.append({"stage": stage, "status": "ok", "duration_s": 1.0, "headline": {"rows": 2908.0},
                       **records.stage_summary(tmp_path, stage, record)})
    stages.append({"stage": "40_dashboard", "status": "failed", "duration_s": 0.2, "error": "RuntimeError: put failed"})
    summary = {"run_id": "browser-check", "status": "failed", "aws_mode": "local", "started": "2026-11-28T00:00:00+00:00",
               "duration_s": 3.2, "stages": stages}
    index = open_page(records.write_index(tmp_path, summary))
    said = index.page.locator("#verdict").inner_text()
    assert said.index("10_metrics: RMSE over the alarm.") < said.index("40_dashboard: failed: RuntimeError: put failed")
    images = index.images()
    assert [i["src"] for i in images] == ["10_metrics.spark.png", "20_drift.spark.png"]
    assert all(i["width"] == 480 for i in images)
    assert index.page.locator("img.spark").first.evaluate("e => [e.clientWidth, e.clientHeight]") == [240, 48]
    index.check_clean()

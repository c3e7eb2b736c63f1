"""Run records: stage JSON, HTML reports with code hidden, summary.json and the index page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def to_jsonable(obj: Any) -> Any:
    """Convert results (DataFrames, numpy scalars, datetimes, dataclasses) into plain JSON values; NaN -> None."""
    if isinstance(obj, pd.DataFrame):
        return [to_jsonable(r) for r in obj.reset_index().to_dict(orient="records")] if not isinstance(
            obj.index, pd.RangeIndex) else [to_jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (dt.datetime, dt.date, pd.Timestamp)):
        return obj.isoformat()
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (atomically: a partial file never replaces a good one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=False))
    tmp.replace(path)
    return path


_REPORT_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block html_head_js_mathjax %}{% endblock %}
"""


def export_html(notebook_path: Path, html_path: Path) -> Path:
    """Render an executed notebook as an HTML report with code cells hidden (nbconvert's own option).

    The report is self-contained: nbconvert's lab template without the require.js and MathJax scripts it
    would load from a CDN (the reports use neither), so it opens offline with no failed requests.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook_path), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"monitor_report.html.j2": _REPORT_TEMPLATE})],
                            template_file="monitor_report.html.j2")
    body, _ = exporter.from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def format_value(value: Any) -> str:
    """A headline value as a reviewer reads it: counts as integers, fractions to 3 decimals, yes/no, lists joined.

    Parameters
    ----------
    value : Any
        A JSON value of a stage headline (or a numpy scalar).

    Returns
    -------
    str
        ``2908`` for 2908, 2908.0 or numpy 2908; ``6.767`` for 6.76712; ``yes``/``no`` for booleans;
        ``none`` for None or an empty list; list items joined by commas; ``n/a`` for NaN or infinity.
    """
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return "n/a"
        if v.is_integer():
            return str(int(v))
        if abs(v) < 0.001:
            return f"{v:.2g}"
        return f"{v:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_value(v)}" for k, v in value.items()) or "none"
    return str(value)


def sparkline_name(stage: str) -> str:
    """File name of a stage's sparkline in the run folder: ``NN_stage.spark.png``."""
    return f"{stage}.spark.png"


def _has_values(series: dict | None) -> bool:
    return bool(series) and any(v is not None and math.isfinite(float(v)) for v in series.get("values") or [])


def write_sparkline(run_dir: Path, stage: str, series: dict | None) -> str | None:
    """Draw a stage's ``series`` as ``NN_stage.spark.png`` in the run folder.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    stage : str
        Stage id, e.g. ``10_metrics``.
    series : dict | None
        The stage record's ``series`` (label, windows, values, threshold).

    Returns
    -------
    str | None
        The file name (relative to ``run_dir``), or None when there is no series or it has no value yet
        (then no file is written and the index shows a short text).
    """
    if not _has_values(series):
        return None
    from .plots import sparkline

    fig = sparkline(series)
    name = sparkline_name(stage)
    fig.savefig(run_dir / name, format="png", dpi=fig.dpi * 2, transparent=False, facecolor="white")
    return name


def _verdict_of(record: dict) -> dict | None:
    raw = record.get("verdict")
    if isinstance(raw, str) and raw.strip():
        return {"text": raw.strip(), "attention": False}
    if isinstance(raw, dict) and str(raw.get("text") or "").strip():
        return {"text": str(raw["text"]).strip(), "attention": bool(raw.get("attention"))}
    return None


def stage_summary(run_dir: Path, stage: str, record: dict) -> dict:
    """The verdict, series and sparkline of a stage record, as the run summary keeps them.

    Parameters
    ----------
    run_dir : Path
        The run folder (the sparkline is written there).
    stage : str
        Stage id.
    record : dict
        The stage JSON (``NN_stage.json``), with ``verdict`` and ``series`` when the stage gives them.

    Returns
    -------
    dict
        ``verdict`` ({text, attention} or None), ``series`` (the record's, or None) and ``sparkline`` (file
        name or None); ``sparkline_error`` when drawing failed (the run goes on).
    """
    series = record.get("series") if isinstance(record.get("series"), dict) else None
    out: dict[str, Any] = {"verdict": _verdict_of(record), "series": series, "sparkline": None}
    try:
        out["sparkline"] = write_sparkline(run_dir, stage, series)
    except Exception as exc:  # noqa: BLE001 - a picture must not fail the run; the index says it is missing
        out["sparkline_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _e(text: Any) -> str:
    return html.escape(str(text))


def _stage_link(run_dir: Path, name: str) -> str:
    report = f"{name}.html"
    return f'<a href="{_e(report)}"><b>{_e(name)}</b></a>' if (run_dir / report).exists() else f"<b>{_e(name)}</b>"


def verdict_items(summary: dict) -> dict:
    """What the index's verdict block says, as plain text.

    Parameters
    ----------
    summary : dict
        The run summary (``stages`` entries with ``status``, ``verdict``, ``error``).

    Returns
    -------
    dict
        ``items``: what needs attention, as ``(stage, text)`` in this order: the verdicts with ``attention``
        (pipeline order), then failed stages (``"failed: <error>"``), then a run-level error (stage ``"run"``);
        ``note``: the closing sentences (the all-clear when there is no item and every stage that ran gave a
        verdict; otherwise which stages report nothing to act on, which gave no verdict, which were not run);
        ``state``: ``"attention"`` when there are items, ``"unverified"`` when there are none but some stage
        gave no verdict, else ``"clear"``.
    """
    stages = summary.get("stages", [])
    items = [(s["stage"], s["verdict"]["text"]) for s in stages
             if s.get("status") == "ok" and (s.get("verdict") or {}).get("attention")]
    items += [(s["stage"], f"failed: {s.get('error') or 'no error message'}") for s in stages if s.get("status") == "failed"]
    if summary.get("error"):
        items.append(("run", f"stopped before the stages finished: {summary['error']}"))
    if summary.get("status") == "failed" and not items:
        items.append(("run", "failed without naming a stage; see summary.json"))
    calm = [s["stage"] for s in stages if s.get("status") == "ok" and s.get("verdict")
            and not s["verdict"].get("attention")]
    silent = [s["stage"] for s in stages if s.get("status") == "ok" and not s.get("verdict")]
    skipped = [s["stage"] for s in stages if s.get("status") == "skipped"]
    ran = len(calm) + len(silent)
    notes = []
    if items:
        if calm:
            notes.append(f"Nothing else needs attention ({', '.join(calm)}).")
        if silent:
            notes.append(f"No verdict from {', '.join(silent)}: read {'their headlines' if len(silent) > 1 else 'its headline'} below.")
    elif silent:
        which = (f"none of the {ran} stages that ran gives a verdict" if len(silent) == ran > 1
                 else f"{len(silent)} of the {ran} stage{'s' * (ran != 1)} that ran give{'s' * (len(silent) == 1)} no verdict")
        notes.append(f"{which[0].upper()}{which[1:]} ({', '.join(silent)}): "
                     f"read {'their headlines' if len(silent) > 1 else 'its headline'} below.")
    else:
        notes.append(f"All clear: {ran} stage{'s' * (ran != 1)} ran and none reports anything that needs attention.")
    if skipped:
        notes.append(f"Not run because an earlier stage failed: {', '.join(skipped)}.")
    state = "attention" if items else "unverified" if silent else "clear"
    return {"items": items, "note": " ".join(notes), "state": state}


def _series_caption(series: dict) -> tuple[str, str]:
    """(alt text, visible caption) of a stage's series."""
    windows = list(series.get("windows") or [])
    values = list(series.get("values") or [])
    latest = next(((w, v) for w, v in zip(reversed(windows), reversed(values)) if v is not None), None)
    label = str(series.get("label") or "value")
    threshold = series.get("threshold")
    caption = label + (f" · latest {format_value(latest[1])} ({latest[0]})" if latest else "")
    caption += f" · threshold {format_value(threshold)}" if threshold is not None else ""
    span = f"{windows[0]} to {windows[-1]}" if windows else "no window"
    alt = (f"{label} over {len(windows)} windows, {span}"
           + (f"; latest {format_value(latest[1])}" if latest else "")
           + (f"; threshold {format_value(threshold)} (dashed)" if threshold is not None else ""))
    return alt, caption


def _picture_cell(run_dir: Path, s: dict) -> str:
    series = s.get("series")
    name = s.get("sparkline")
    if name and (run_dir / name).exists():
        alt, caption = _series_caption(series or {})
        return (f'<img class="spark" src="{_e(name)}" width="240" height="48" alt="{_e(alt)}">'
                f'<div class="cap">{_e(caption)}</div>')
    if s.get("sparkline_error"):
        return f'<span class="muted">picture not drawn: {_e(s["sparkline_error"])}</span>'
    if name:
        return '<span class="muted">picture missing</span>'
    if series:
        return f'<span class="muted">{_e(series.get("label") or "series")}: no value yet</span>'
    return '<span class="muted">no series</span>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em 2em;color:#1f2328;line-height:1.4;max-width:82em}
h1{font-size:1.5em;margin:0 0 .6em}
h2{font-size:1.1em;margin:0 0 .4em}
#verdict{border-left:6px solid #1a7f37;background:#f0fff4;padding:.8em 1.1em;margin:0 0 1.2em;font-size:1.05em}
#verdict.attention{border-color:#cf222e;background:#fff5f5}
#verdict.unverified{border-color:#9a6700;background:#fff8e5}
#verdict ul{margin:.2em 0 .5em;padding-left:1.2em}
#verdict li{margin:.25em 0}
#verdict p{margin:.3em 0}
.meta{color:#57606a;font-size:.9em}
table{border-collapse:collapse;margin-top:.6em}
td,th{border:1px solid #d0d7de;padding:.45em .7em;vertical-align:top;text-align:left}
th{background:#f6f8fa}
.status-ok{color:#1a7f37}.status-failed{color:#cf222e}.status-skipped{color:#6e7781}
.spark{display:block;border:1px solid #eaeef2;background:#fff}
.cap{font-size:.8em;color:#57606a;max-width:240px}
.muted{color:#6e7781;font-style:italic}
.v{margin:.35em 0 0}.v.flag{color:#a40e26;font-weight:600}
.err{color:#cf222e;white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.85em;margin:.3em 0 0}
td.num{text-align:right;white-space:nowrap}
td.links{white-space:nowrap}
"""


def write_index(run_dir: Path, summary: dict) -> Path:
    """Write ``index.html``: a verdict block first, then a table of the stages with a picture of each one's series.

    Parameters
    ----------
    run_dir : Path
        The run folder; stage reports, notebooks, JSON and sparklines are linked when they exist there.
    summary : dict
        The run summary (``run_id``, ``status``, ``started``, ``duration_s``, ``stages``); each stage entry may
        carry ``headline``, ``verdict``, ``series``, ``sparkline`` and ``error``.

    Returns
    -------
    Path
        The page written. It is plain HTML and CSS with no script and no external resource.
    """
    said = verdict_items(summary)
    lis = "".join(f"<li>{_stage_link(run_dir, who) if who != 'run' else '<b>run</b>'}: {_e(text)}</li>"
                  for who, text in said["items"])
    heading = {"attention": "Needs attention now", "unverified": "Nothing flagged",
               "clear": "Nothing needs attention"}[said["state"]]
    verdict = (f'<section id="verdict" class="{said["state"]}"><h2>{heading}</h2>'
               + (f"<ul>{lis}</ul>" if lis else "") + f"<p>{_e(said['note'])}</p></section>")
    rows = []
    for s in summary["stages"]:
        name = s["stage"]
        status = s.get("status", "")
        links = " · ".join(f'<a href="{_e(f)}">{label}</a>' for label, f in
                           (("report", f"{name}.html"), ("notebook", f"{name}.ipynb"), ("json", f"{name}.json"))
                           if (run_dir / f).exists())
        head = "; ".join(f"{_e(k)}: {_e(format_value(v))}" for k, v in (s.get("headline") or {}).items())
        v = s.get("verdict")
        says = f"<p class='v{' flag' if v.get('attention') else ''}'>{_e(v['text'])}</p>" if v else ""
        err = f"<div class='err'>{_e(s['error'])}</div>" if s.get("error") else ""
        err += f"<div class='err'>report not rendered: {_e(s['html_error'])}</div>" if s.get("html_error") else ""
        rows.append(f"<tr id='stage-{_e(name)}'><td>{_stage_link(run_dir, name)}</td>"
                    f"<td class='status-{_e(status)}'><b>{_e(status)}</b></td>"
                    f"<td>{_picture_cell(run_dir, s)}</td><td>{head or ('<span class=muted>none</span>' if status == 'ok' else '')}{says}{err}</td>"
                    f"<td class='num'>{float(s.get('duration_s') or 0):.1f} s</td><td class='links'>{links}</td></tr>")
    run_id = _e(summary["run_id"])
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Monitoring run {run_id}</title><style>{_CSS}</style></head><body>
<h1>Monitoring run {run_id}</h1>
{verdict}
<p class="meta">Status <b>{_e(summary.get('status', ''))}</b> · mode {_e(summary.get('aws_mode', ''))} ·
started {_e(summary.get('started', ''))} · {float(summary.get('duration_s') or 0):.1f} s</p>
<table><tr><th>stage</th><th>status</th><th>over the windows</th><th>headline and verdict</th><th>time</th><th>records</th></tr>
{''.join(rows)}</table>
<p><a href="summary.json">summary.json</a></p>
</body></html>
"""
    path = run_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


# --- run records in S3 (run --output s3://...) ----------------------------------------------------

RECORDS_URI_ENV = "MONITOR_UTILS_RECORDS_URI"  # set by the runner for its stages when records go to S3
LATEST = "latest/index.html"
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".png": "image/png",
                  ".ipynb": "application/x-ipynb+json"}


def latest_index_uri() -> str:
    """Where the newest run's index is when this run's records go to S3 (``<records>/latest/index.html``), else ''.

    Alarm descriptions name it, so a page says where the reports are without changing every run."""
    base = os.environ.get(RECORDS_URI_ENV, "")
    return base.rstrip("/") + "/" + LATEST if base else ""


def upload_run(aws, run_dir: Path, records_uri: str, run_id: str) -> list[str]:
    """Upload every file of ``run_dir`` to ``<records_uri>/<run_id>/``, then ``<records_uri>/latest/index.html``: the
    run's index with its links pointing into ``../<run_id>/`` (written last, so it never names a run not yet there).

    Returns
    -------
    list[str]
        The S3 URIs written, ``latest/index.html`` last.
    """
    from .aws import put_bytes, split_s3_uri

    bucket, prefix = split_s3_uri(records_uri.rstrip("/") + "/")
    written = []
    for path in sorted(p for p in Path(run_dir).rglob("*") if p.is_file()):
        key = f"{prefix}{run_id}/{path.relative_to(run_dir).as_posix()}"
        put_bytes(aws, bucket, key, path.read_bytes(), _CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        written.append(f"s3://{bucket}/{key}")
    index = Path(run_dir) / "index.html"
    if index.exists():
        page = index.read_text(encoding="utf-8").replace("<head>", f'<head><base href="../{run_id}/">', 1)
        put_bytes(aws, bucket, prefix + LATEST, page.encode(), _CONTENT_TYPES[".html"])
        written.append(f"s3://{bucket}/{prefix}{LATEST}")
    return written

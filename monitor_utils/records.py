"""Run records: stage JSON, HTML reports with code hidden, summary.json and the index page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import math
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


def export_html(notebook_path: Path, html_path: Path) -> Path:
    """Render an executed notebook as an HTML report with code cells hidden (nbconvert's own option)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook_path), as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def write_index(run_dir: Path, summary: dict) -> Path:
    """An index.html linking every stage's report, notebook and JSON, with status and headline results."""
    rows = []
    for s in summary["stages"]:
        name = s["stage"]
        status = s["status"]
        colour = {"ok": "#1a7f37", "failed": "#cf222e", "skipped": "#6e7781"}.get(status, "#000")
        links = " · ".join(f'<a href="{html.escape(f)}">{label}</a>' for label, f in
                           (("report", f"{name}.html"), ("notebook", f"{name}.ipynb"), ("json", f"{name}.json"))
                           if (run_dir / f).exists())
        head = html.escape("; ".join(f"{k}: {', '.join(map(str, v)) or 'none' if isinstance(v, list) else v}"
                                     for k, v in (s.get("headline") or {}).items()))
        err = f"<div class='err'>{html.escape(s.get('error') or '')}</div>" if s.get("error") else ""
        rows.append(f"<tr><td>{html.escape(name)}</td><td style='color:{colour}'><b>{status}</b></td>"
                    f"<td>{s.get('duration_s', 0):.1f} s</td><td>{links}</td><td>{head}{err}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Monitoring run {html.escape(summary['run_id'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.4em .8em;vertical-align:top}}
.err{{color:#cf222e;white-space:pre-wrap;font-family:monospace}}</style></head><body>
<h1>Monitoring run {html.escape(summary['run_id'])}</h1>
<p>Status: <b>{html.escape(summary['status'])}</b> · mode {html.escape(summary.get('aws_mode', ''))} ·
started {html.escape(summary['started'])} · {summary['duration_s']:.1f} s</p>
<table><tr><th>stage</th><th>status</th><th>time</th><th>records</th><th>headline</th></tr>{''.join(rows)}</table>
<p><a href="summary.json">summary.json</a></p></body></html>"""
    path = run_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path

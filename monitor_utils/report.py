"""What a stage report shows a reviewer: the verdict first, tidy tables, the parameters last inside <details>."""

from __future__ import annotations

import html
from typing import Any, Mapping

import pandas as pd

from .results import StageResult

VERDICT_STYLE = ("border-left:6px solid {colour};background:{bg};padding:.6em 1em;margin:.4em 0 1em 0;"
                 "font-size:1.1em;line-height:1.4")


def verdict_html(result: StageResult, stage: str = "") -> str:
    """An HTML block (class ``verdict``) with the stage's verdict sentences, coloured by whether it needs attention."""
    v = result.verdict
    colour, bg, word = ("#cf222e", "#fff5f5", "Needs attention") if v.attention else ("#1a7f37", "#f3fbf5", "All clear")
    title = f"{html.escape(stage)}: " if stage else ""
    return (f'<div class="verdict" style="{VERDICT_STYLE.format(colour=colour, bg=bg)}">'
            f"<b>{title}{word}.</b> {html.escape(v.text)}</div>")


def show_verdict(result: StageResult, stage: str = "") -> None:
    """Display the verdict block in a notebook."""
    from IPython.display import HTML, display

    display(HTML(verdict_html(result, stage)))


def tidy(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A copy for display: whole-number columns as integers (never ``2908.000000``), other floats rounded."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        finite = values.dropna()
        if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53:
            out[col] = values.astype("Int64")
        elif pd.api.types.is_float_dtype(values):
            out[col] = values.round(digits)
    return out


def parameters_html(cfg: Mapping[str, Any], namespace: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    """The parameters this notebook declares with the values in effect, folded in a ``<details>`` element."""
    rows = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(repr(cfg[k]))}</code></td></tr>"
                   for k in schema if k in namespace)
    return ("<details><summary>Parameters in effect</summary>"
            f"<table><tr><th>parameter</th><th>value</th></tr>{rows}</table></details>")

"""Reports for CI: JUnit XML, JSON and one self-contained HTML page (inline SVG charts).

All three take the same list of per-model results (:class:`modelport.convert.batch.ModelResult`),
whether they come from a batch or from one `convert --verify` / `verify`.
"""

from __future__ import annotations

import html
import math
import os
import xml.etree.ElementTree as ET
from typing import Any

from modelport.convert.verify import to_json


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.modelport-tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _report(m) -> dict[str, Any]:
    """The verification part of a model's `convert --json` document."""
    return (m.report or {}).get("report") or {}


def _table(m) -> str:
    """A plain-text summary of a model's verification, for JUnit failure bodies."""
    rep = _report(m)
    lines = []
    for o in rep.get("outputs") or []:
        lines.append(f"output {o['name']}: shape {o['shape']} max abs err {_g(o['max_abs'])} "
                     f"max rel err {_g(o['max_rel'])} {'ok' if o['passed'] else 'FAIL'}"
                     + (f" ({o['note']})" if o.get("note") else ""))
    for c in rep.get("layers") or []:
        lines.append(f"layer {c['name']}: max abs err {_g(c['max_abs'])} "
                     f"{'ok' if c['passed'] else 'FAIL'}")
    if rep.get("first_diverging_layer"):
        lines.append(f"first diverging layer: {rep['first_diverging_layer']}")
    for nc in rep.get("not_compared") or []:
        lines.append(f"not compared: {nc['layer']}: {nc['reason']}")
    return "\n".join(lines)


def junit_xml(results, *, suite: str = "modelport", seconds: float | None = None) -> str:
    """JUnit XML as CI systems read it: one testsuite, one testcase per model."""
    failures = sum(1 for m in results if m.status == "failed")
    errors = sum(1 for m in results if m.status == "error")
    total = seconds if seconds is not None else sum(m.seconds for m in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)),
                      failures=str(failures), errors=str(errors), time=f"{total:.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                       failures=str(failures), errors=str(errors), skipped="0",
                       time=f"{total:.3f}")
    for m in results:
        tc = ET.SubElement(ts, "testcase", name=m.name, classname=suite,
                           time=f"{m.seconds:.3f}")
        if m.status == "failed":
            f = ET.SubElement(tc, "failure", message=m.error or "verification failed",
                              type="VerificationMismatch")
            f.text = _table(m)
        elif m.status == "error":
            e = ET.SubElement(tc, "error", message=m.error or "error", type="ConversionError")
            e.text = m.error or ""
        if m.status == "passed":
            out = ET.SubElement(tc, "system-out")
            out.text = _table(m)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def write_junit(path: str, results, **kwargs) -> None:
    _atomic_write(path, junit_xml(results, **kwargs) + "\n")


def write_json(path: str, document: dict[str, Any]) -> None:
    _atomic_write(path, to_json(document) + "\n")


def _g(x: Any) -> str:
    """A number in 3 significant digits (non-finite ones as written)."""
    v = _num(x)
    return f"{v:.3g}" if math.isfinite(v) else str(x)


def _num(x: Any) -> float:
    if isinstance(x, (int, float)):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def layer_chart(layers: list[dict[str, Any]], atol: float, rtol: float,
                width: int = 720, height: int = 220) -> str:
    """An inline SVG: max abs error (log scale) of each compared layer, in model order, one
    point per layer (red where it fails), and the absolute tolerance as a dashed line."""
    if not layers:
        return ""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 12, 28
    vals = [_num(c.get("max_abs")) for c in layers]
    finite = [v for v in vals if math.isfinite(v) and v > 0]
    lo = math.floor(math.log10(min(finite + [atol or 1e-12]))) if finite or atol else -12
    hi = math.ceil(math.log10(max(finite + [atol or 1e-12, 10 ** (lo + 1)])))
    hi = max(hi, lo + 1)

    def y(v: float) -> float:
        if not math.isfinite(v):
            return pad_t
        v = max(v, 10 ** lo)
        return pad_t + (hi - math.log10(v)) / (hi - lo) * (height - pad_t - pad_b)

    n = len(layers)

    def x(i: int) -> float:
        return pad_l + (i + 0.5) * (width - pad_l - pad_r) / n

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="layer-chart" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="max abs error per layer">',
             f'<rect x="{pad_l}" y="{pad_t}" width="{width - pad_l - pad_r}" '
             f'height="{height - pad_t - pad_b}" fill="#fafafa" stroke="#ccc"/>']
    for e in range(lo, hi + 1):
        yy = y(10 ** e)
        parts.append(f'<text x="{pad_l - 6}" y="{yy + 4:.1f}" font-size="10" '
                     f'text-anchor="end">1e{e}</text>')
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{yy:.1f}" y2="{yy:.1f}" '
                     'stroke="#eee"/>')
    if atol > 0:
        ya = y(atol)
        parts.append(f'<line class="tolerance" x1="{pad_l}" x2="{width - pad_r}" '
                     f'y1="{ya:.1f}" y2="{ya:.1f}" stroke="#888" stroke-dasharray="4 3"/>')
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vals))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#4a78b5" stroke-width="1"/>')
    for i, (c, v) in enumerate(zip(layers, vals)):
        color = "#2e7d32" if c.get("passed") else "#c62828"
        parts.append(f'<circle class="layer-point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" '
                     f'fill="{color}"><title>{html.escape(str(c.get("name")))}: max abs err '
                     f'{html.escape(str(c.get("max_abs")))}</title></circle>')
    parts.append(f'<text x="{pad_l}" y="{height - 8}" font-size="10">layers in model order '
                 f'({n} compared); dashed: atol={atol:g}, rtol={rtol:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}
.passed{color:#2e7d32}.failed{color:#c62828}.error{color:#8e24aa}
pre{background:#f5f5f5;padding:8px;overflow-x:auto}section{margin-top:2em}"""


def html_page(results, *, title: str = "modelport verification", totals: dict | None = None) -> str:
    """One self-contained page: a summary table and, per model verified per layer, a chart."""
    esc = html.escape
    rows = []
    for m in results:
        rep = _report(m)
        w = m.worst
        worst = (f"{esc(str(w['name']))}: {_g(w['max_abs'])} "
                 f"(atol {rep.get('atol')}, rtol {rep.get('rtol')})") if w else ""
        nodes = (m.report or {}).get("nodes_exported", "")
        rows.append(f'<tr class="model {m.status}"><td><a href="#m-{esc(m.name)}">'
                    f'{esc(m.name)}</a></td><td class="{m.status}">{m.status}</td>'
                    f"<td>{m.seconds:.2f} s</td><td>{nodes}</td><td>{worst}</td>"
                    f"<td>{esc(m.error or '')}</td></tr>")
    sections = []
    for m in results:
        rep = _report(m)
        body = [f'<section id="m-{esc(m.name)}"><h2>{esc(m.name)} '
                f'<span class="{m.status}">{m.status}</span></h2>',
                f"<p>source: <code>{esc(m.source)}</code></p>"]
        if m.error:
            body.append(f"<pre>{esc(m.error)}</pre>")
        if rep.get("layers"):
            body.append(layer_chart(rep["layers"], _num(rep.get("atol", 0)),
                                    _num(rep.get("rtol", 0))))
            if rep.get("first_diverging_layer"):
                body.append(f"<p>first diverging layer: "
                            f"<b>{esc(rep['first_diverging_layer'])}</b></p>")
        table = _table(m)
        if table:
            body.append(f"<pre>{esc(table)}</pre>")
        body.append("</section>")
        sections.append("".join(body))
    t = totals or {s: sum(1 for m in results if m.status == s)
                   for s in ("passed", "failed", "error")}
    summary = (f"{t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
               f"{t.get('error', 0)} errors")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"summary\">{summary}</p>"
            "<table class=\"summary-table\"><thead><tr><th>model</th><th>status</th>"
            "<th>time</th><th>nodes</th><th>worst output error</th><th>message</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>{''.join(sections)}"
            "</body></html>\n")


def write_html(path: str, results, **kwargs) -> None:
    _atomic_write(path, html_page(results, **kwargs))

"""The drift report as one self-contained HTML page, for people.

``render_html`` takes the report document (``DriftReport.to_dict()`` or a saved report) and returns a
page with its CSS inline and its charts as inline SVG: no script, no font, no image, nothing fetched
from the network, so the file can be mailed, archived or opened offline. The summary verdict comes
first, then an overview table of every feature, the prediction, and a section per charted feature in the
report's order (drifted first, by severity) with the two distributions overlaid and the statistics.
Only the ``CHARTS`` features of largest effect (severity: effect over its threshold) get a section, so a
report over a thousand features stays a page of about a megabyte; the others are rows of the overview
table, which lists every feature. Every string from the report is escaped with ``html.escape``.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

CHARTS = 30  # features with a chart and a section of their own: those of largest severity
REF_COLOR = "#4c78a8"
CUR_COLOR = "#f58518"
_W, _H, _PAD_L, _PAD_B, _PAD_T = 560, 210, 50, 44, 10

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
  background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 0 0 8px; }
.meta { color: #57606a; margin: 0 0 16px; }
.verdict { border-radius: 8px; padding: 16px 20px; margin-bottom: 20px; color: #fff; }
.verdict.drift { background: #cf222e; } .verdict.ok { background: #1a7f37; }
.verdict .big { font-size: 24px; font-weight: 700; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px; margin-bottom: 16px; }
.row { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid #eaeef2; vertical-align: top; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; border-radius: 10px; padding: 1px 9px;
  vertical-align: middle; }
.badge.drift { background: #ffebe9; color: #cf222e; border: 1px solid #ff818266; }
.badge.ok { background: #dafbe1; color: #1a7f37; border: 1px solid #4ac26b66; }
.badge.warn { background: #fff8c5; color: #9a6700; border: 1px solid #d4a72c66; }
.legend span { display: inline-block; width: 11px; height: 11px; margin: 0 4px 0 12px; vertical-align: -1px; }
.note { color: #57606a; font-size: 13px; }
a { color: #0969da; text-decoration: none; }
svg text { font-size: 11px; fill: #57606a; }
"""


def _e(x: Any) -> str:
    return escape(str(x))


def fmt_num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:.{digits}g}"


def fmt_p(x: Any) -> str:
    if x is None:
        return "–"
    return "< 1e-300" if x == 0 else f"{x:.3g}"


def fmt_pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _badge(f: dict[str, Any]) -> str:
    if f.get("drifted"):
        return '<span class="badge drift">drifted</span>'
    if f.get("psi_drifted"):
        return '<span class="badge warn">PSI above threshold</span>'
    return '<span class="badge ok">no drift</span>'


def _axis_label(v: float) -> str:
    return f"{v:.4g}"


def _svg_histogram(chart: dict[str, Any], title: str) -> list[str]:
    edges, ref, cur = chart["edges"], chart["reference"], chart["current"]
    top = max([*ref, *cur, 1e-12])
    x0, x1 = edges[0], edges[-1]
    span = (x1 - x0) or 1.0
    pw, ph = _W - _PAD_L - 8, _H - _PAD_B - _PAD_T

    def x(v: float) -> float:
        return _PAD_L + (v - x0) / span * pw

    out = []
    for series, color in ((ref, REF_COLOR), (cur, CUR_COLOR)):
        for i, share in enumerate(series):
            h = share / top * ph
            width = max(x(edges[i + 1]) - x(edges[i]), 0.5)
            out.append(
                f'<rect x="{x(edges[i]):.1f}" y="{_PAD_T + ph - h:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" fill="{color}" fill-opacity="0.45"><title>'
                f"{escape(title)} [{_axis_label(edges[i])}, {_axis_label(edges[i + 1])}]: "
                f"reference {fmt_pct(ref[i])}, current {fmt_pct(cur[i])}</title></rect>"
            )
    for v, anchor in ((x0, "start"), ((x0 + x1) / 2, "middle"), (x1, "end")):
        out.append(
            f'<text x="{x(v):.1f}" y="{_H - _PAD_B + 16}" text-anchor="{anchor}">{escape(_axis_label(v))}</text>'
        )
    return out


def _svg_bars(chart: dict[str, Any], title: str) -> list[str]:
    labels, ref, cur = chart["labels"], chart["reference"], chart["current"]
    top = max([*ref, *cur, 1e-12])
    pw, ph = _W - _PAD_L - 8, _H - _PAD_B - _PAD_T
    slot = pw / max(len(labels), 1)
    bar = max(slot * 0.4, 1.0)
    out = []
    for i, label in enumerate(labels):
        left = _PAD_L + i * slot + slot * 0.1
        tip = f"{escape(title)} = {escape(str(label))}: reference {fmt_pct(ref[i])}, current {fmt_pct(cur[i])}"
        for j, (share, color) in enumerate(((ref[i], REF_COLOR), (cur[i], CUR_COLOR))):
            h = share / top * ph
            out.append(
                f'<rect x="{left + j * bar:.1f}" y="{_PAD_T + ph - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}" fill-opacity="0.8"><title>{tip}</title></rect>'
            )
        short = str(label) if len(str(label)) <= 12 else str(label)[:11] + "…"
        cx, cy = _PAD_L + (i + 0.5) * slot, _H - _PAD_B + 14
        rotate = f' transform="rotate(-30 {cx:.1f} {cy})"' if len(labels) > 8 else ""
        out.append(
            f'<text x="{cx:.1f}" y="{cy}" text-anchor="{"end" if rotate else "middle"}"{rotate}>'
            f"<title>{escape(str(label))}</title>{escape(short)}</text>"
        )
    return out


def svg_chart(chart: dict[str, Any], title: str) -> str:
    """Reference and current shares over the same bins, overlaid, as an inline SVG element."""
    if not chart or not chart.get("reference"):
        return '<p class="note">no chart</p>'
    body = _svg_histogram(chart, title) if chart.get("type") == "histogram" else _svg_bars(chart, title)
    top = max([*chart["reference"], *chart["current"], 1e-12])
    ph = _H - _PAD_B - _PAD_T
    axes = [
        f'<line x1="{_PAD_L}" y1="{_PAD_T + ph}" x2="{_W - 8}" y2="{_PAD_T + ph}" stroke="#8c959f"/>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + ph}" stroke="#8c959f"/>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + 8}" text-anchor="end">{100 * top:.3g} %</text>',
        f'<text x="{_PAD_L - 4}" y="{_PAD_T + ph}" text-anchor="end">0</text>',
    ]
    unit = chart.get("unit")
    if unit:
        axes.append(f'<text x="{_W - 8}" y="{_H - 4}" text-anchor="end">{escape(str(unit))}</text>')
    return (
        f'<svg width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}: reference and current distributions">' + "".join(axes + body) + "</svg>"
    )


def _stats_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    d = f.get("details") or {}
    rows = [
        ("test", str(f.get("test"))),
        ("statistic", fmt_num(f.get("statistic"))),
        ("p-value", fmt_p(f.get("p_value"))),
        ("p-value adjusted", fmt_p(f.get("p_value_adjusted"))),
        ("threshold", f"p < {fmt_num(f.get('threshold'))} and effect ≥ {fmt_num(f.get('effect_threshold'))}"),
        ("effect", fmt_num(f.get("effect"))),
        ("PSI", f"{fmt_num(f.get('psi'))} (threshold {fmt_num(f.get('psi_threshold'))})"),
    ]
    for t in f.get("tests") or []:
        verdict = "drifted" if t.get("drifted") else "no drift"
        rows.append(
            (
                f"check {t.get('test')}",
                f"adjusted p {fmt_p(t.get('p_value_adjusted'))}, effect {fmt_num(t.get('effect'))} "
                f"(at least {fmt_num(t.get('effect_threshold'))}): {verdict}",
            )
        )
    if f.get("distance") is not None:
        rows.append(("Wasserstein", fmt_num(f.get("distance"))))
    if d.get("distance_std") is not None:
        rows.append(("Wasserstein / ref. std", fmt_num(d["distance_std"])))
    if "mean_reference" in d:
        rows.append(("mean ref. → cur.", f"{fmt_num(d['mean_reference'])} → {fmt_num(d['mean_current'])}"))
    if "oov_current" in d:
        rows.append(("OOV expected → cur.", f"{fmt_pct(d['oov_expected'])} → {fmt_pct(d['oov_current'])}"))
        rows.append(("OOV rise threshold", fmt_pct(d.get("oov_threshold"))))
    if d.get("n_pooled"):
        rows.append(("pooled rare categories", f"{d['n_pooled']} (expected under 5 times in the smaller sample)"))
    if d.get("sketch_error"):
        rows.append(("reference sketch error", f"CDF within {fmt_num(d['sketch_error'])}"))
    if d.get("unseen"):
        shown = ", ".join(map(str, d["unseen"][:10])) + (" …" if len(d["unseen"]) > 10 else "")
        rows.append(("unseen categories", f"{shown} ({fmt_pct(d.get('unseen_share'))} of current)"))
    rows += [
        ("values ref. / cur.", f"{fmt_num(f.get('n_reference'))} / {fmt_num(f.get('n_current'))}"),
        ("missing ref. / cur.", f"{fmt_pct(f.get('missing_reference'))} / {fmt_pct(f.get('missing_current'))}"),
        ("severity", fmt_num(f.get("severity"))),
    ]
    if d.get("note"):
        rows.append(("note", str(d["note"])))
    return rows


def _feature_section(f: dict[str, Any], anchor: str) -> str:
    name = str(f.get("name"))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _stats_rows(f))
    return (
        f'<section class="card feature" id="{anchor}"><h2>{escape(name)} {_badge(f)} '
        f'<span class="note">{escape(str(f.get("kind")))}</span></h2>'
        f'<div class="row"><div>{svg_chart(f.get("chart") or {}, name)}</div><table>{table}</table></div></section>'
    )


def charted(feats: list[dict[str, Any]], limit: int = CHARTS) -> list[int]:
    """The positions of the ``limit`` features of largest severity (ties: the report's order), ascending."""
    ranked = sorted(range(len(feats)), key=lambda i: (-float(feats[i].get("severity") or 0.0), i))
    return sorted(ranked[: max(limit, 0)])


def render_html(report: dict[str, Any], charts: int = CHARTS) -> str:
    """The report as one self-contained HTML page: a chart for each of the ``charts`` features of largest
    severity, every feature in the overview table."""
    feats: list[dict[str, Any]] = list(report.get("features") or [])
    shown = charted(feats, charts)
    with_chart = set(shown)
    drift = bool(report.get("dataset_drift"))
    model = str(report.get("model") or "")
    version = report.get("version")
    alias = report.get("alias")
    what = f"{model} v{version}" + (f" ({alias})" if alias else "")
    settings = report.get("settings") or {}
    source = report.get("source") or {}
    if source.get("kind") == "file":
        src = f"file {source.get('path')}"
    elif source.get("kind") == "captured":
        src = f"captured predictions since {source.get('since_iso') or source.get('since')} ({source.get('window')})"
    else:
        src = str(source.get("description") or source.get("kind") or "current data")
    n_drifted, n = report.get("n_drifted", 0), report.get("n_features", 0)
    summary = (
        f'<section class="verdict {"drift" if drift else "ok"}">'
        f'<div class="big">Dataset drift: {"YES" if drift else "NO"}</div>'
        f"<div>{_e(n_drifted)} of {_e(n)} features drifted ({_e(fmt_pct(report.get('drifted_share')))}; "
        f"dataset drift at {_e(fmt_pct(settings.get('share')))} or more)</div></section>"
    )
    meta = (
        f'<p class="meta">{_e(src)} · {_e(fmt_num(report.get("current_rows")))} current rows vs '
        f"{_e(fmt_num(report.get('reference_rows')))} reference rows · created {_e(report.get('created_at'))}"
        f" · p-value {_e(fmt_num(settings.get('p_value')))}, correction {_e(settings.get('correction'))}, "
        f"effect {_e(fmt_num(settings.get('effect')))}, PSI threshold {_e(fmt_num(settings.get('psi_threshold')))}</p>"
    )
    cells = (
        [
            f'<a href="#f-{i}">{_e(f.get("name"))}</a>' if i in with_chart else _e(f.get("name")),
            _e(f.get("kind")),
            _e(f.get("test")),
            _e(fmt_num(f.get("statistic"))),
            _e(fmt_p(f.get("p_value_adjusted"))),
            _e(fmt_num(f.get("effect"), 3)),
            _e(fmt_num(f.get("psi"), 3)),
            _badge(f),
        ]
        for i, f in enumerate(feats)
    )
    overview_rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)
    rest = len(feats) - len(shown)
    charted_note = (
        f'<p class="note">Charts below for the {len(shown)} features of largest effect; the other {rest:,} are '
        "in this table only.</p>"
        if rest
        else ""
    )
    overview = (
        '<section class="card"><h2>Features, most severe first</h2>'
        f"{charted_note}<table><tr><th>feature</th><th>kind</th>"
        "<th>test</th><th>statistic</th><th>p-value (adj.)</th><th>effect</th><th>PSI</th><th>verdict</th></tr>"
        f"{overview_rows}</table>"
        f'<p class="legend"><span style="background:{REF_COLOR}"></span>reference (training data)'
        f'<span style="background:{CUR_COLOR}"></span>current</p></section>'
    )
    pred = report.get("prediction")
    pred_html = (
        _feature_section({**pred, "name": "prediction"}, "prediction")
        if pred
        else '<section class="card"><h2>prediction</h2><p class="note">not available: the current data has no '
        "predictions</p></section>"
    )
    notes = "".join(f"<li>{escape(str(x))}</li>" for x in report.get("notes") or [])
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Drift: {escape(what)}: {'drift' if drift else 'no drift'}</title><style>{_CSS}</style></head>",
        f"<body><main><h1>Drift report: {escape(what)}</h1>{meta}{summary}{overview}{pred_html}",
        *(_feature_section(feats[i], f"f-{i}") for i in shown),
        f'<section class="card"><h2>Notes</h2><ul class="note">{notes}</ul></section>' if notes else "",
        "</main></body></html>\n",
    ]
    return "".join(parts)

"""An A/B test report as one self-contained HTML page, for people.

``render_html`` takes the document ``analysis.analyze`` returns (or a saved one) and returns a page in
the drift report's style (its CSS and number formats are imported from ``monitoring.report``): the
verdict first, in a banner with its reason; the variants' traffic and metrics; each variant's primary
metric with its interval as an inline SVG chart; the test (always valid: its interval is the confidence
sequence that agrees with the verdict); how much of the planned sample is there, as rechecked against the
live rates; and a note on why reading the report at any time is safe. No script, no font, nothing
fetched from the network; every string from the report is escaped.
"""

from __future__ import annotations

from typing import Any

from mlopsctl.monitoring.report import _CSS, CUR_COLOR, REF_COLOR, _e, fmt_num, fmt_p, fmt_pct

SHADOW_COLOR = "#8c959f"
_W, _ROW, _LABEL, _TOP, _BOTTOM = 560, 28, 150, 8, 30

_AB_CSS = """
.verdict.better { background: #1a7f37; } .verdict.worse { background: #cf222e; }
.verdict.wait { background: #6e7781; }
.bar { background: #eaeef2; border-radius: 6px; height: 12px; margin-top: 10px; width: 420px; max-width: 100%;
  overflow: hidden; }
.bar div { background: #0969da; height: 100%; }
table.variants td { white-space: nowrap; } .scroll { overflow-x: auto; }
"""

_VERDICTS = {
    "candidate_better": ("better", "Candidate better"),
    "control_better": ("worse", "Control better"),
    "no_difference_yet": ("wait", "No difference yet"),
}
_SHARES = ("accuracy", "f1_macro", "error_rate", "agreement")  # shown as percentages
_LABELS = {"accuracy": "accuracy", "f1_macro": "macro F1", "mae": "MAE", "rmse": "RMSE"}


def _value(metric: str, x: Any) -> str:
    if x is None:
        return "–"
    return fmt_pct(x) if metric in _SHARES else fmt_num(x)


def _ci(metric: str, d: dict[str, Any] | None) -> str:
    d = d or {}
    if d.get("ci_low") is None or d.get("ci_high") is None:
        return ""
    return f"[{_value(metric, d['ci_low'])}, {_value(metric, d['ci_high'])}]"


def _with_ci(metric: str, d: dict[str, Any] | None, extra: str = "") -> str:
    """A table cell's value, ``extra`` (HTML) beside it and the interval under it."""
    d = d or {}
    ci = _ci(metric, d)
    return f"{_e(_value(metric, d.get('value')))}{extra}" + (f'<br><span class="note">{_e(ci)}</span>' if ci else "")


def _diff(metric: str, x: Any) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.2f} points" if metric in _SHARES else f"{x:+.4g}"


def _color(role: str) -> str:
    return {"control": REF_COLOR, "candidate": CUR_COLOR}.get(role, SHADOW_COLOR)


def svg_intervals(variants: list[dict[str, Any]], metric: str) -> str:
    """Each variant's ``metric`` as a dot on a horizontal line from its interval's low to high end."""
    rows = [v for v in variants if (v.get(metric) or {}).get("value") is not None]
    if not rows:
        return '<p class="note">no labelled predictions yet</p>'
    ends = [x for v in rows for x in (v[metric].get("ci_low"), v[metric]["value"], v[metric].get("ci_high"))]
    lo, hi = min(x for x in ends if x is not None), max(x for x in ends if x is not None)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.05
    lo, hi = lo - pad, hi + pad
    if metric in _SHARES:
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    height = _TOP + _ROW * len(rows) + _BOTTOM
    right = _W - 70

    def x(v: float) -> float:
        return _LABEL + (v - lo) / ((hi - lo) or 1.0) * (right - _LABEL)

    out = []
    for i, v in enumerate(rows):
        m, y = v[metric], _TOP + _ROW * i + _ROW / 2
        name = str(v.get("name"))
        short = name if len(name) <= 20 else name[:19] + "…"
        color = _color(str(v.get("role")))
        tip = f"{name}: {_value(metric, m['value'])} {_ci(metric, m)}"
        out.append(
            f'<text x="{_LABEL - 8}" y="{y + 4:.1f}" text-anchor="end"><title>{_e(name)}</title>{_e(short)}</text>'
        )
        if m.get("ci_low") is not None and m.get("ci_high") is not None:
            x0, x1 = x(m["ci_low"]), x(m["ci_high"])
            out.append(
                f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="3"/>'
                f'<line x1="{x0:.1f}" y1="{y - 6:.1f}" x2="{x0:.1f}" y2="{y + 6:.1f}" stroke="{color}"/>'
                f'<line x1="{x1:.1f}" y1="{y - 6:.1f}" x2="{x1:.1f}" y2="{y + 6:.1f}" stroke="{color}"/>'
            )
        out.append(
            f'<circle cx="{x(m["value"]):.1f}" cy="{y:.1f}" r="5" fill="{color}"><title>{_e(tip)}</title></circle>'
            f'<text x="{right + 8}" y="{y + 4:.1f}">{_e(_value(metric, m["value"]))}</text>'
        )
    base = _TOP + _ROW * len(rows) + 4
    out.append(f'<line x1="{_LABEL}" y1="{base}" x2="{right}" y2="{base}" stroke="#8c959f"/>')
    for v, anchor in ((lo, "start"), ((lo + hi) / 2, "middle"), (hi, "end")):
        out.append(f'<text x="{x(v):.1f}" y="{base + 16}" text-anchor="{anchor}">{_e(_value(metric, v))}</text>')
    return (
        f'<svg width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" role="img" '
        f'aria-label="{_e(metric)} by variant with its confidence interval">' + "".join(out) + "</svg>"
    )


def _variants_table(report: dict[str, Any], metrics: tuple[str, str]) -> str:
    primary, second = metrics
    names = (_LABELS.get(m, m) for m in metrics)
    head = (
        "<tr><th>variant</th><th>role</th><th>versions</th><th>requests</th><th>error rate</th><th>p50</th>"
        "<th>p95</th><th>labelled</th>"
        + "".join(f"<th>{_e(n)}</th>" for n in names)
        + "<th>agrees with primary</th></tr>"
    )
    body = []
    for v in report.get("variants") or []:
        if "agreement" in v:
            compared = f' <span class="note">of {_e(fmt_num(v.get("compared")))} rows</span>'
            agree = _with_ci("agreement", v["agreement"], compared)
        elif "mean_abs_difference" in v:
            agree = f"mean |difference| {_e(fmt_num(v['mean_abs_difference']))}"
        else:
            agree = ""
        ignored = v.get("ignored_labels") or 0
        labelled = _e(fmt_num(v.get("labelled"))) + (
            f' <span class="note" title="labels not among the classes or not a number">(+{_e(ignored)} ignored)</span>'
            if ignored
            else ""
        )
        ms = (_e(fmt_num(v.get(k), 3)) + " ms" if v.get(k) is not None else "–" for k in ("p50_ms", "p95_ms"))
        cells = [
            f'<span style="color:{_color(str(v.get("role")))}">■</span> {_e(v.get("name"))}',
            _e(v.get("role")),
            _e(", ".join(str(x) for x in v.get("versions") or [])),
            f'<span class="num">{_e(fmt_num(v.get("requests")))}</span>',
            _with_ci("error_rate", v.get("error_rate"), f' <span class="note">({_e(fmt_num(v.get("errors")))})</span>'),
            *ms,
            labelled,
            _with_ci(primary, v.get(primary)),
            _with_ci(second, v.get(second)),
            agree,
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return '<section class="card"><h2>Variants</h2><p class="note">no captured predictions yet</p></section>'
    table = f'<div class="scroll"><table class="variants">{head}{"".join(body)}</table></div>'
    return f'<section class="card"><h2>Variants</h2>{table}</section>'


def _test_section(report: dict[str, Any]) -> str:
    t = report.get("test") or {}
    metric = str(t.get("metric") or report.get("metric") or "")
    better = "higher is better" if t.get("higher_is_better") else "lower is better"
    level = 1 - float(t.get("alpha") or report.get("alpha") or 0.05)
    ci = (
        f"[{_diff(metric, t['ci_low'])}, {_diff(metric, t['ci_high'])}]"
        if t.get("ci_low") is not None and t.get("ci_high") is not None
        else "–"
    )
    rows = [
        ("comparison", f"{t.get('candidate')} − {t.get('control')} on {_LABELS.get(metric, metric)} ({better})"),
        ("difference", _diff(metric, t.get("diff"))),
        (f"{100 * level:g} % always-valid interval", ci),
        ("relative to the control", fmt_pct(t.get("relative_diff"))),
        ("test", str(t.get("test") or "–")),
        ("statistic", fmt_num(t.get("statistic"))),
        ("always-valid p-value", fmt_p(t.get("p_value"))),
        ("units (clusters)", f"{fmt_num(t.get('clusters'))} by {t.get('cluster_by') or 'request'}"),
        ("design effect", fmt_num(t.get("design_effect"))),
        ("ramp steps compared", fmt_num(t.get("strata"))),
        ("labelled rows", f"{fmt_num(t.get('n_control'))} control, {fmt_num(t.get('n_candidate'))} candidate"),
    ]
    e = report.get("error_rate_test") or {}
    lat = report.get("latency") or {}
    rows += [
        (
            "error rate difference",
            f"{_diff('error_rate', e.get('diff'))} (p = {fmt_p(e.get('p_value'))}, for information)",
        ),
        ("p95 latency change", f"{fmt_pct(lat.get('p95_change'))} (for information)"),
    ]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<section class="card"><h2>Test</h2><table>{table}</table></section>'


def _sample_section(report: dict[str, Any]) -> str:
    s = report.get("sample_size") or {}
    required, have = s.get("required_per_variant"), s.get("have") or {}
    n_min = min(have.values()) if have else 0
    share = min(1.0, n_min / required) if required else 0.0
    have_text = ", ".join(f"{k} {fmt_num(v)}" for k, v in have.items()) or "–"
    rows = [
        ("planned labelled rows per variant", fmt_num(required)),
        ("basis", str(s.get("basis") or "–")),
        ("planned at the start", fmt_num(s.get("planned_at_start"))),
        ("labelled so far", have_text),
        ("still needed per variant", fmt_num(s.get("still_needed"))),
    ]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return (
        f'<section class="card"><h2>Sample size</h2><table>{table}</table>'
        f'<div class="bar" role="img" aria-label="{100 * share:.0f} % of the planned sample">'
        f'<div style="width:{100 * share:.1f}%"></div></div>'
        f'<p class="note">{100 * share:.0f} % of the planned sample (the smaller variant counts)</p></section>'
    )


def _note(report: dict[str, Any]) -> str:
    alpha, power, effect = report.get("alpha"), report.get("power"), report.get("min_effect")
    unit = " accuracy points" if report.get("metric") == "accuracy" else " % of the control's MAE"
    effect_text = f"{100 * effect:g}{unit}" if isinstance(effect, int | float) else "the minimum effect"
    return (
        '<section class="card"><h2>Reading this report at any time</h2><p class="note">'
        "The test is a mixture sequential probability ratio test: its p-value and interval are valid at every "
        "look, with no end, so reading the report every hour, stopping at the first winner, or running past "
        f"the plan does not raise the chance of a false winner above {_e(fmt_num(alpha))}. The interval of the "
        "difference is the test's confidence sequence: it excludes zero exactly when a winner is declared. "
        "Each ramp step is compared on its own (a metric that moves in time cannot pass for a difference when "
        "the ramp moves traffic), and rows of one sticky user or one request are counted as one unit. The "
        f"sample size says how long to run to find a true difference of {_e(effect_text)} with "
        f"{_e(fmt_pct(power))} power; it is rechecked against the live rates. Without a difference at that size, "
        "the test says no difference of the planned size was found, not that there is none.</p></section>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The A/B report as one self-contained HTML page."""
    verdict = str(report.get("verdict") or "no_difference_yet")
    css_class, title = _VERDICTS.get(verdict, ("wait", verdict))
    metric = str(report.get("metric") or "accuracy")
    metrics = ("mae", "rmse") if metric == "mae" else ("accuracy", "f1_macro")
    model, experiment = str(report.get("model") or ""), report.get("experiment")
    what = " · ".join(x for x in (model, f"experiment {experiment}" if experiment else "") if x)
    info = report.get("experiment_info") or {}
    where = f"environment {info['environment']} · " if info.get("environment") else ""
    span = ""
    if report.get("first_time"):
        span = f" from {report.get('first_time')} to {report.get('last_time')}"
    meta = (
        f'<p class="meta">{_e(where)}{_e(report.get("task"))} · {_e(fmt_num(report.get("records")))} captured rows'
        f"{_e(span)} · α {_e(fmt_num(report.get('alpha')))}, power {_e(fmt_pct(report.get('power')))}, "
        f"always-valid test · created {_e(report.get('created_at'))}</p>"
    )
    banner = (
        f'<section class="verdict {css_class}"><div class="big">{_e(title)}</div>'
        f"<div>{_e(report.get('reason') or '')}</div></section>"
    )
    better = "higher is better" if metric != "mae" else "lower is better"
    chart = (
        f'<section class="card"><h2>{_e(_LABELS.get(metric, metric))} by variant ({better}), with its '
        f"{_e(fmt_num(100 * (1 - float(report.get('alpha') or 0.05))))} % interval</h2>"
        f"{svg_intervals(list(report.get('variants') or []), metric)}</section>"
    )
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>A/B test{_e(': ' + what if what else '')}: {_e(title)}</title><style>{_CSS}{_AB_CSS}</style></head>",
        f"<body><main><h1>A/B test{_e(': ' + what if what else '')}</h1>{meta}{banner}",
        _variants_table(report, metrics),
        chart,
        _test_section(report),
        _sample_section(report),
        _note(report),
        "</main></body></html>\n",
    ]
    return "".join(parts)

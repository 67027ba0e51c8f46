"""`GET /dashboard`: one self-contained status page (inline CSS and script, nothing fetched
from elsewhere). The script polls `/dashboard/data` every two seconds and redraws: per
served model its version and aliases, request and error rate, p50/p95 latency over the
last minute, predictions by class, live accuracy, the last drift verdict and promotions, and
when an experiment or a shadow runs, each variant's share, request rate, error rate and p95.
"""

from __future__ import annotations

from functools import cache

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mlopsctl status</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2329; }
  header { background: #1d2329; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #aeb6bf; font-size: 12px; }
  main { padding: 16px 20px; display: grid; gap: 16px; }
  .card { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 14px 16px; }
  .card h2 { margin: 0 0 8px; font-size: 16px; }
  .kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; margin: 8px 0; }
  .kpi { background: #f6f7f9; border-radius: 6px; padding: 6px 8px; }
  .kpi .v { font-size: 20px; font-weight: 600; }
  .kpi .l { font-size: 11px; color: #5b6670; text-transform: uppercase; letter-spacing: .04em; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
  .ok { background: #dff5e3; color: #17692c; } .bad { background: #fde2e1; color: #a3201b; }
  .none { background: #eceff2; color: #5b6670; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  td, th { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eef0f3; }
  .bar { height: 10px; background: #4c8bf5; border-radius: 2px; }
  .cols { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  #status { font-size: 12px; }
</style>
</head>
<body>
<header><h1>mlopsctl</h1><span class="meta" id="status">loading…</span></header>
<main id="models"></main>
<script>
"use strict";
const fmt = (v, digits = 1, unit = "") => (v === null || v === undefined) ? "–" : Number(v).toFixed(digits) + unit;
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function kpi(label, value) { return el("div", {class: "kpi"}, el("div", {class: "v"}, value), el("div", {class: "l"}, label)); }
const LIVE = {
  classification: [["accuracy", "accuracy"], ["f1_macro", "macro F1"], ["precision_macro", "macro precision"], ["recall_macro", "macro recall"]],
  regression: [["rmse", "RMSE"], ["mae", "MAE"], ["r2", "R²"], ["bias", "bias"]],
};
function liveKpis(m) {
  const live = m.live || {};
  return LIVE[m.task === "regression" ? "regression" : "classification"].map(([k, label]) =>
    el("div", {class: "kpi", "data-metric": k}, el("div", {class: "v"}, live[k] === undefined || live[k] === null ? "–" : fmt(live[k], 3)),
      el("div", {class: "l"}, "live " + label + " (" + (m.labelled || 0) + " labels)")));
}
function driftBadge(d) {
  if (!d) return el("span", {class: "badge none"}, "no drift report yet");
  const share = fmt(100 * (d.drifted_share || 0), 0, "%");
  return d.dataset_drift
    ? el("span", {class: "badge bad"}, "drift: " + share + " of features (v" + d.version + ")")
    : el("span", {class: "badge ok"}, "no drift: " + share + " of features (v" + d.version + ")");
}
function classTable(counts) {
  const entries = Object.entries(counts || {});
  const total = entries.reduce((s, [, n]) => s + n, 0);
  const t = el("table", {}, el("tr", {}, el("th", {}, "class"), el("th", {}, "predictions"), el("th", {}, "")));
  for (const [k, n] of entries) {
    const w = total ? Math.round(200 * n / total) : 0;
    t.append(el("tr", {}, el("td", {}, k), el("td", {}, n), el("td", {}, el("div", {class: "bar", style: "width:" + w + "px"}))));
  }
  return t;
}
function eventsTable(events) {
  const t = el("table", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "action"), el("th", {}, "alias"), el("th", {}, "version"), el("th", {}, "by")));
  for (const e of (events || []).slice().reverse()) {
    t.append(el("tr", {}, el("td", {}, (e.at || "").replace("T", " ").slice(0, 19)), el("td", {}, e.action || ""),
      el("td", {}, e.alias || ""), el("td", {}, e.to !== undefined ? (e.from == null ? "" : "v" + e.from + " → ") + "v" + e.to : (e.version ?? "")), el("td", {}, e.actor || "")));
  }
  return t;
}
function routeTable(route) {
  if (!route || (route.variants.length < 2 && !route.shadows.length)) return "";
  const t = el("table", {class: "route"}, el("tr", {}, el("th", {}, "variant"), el("th", {}, "version"), el("th", {}, "traffic"),
    el("th", {}, "requests/s"), el("th", {}, "error rate"), el("th", {}, "p95")));
  for (const v of route.variants.concat(route.shadows)) {
    const share = v.weight === undefined ? "copy" : fmt(v.weight, 1, "%");
    t.append(el("tr", {"data-variant": v.variant}, el("td", {}, v.variant), el("td", {}, "v" + (v.version ?? "?")), el("td", {}, share),
      el("td", {}, fmt(v.request_rate, 2)), el("td", {}, fmt(100 * (v.error_rate || 0), 1, "%")), el("td", {}, fmt(v.p95_ms, 2, " ms"))));
  }
  return el("div", {}, el("h3", {}, route.experiment ? "experiment " + route.experiment + (route.sticky ? " (sticky on " + route.sticky + ")" : "") : "shadows"), t);
}
function render(data) {
  const root = document.getElementById("models");
  root.replaceChildren();
  for (const m of data.models) {
    const aliases = Object.entries(m.aliases || {}).map(([a, v]) => a + " → v" + v).join(", ") || "none";
    const card = el("section", {class: "card", "data-model": m.name},
      el("h2", {}, m.name + " ", el("span", {class: "version", "data-version": m.version ?? ""},
        m.version === null ? "(not loaded)" : "v" + m.version), " ",
        el("span", {class: "badge " + (m.error ? "bad" : "ok")}, m.error ? "error" : "serving")),
      el("div", {}, "follows ", el("b", {}, m.follows), " · runtime " + (m.runtime || "–") + " · aliases: " + aliases),
      m.error ? el("div", {class: "badge bad"}, m.error) : "",
      el("div", {class: "kpis"},
        kpi("requests/s", fmt(m.request_rate, 2)),
        kpi("error rate", fmt(100 * m.error_rate, 1, "%")),
        kpi("p50 latency", fmt(m.p50_ms, 2, " ms")),
        kpi("p95 latency", fmt(m.p95_ms, 2, " ms")),
        kpi("requests", fmt(m.requests_total, 0)),
        ...liveKpis(m)),
      el("div", {}, "drift: ", driftBadge(m.drift)),
      routeTable(m.route),
      el("div", {class: "cols"},
        el("div", {}, el("h3", {}, "predictions by " + (m.task === "regression" ? "value bucket" : "class")), classTable(m.predictions_by_class)),
        el("div", {}, el("h3", {}, "last registry events"), eventsTable(m.events))));
    root.append(card);
  }
  const cap = data.capture ? " · captured " + data.capture.written + ", queued " + data.capture.queued + ", dropped " + data.capture.dropped : " · capture off";
  document.getElementById("status").textContent =
    "updated " + new Date(data.time * 1000).toLocaleTimeString() + " · rates over the last " +
    fmt(data.models[0] ? data.models[0].window_seconds : 0, 0) + " s" + cap;
}
async function refresh() {
  try {
    const r = await fetch("dashboard/data", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (err) {
    document.getElementById("status").textContent = "cannot reach the server: " + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""


@cache
def page() -> str:
    return _PAGE

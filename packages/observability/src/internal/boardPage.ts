/**
 * The board's page: one HTML document with one style and one script, both
 * allowed by their hashes in a strict Content-Security-Policy (no external
 * asset, no inline attribute, no framework). The script builds a card per
 * circuit from the event stream, draws the sparklines as inline SVG, and
 * touches the DOM only where a value changed.
 *
 * @internal
 */
import { createHash } from "node:crypto"

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const style = `
:root{color-scheme:light dark;--closed:#1a7f37;--open:#cf222e;--half:#bf8700;--muted:#6e7781;--rate:#0969da;--line:color-mix(in srgb,CanvasText 20%,transparent)}
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:1.5rem;background:Canvas;color:CanvasText}
header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between;margin-bottom:1rem}
h1{font-size:1.3rem;margin:0}h2{font-size:1.05rem;margin:1.2rem 0 .5rem}
#conn{font-size:.85rem;color:var(--muted)}
#overview{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1rem}
.panel{border:1px solid var(--line);border-radius:.5rem;padding:.5rem 1rem;font-size:.9rem}
.panel[hidden]{display:none}.panel.warn{border-color:var(--open)}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(19rem,1fr));gap:1rem}
.card{contain:content;border:1px solid var(--line);border-left:.6rem solid var(--muted);border-radius:.5rem;padding:.8rem 1rem}
.card.closed{border-left-color:var(--closed)}.card.open{border-left-color:var(--open)}.card.half_open{border-left-color:var(--half)}
.name{font-weight:600;font-family:ui-monospace,monospace}
.state{display:inline-block;margin:.4rem .5rem .4rem 0;padding:.1rem .6rem;border-radius:1rem;color:#fff;font-weight:700;background:var(--muted)}
.closed .state{background:var(--closed)}.open .state{background:var(--open)}.half_open .state{background:var(--half)}
.since{font-size:.85rem;color:var(--muted)}
dl{display:grid;grid-template-columns:auto 1fr;gap:.15rem .8rem;margin:.4rem 0;font-size:.9rem}
dt{color:var(--muted)}dd{margin:0}dt[hidden],dd[hidden]{display:none}
svg.spark{width:100%;height:2.2rem;display:block;border-bottom:1px solid var(--line)}
svg.spark polyline{fill:none;stroke-width:1.5}.spark .rate{stroke:var(--rate)}.spark .err{stroke:var(--open)}
.legend{font-size:.75rem;color:var(--muted)}.legend b{font-weight:400}.legend .r{color:var(--rate)}.legend .e{color:var(--open)}
.chips{display:flex;flex-wrap:wrap;gap:.3rem}
.chip{font-size:.75rem;padding:0 .4rem;border-radius:.6rem;border:1px solid var(--line)}
.chip.open{background:var(--open);color:#fff}.chip.half_open{background:var(--half);color:#fff}.chip.lease{outline:2px solid var(--half)}
.disagree{color:var(--open);font-weight:600}
.admin{display:none;gap:.5rem;margin-top:.5rem}.admin-on .admin{display:flex}
button{font:inherit;padding:.2rem .7rem;cursor:pointer}
#msg{font-size:.85rem;color:var(--muted);min-height:1.2em}
table{border-collapse:collapse;font-size:.85rem;width:100%}
th,td{text-align:left;padding:.15rem .6rem;border-bottom:1px solid var(--line)}
td.to-open{color:var(--open);font-weight:600}td.to-closed{color:var(--closed);font-weight:600}td.to-half_open{color:var(--half);font-weight:600}
`

const script = `
"use strict";
const cards = new Map(), root = document.getElementById("cards"), conn = document.getElementById("conn");
const msg = document.getElementById("msg"), tokenInput = document.getElementById("token");
const timeline = document.getElementById("timeline"), backlogPanel = document.getElementById("backlog");
const fleetPanel = document.getElementById("fleet");
const SVG = "http://www.w3.org/2000/svg", TIMELINE_ROWS = 50, BACKLOG_POINTS = 300;
const label = { closed: "CLOSED", open: "OPEN", half_open: "HALF_OPEN" };
const backlogSeries = [], POLICIES = ["bulkhead", "retry", "hedge"];
let token = "", fleet = null;
function set(el, text) { if (el.textContent !== text) el.textContent = text; }
function span(cls) { const s = document.createElement("span"); if (cls) s.className = cls; return s; }
function row(dl, f, term, id) {
  const dt = document.createElement("dt"); dt.textContent = term;
  const dd = document.createElement("dd"); dd.dataset.field = id; f[id] = dd;
  dl.append(dt, dd);
}
function spark(classes) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 100 100"); svg.setAttribute("preserveAspectRatio", "none");
  const lines = {};
  for (const c of classes) {
    const p = document.createElementNS(SVG, "polyline"); p.setAttribute("class", c);
    p.setAttribute("vector-effect", "non-scaling-stroke"); p.dataset.spark = c; svg.append(p); lines[c] = p;
  }
  return { svg, lines };
}
function points(values, max) {
  const n = values.length, out = [];
  if (n === 0) return "";
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null) continue;
    out.push((n === 1 ? 100 : (100 * i) / (n - 1)).toFixed(1) + "," + (98 - (96 * v) / (max || 1)).toFixed(1));
  }
  return out.join(" ");
}
function draw(line, text) { if (line.getAttribute("points") !== text) line.setAttribute("points", text); }
function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
function build(name) {
  const f = {};
  const el = document.createElement("section"); el.className = "card"; el.dataset.circuit = name;
  const title = document.createElement("div"); title.className = "name"; title.textContent = name;
  const head = document.createElement("div");
  f.state = span("state"); f.state.dataset.field = "state"; f.since = span("since"); f.since.dataset.field = "since";
  head.append(f.state, f.since);
  const sp = spark(["rate", "err"]); f.spark = sp.lines;
  const legend = document.createElement("div"); legend.className = "legend";
  legend.append(span("r"), "calls/s (max ", span(), ") \\u00b7 ", span("e"), "error % \\u00b7 last 5 min");
  legend.children[0].textContent = "\\u2014 "; legend.children[2].textContent = "\\u2014 "; f.max = legend.children[1];
  const dl = document.createElement("dl");
  row(dl, f, "calls/s", "rate"); row(dl, f, "errors", "errors"); row(dl, f, "latency", "latency");
  row(dl, f, "outcomes (5 min)", "outcomes"); row(dl, f, "failure mode", "failureMode"); row(dl, f, "mode", "mode");
  row(dl, f, "failures", "failures"); row(dl, f, "trips", "trips"); row(dl, f, "next probe", "probe");
  row(dl, f, "last transition", "transition"); row(dl, f, "replicas", "fleet");
  row(dl, f, "bulkhead", "bulkhead"); row(dl, f, "retry budget", "retry"); row(dl, f, "hedge", "hedge");
  f.fleetTerm = f.fleet.previousSibling;
  for (const k of POLICIES) f[k].hidden = f[k].previousSibling.hidden = true;
  const admin = document.createElement("div"); admin.className = "admin";
  for (const [action, text] of [["force-open", "Force open"], ["reset", "Reset"]]) {
    const b = document.createElement("button"); b.type = "button"; b.textContent = text;
    b.dataset.action = action; b.addEventListener("click", () => act(name, action)); admin.append(b);
  }
  el.append(title, head, sp.svg, legend, dl, admin);
  const names = [...cards.keys(), name].sort();
  const next = cards.get(names[names.indexOf(name) + 1]);
  root.insertBefore(el, next ? next.el : null);
  return { el, f, stats: undefined };
}
function entryOf(name) {
  let entry = cards.get(name);
  if (!entry) { entry = build(name); cards.set(name, entry); showStats(entry, undefined); showFleet(entry); }
  return entry;
}
function show(c) {
  const entry = entryOf(c.name), f = entry.f, now = performance.now();
  entry.card = c;
  entry.deadline = c.state === "open" && c.retryAfterMillis !== null ? now + c.retryAfterMillis : null;
  entry.since = now - c.inStateMillis;
  if (entry.el.dataset.state !== c.state) { entry.el.className = "card " + c.state; entry.el.dataset.state = c.state; }
  set(f.state, label[c.state] || c.state);
  set(f.failureMode, c.failureMode); set(f.mode, c.mode.replace("_", " "));
  set(f.failures, String(c.failures)); set(f.trips, String(c.trips));
  const t = c.lastTransition;
  set(f.transition, t ? label[t.from] + " \\u2192 " + label[t.to] + " (" + t.reason.replace("_", " ") + ") at " + new Date(t.at).toLocaleTimeString() : "none yet");
  tick1(entry, now);
  showFleet(entry);
}
function tick1(entry, now) {
  const c = entry.card, f = entry.f;
  if (!c) return;
  if (c.state === "open" && c.retryAfterMillis === null) set(f.probe, "held open by an operator");
  else if (entry.deadline === null) set(f.probe, c.state === "half_open" ? "probing now" : "\\u2014");
  else set(f.probe, "in " + Math.max(0, Math.ceil((entry.deadline - now) / 1000)) + " s");
  set(f.since, "for " + duration(now - entry.since));
}
setInterval(() => { const now = performance.now(); for (const entry of cards.values()) tick1(entry, now); }, 250);
function showStats(entry, s) {
  const f = entry.f;
  if (s === undefined) {
    if (entry.stats === null) return;
    entry.stats = null;
    draw(f.spark.rate, ""); draw(f.spark.err, ""); set(f.max, "0");
    set(f.rate, "0"); set(f.errors, "\\u2014"); set(f.latency, "\\u2014"); set(f.outcomes, "none");
    return;
  }
  entry.stats = s;
  let max = 0;
  for (const v of s.rate) if (v > max) max = v;
  draw(f.spark.rate, points(s.rate, max)); draw(f.spark.err, points(s.errors, 100));
  set(f.max, String(max));
  set(f.rate, String(s.callsPerSecond));
  set(f.errors, s.errorPercent === null ? "\\u2014" : s.errorPercent + " %");
  set(f.latency, s.p50 === null ? "\\u2014" : "p50 " + s.p50 + " ms \\u00b7 p99 " + s.p99 + " ms");
  const o = s.outcomes;
  set(f.outcomes, "success " + o.success + " \\u00b7 failure " + o.failure + " \\u00b7 rejected " + o.rejected + " \\u00b7 timeout " + o.slow + " \\u00b7 ignored " + o.ignored);
}
function showFleet(entry) {
  const f = entry.f, name = entry.el.dataset.circuit;
  f.fleet.hidden = f.fleetTerm.hidden = fleet === null;
  if (fleet === null) return;
  const lease = fleet.leases[name], states = new Set(), chips = [];
  for (const r of fleet.replicas) {
    const state = r.circuits[name];
    if (state === undefined) continue;
    states.add(state);
    const chip = span("chip " + state + (lease === r.pod ? " lease" : ""));
    chip.dataset.pod = r.pod; chip.dataset.state = state;
    chip.textContent = r.pod + ": " + (label[state] || state) + (lease === r.pod ? " (probe lease)" : "");
    chips.push(chip);
  }
  const key = chips.map((c) => c.textContent).join("|") + (states.size > 1 ? "!" : "");
  if (entry.fleetKey === key) return;
  entry.fleetKey = key;
  const box = document.createElement("div"); box.className = "chips"; box.append(...chips);
  if (states.size > 1) { const d = span("disagree"); d.dataset.field = "disagree"; d.textContent = "replicas disagree"; box.append(d); }
  f.fleet.replaceChildren(box);
}
function policyText(k, p) {
  if (k === "bulkhead") return (p.minLimit === p.maxLimit ? "limit " + p.limit : "limit " + p.limit + " (" + p.minLimit + "\u2013" + p.maxLimit + ")") + " \u00b7 in flight " + p.inFlight + " \u00b7 queued " + p.queued + " \u00b7 rejected " + p.rejected;
  if (k === "retry") return "left " + p.available + " \u00b7 retries " + p.retries + " \u00b7 denied " + p.denied;
  return "sent " + p.sent + " \u00b7 won " + p.won + (p.denied > 0 ? " \u00b7 denied " + p.denied : "") + " \u00b7 after " + (p.delayMillis === null ? "\u2014" : Math.round(p.delayMillis) + " ms");
}
function showPolicies(entry, p) {
  for (const k of POLICIES) {
    const dd = entry.f[k], on = p !== undefined && p[k] !== undefined;
    dd.hidden = dd.previousSibling.hidden = !on;
    if (on) set(dd, policyText(k, p[k]));
  }
}
function showBacklog(b) {
  backlogPanel.hidden = b === undefined;
  if (b === undefined) return;
  const f = (k) => backlogPanel.querySelector('[data-field="' + k + '"]');
  if (b === null) { set(f("pending"), "unavailable"); set(f("oldest"), "\\u2014"); return; }
  backlogSeries.push(b.pending);
  if (backlogSeries.length > BACKLOG_POINTS) backlogSeries.shift();
  let max = 0;
  for (const v of backlogSeries) if (v > max) max = v;
  draw(backlogPanel.querySelector("polyline"), points(backlogSeries, max));
  set(f("pending"), String(b.pending));
  set(f("oldest"), b.pending === 0 ? "\\u2014" : duration(b.oldestPendingMillis));
  backlogPanel.classList.toggle("warn", b.pending > 0);
}
function showFleetPanel(v) {
  fleetPanel.hidden = v === undefined;
  fleet = v === undefined || v === null ? null : v;
  if (v === undefined) return;
  set(fleetPanel.querySelector("span"), v === null ? "unavailable" : v.group + ": " + v.replicas.length + " replica(s) (" + v.replicas.map((r) => r.pod).join(", ") + "), this one " + v.pod + (v.connected ? "" : ", not connected: local breakers"));
}
function addTransition(t) {
  const tr = document.createElement("tr");
  tr.dataset.entry = t.circuit; tr.dataset.reason = t.reason; tr.dataset.by = t.by;
  const cells = [new Date(t.at).toLocaleTimeString(), t.circuit, label[t.from] + " \\u2192 " + label[t.to], t.reason.replace("_", " "), t.by];
  for (let i = 0; i < cells.length; i++) {
    const td = document.createElement("td"); td.textContent = cells[i];
    if (i === 2) td.className = "to-" + t.to;
    tr.append(td);
  }
  timeline.prepend(tr);
  while (timeline.children.length > TIMELINE_ROWS) timeline.lastElementChild.remove();
}
async function act(name, action) {
  msg.textContent = action + " " + name + "\\u2026";
  try {
    const r = await fetch("admin/breakers/" + encodeURIComponent(name) + "/" + action, {
      method: "POST", headers: { authorization: "Bearer " + token, "content-type": "application/json" }, body: "{}"
    });
    msg.textContent = r.ok ? action + " " + name + ": done" : action + " " + name + ": refused (" + r.status + ")";
  } catch (e) { msg.textContent = action + " " + name + ": " + e.message; }
}
tokenInput.addEventListener("input", () => {
  token = tokenInput.value.trim();
  document.body.classList.toggle("admin-on", token !== "");
});
const source = new EventSource("events");
source.addEventListener("open", () => { conn.textContent = "live"; });
source.addEventListener("error", () => { conn.textContent = "reconnecting\\u2026"; });
source.addEventListener("snapshot", (e) => { for (const c of JSON.parse(e.data)) show(c); });
source.addEventListener("breaker", (e) => show(JSON.parse(e.data)));
source.addEventListener("timeline", (e) => { timeline.replaceChildren(); for (const t of JSON.parse(e.data)) addTransition(t); });
source.addEventListener("transition", (e) => addTransition(JSON.parse(e.data)));
source.addEventListener("stats", (e) => {
  const s = JSON.parse(e.data);
  showFleetPanel(s.fleet);
  for (const [name, entry] of cards) { showStats(entry, s.circuits[name]); showFleet(entry); showPolicies(entry, s.policies && s.policies[name]); }
  showBacklog(s.backlog);
});
`

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`

/** Only this page's own script and style run; it talks to its own origin only, and nothing may frame it. @internal */
export const csp = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(style)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

/** @internal */
export const renderPage = (service: string) =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(service)}: circuit breakers</title>
<style>${style}</style>
</head>
<body>
<header>
<h1>${escapeHtml(service)}: circuit breakers <span id="conn">connecting\u2026</span></h1>
<label>Admin token <input id="token" type="password" autocomplete="off" placeholder="to force open or reset"></label>
</header>
<div id="overview">
<div id="backlog" class="panel" hidden><strong>Outbox backlog</strong> <span data-field="pending">\u2014</span> pending, oldest <span data-field="oldest">\u2014</span>
<svg class="spark" viewBox="0 0 100 100" preserveAspectRatio="none"><polyline class="rate" vector-effect="non-scaling-stroke"></polyline></svg></div>
<div id="fleet" class="panel" hidden><strong>Fleet</strong> <span>\u2014</span></div>
</div>
<main id="cards"></main>
<p id="msg" role="status"></p>
<h2>Last transitions</h2>
<table><thead><tr><th>at</th><th>circuit</th><th>transition</th><th>reason</th><th>by</th></tr></thead><tbody id="timeline"></tbody></table>
<script>${script}</script>
</body>
</html>
`

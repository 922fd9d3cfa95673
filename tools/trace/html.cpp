// `html`: one self-contained page (no server, no network): the summary's
// tables, a tasklet table, and a zoomable canvas timeline with one row per
// worker.
//
// The timeline must pan smoothly with ten million run slices, so the page
// never walks all of them per frame. Each worker's slices are sorted by
// start, with a running maximum of their ends, so the slices in view are a
// binary search away. When more slices are in view than pixels can show,
// the page draws a level of detail instead: per worker, busy time summed
// into buckets (2^17 across the trace, then halved level by level), and each
// frame reads the level whose bucket is about one pixel wide, so a frame
// costs about the canvas's width per row whatever the zoom.
//
// Data goes in as one JSON object in a script element, times as integer
// nanoseconds from the trace's start, slice starts delta-coded to keep the
// file small.
#include <cinttypes>

#include "commands.hpp"

namespace taiga::trace::cli {

namespace {

constexpr const char* page_head = R"page(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>taiga trace</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
header{padding:8px 12px;background:#23395d;color:#fff}
header h1{font-size:16px;margin:0}
#help{font-size:12px;opacity:.85}
#timeline{position:relative;margin:8px 12px;border:1px solid #bbb;background:#fff}
canvas{display:block;width:100%;cursor:grab}
#detail{margin:0 12px;padding:8px;min-height:40px;background:#fff;border:1px solid #ddd;white-space:pre-wrap;font-family:monospace}
section{margin:12px}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;font-family:monospace}
th{background:#eef}
</style></head><body>
<header><h1 id="title">taiga trace</h1>
<div id="help">Wheel or +/- to zoom, drag or arrow keys to pan, double-click or 0 to reset, click a slice for its tasklet.</div></header>
<div id="timeline"><canvas id="canvas" height="200"></canvas></div>
<div id="detail">Click a run slice.</div>
<section><h2>Summary</h2><pre id="summary"></pre></section>
<section><h2>Tasklets (by run time)</h2><table id="tasklets"></table></section>
<script id="data" type="application/json">)page";

constexpr const char* page_tail = R"page(</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
document.getElementById("title").textContent = "taiga trace: " + D.file;
document.getElementById("summary").textContent = D.summary;
const total = Math.max(D.duration, 1);
const STATE = ["unknown", "created", "ready", "running", "parked", "done"];
const tasklets = new Map();
for (const t of D.tasklets) tasklets.set(t[0], t);
function fmt(ns) {
  if (ns < 1e3) return ns.toFixed(0) + " ns";
  if (ns < 1e6) return (ns / 1e3).toFixed(2) + " us";
  if (ns < 1e9) return (ns / 1e6).toFixed(2) + " ms";
  return (ns / 1e9).toFixed(3) + " s";
}
function colour(id) {
  const h = (id * 2654435761) % 360;
  return "hsl(" + h + ",65%,55%)";
}
// Per worker: starts, ends, tasklet ids, a running max of ends, and levels.
const BUCKETS = 1 << 17;  // Float32: 1 MiB per worker for all levels
const tracks = D.tracks.map(function (tr) {
  const n = tr.d.length;
  const s = new Float64Array(n), e = new Float64Array(n), emax = new Float64Array(n);
  let at = 0, m = 0;
  for (let i = 0; i < n; i++) {
    at += tr.s[i]; s[i] = at; e[i] = at + tr.d[i];
    m = Math.max(m, e[i]); emax[i] = m;
  }
  const width = total / BUCKETS;
  const levels = [new Float32Array(BUCKETS)];
  const l0 = levels[0];
  for (let i = 0; i < n; i++) {
    let a = s[i], b = e[i];
    let k = Math.min(BUCKETS - 1, Math.floor(a / width));
    while (a < b && k < BUCKETS) {
      const edge = (k + 1) * width, end = Math.min(b, edge);
      l0[k] += end - a; a = end; k++;
    }
  }
  while (levels[levels.length - 1].length > 1) {
    const p = levels[levels.length - 1], q = new Float32Array(Math.ceil(p.length / 2));
    for (let i = 0; i < p.length; i++) q[i >> 1] += p[i];
    levels.push(q);
  }
  return {worker: tr.w, s: s, e: e, emax: emax, t: tr.t, levels: levels, width: width};
});
const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const ROW = 28, AXIS = 22, LABEL = 70;
let view0 = 0, view1 = total;
function lowerBound(a, x) {
  let lo = 0, hi = a.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}
function resize() {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 800, h = AXIS + Math.max(1, tracks.length) * ROW + 4;
  canvas.style.height = h + "px";
  canvas.width = Math.floor(w * ratio); canvas.height = Math.floor(h * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  draw();
}
function draw() {
  const w = canvas.clientWidth || 800, h = AXIS + tracks.length * ROW + 4;
  const plot = Math.max(10, w - LABEL), span = view1 - view0, px = span / plot;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#444";
  const step = Math.pow(10, Math.floor(Math.log10(span / 5 || 1)));
  for (let t = Math.ceil(view0 / step) * step; t <= view1; t += step) {
    const x = LABEL + (t - view0) / px;
    ctx.fillStyle = "#ddd"; ctx.fillRect(x, AXIS - 4, 1, h);
    ctx.fillStyle = "#444"; ctx.fillText(fmt(t), x + 2, 12);
  }
  tracks.forEach(function (tr, row) {
    const y = AXIS + row * ROW;
    ctx.fillStyle = "#333"; ctx.fillText("worker " + tr.worker, 4, y + 17);
    ctx.fillStyle = "#f2f2f2"; ctx.fillRect(LABEL, y + 2, plot, ROW - 4);
    const first = lowerBound(tr.emax, view0), last = lowerBound(tr.s, view1);
    if (last - first <= 4 * plot) {
      for (let i = first; i < last; i++) {
        const x0 = LABEL + Math.max(0, (tr.s[i] - view0) / px);
        const x1 = LABEL + Math.min(plot, (tr.e[i] - view0) / px);
        ctx.fillStyle = colour(tr.t[i]);
        ctx.fillRect(x0, y + 3, Math.max(1, x1 - x0), ROW - 6);
      }
      return;
    }
    // Level of detail: the coarsest level whose bucket is at most a pixel.
    let lv = 0;
    while (lv + 1 < tr.levels.length && tr.width * Math.pow(2, lv + 1) <= px) lv++;
    const bw = tr.width * Math.pow(2, lv), level = tr.levels[lv];
    const k0 = Math.max(0, Math.floor(view0 / bw)), k1 = Math.min(level.length, Math.ceil(view1 / bw));
    for (let k = k0; k < k1; k++) {
      const busy = level[k] / bw;
      if (busy <= 0) continue;
      const x0 = LABEL + Math.max(0, (k * bw - view0) / px);
      const x1 = LABEL + Math.min(plot, ((k + 1) * bw - view0) / px);
      ctx.fillStyle = "rgba(35,90,180," + Math.min(1, 0.25 + busy).toFixed(3) + ")";
      ctx.fillRect(x0, y + 3, Math.max(1, x1 - x0), ROW - 6);
    }
  });
}
function timeAt(x) {
  const plot = Math.max(10, (canvas.clientWidth || 800) - LABEL);
  return view0 + (x - LABEL) / plot * (view1 - view0);
}
function zoom(factor, at) {
  let a = at - (at - view0) * factor, b = at + (view1 - at) * factor;
  if (b - a < 100) return;
  if (a < 0) { b -= a; a = 0; } if (b > total) { a -= b - total; b = total; }
  view0 = Math.max(0, a); view1 = Math.min(total, b); draw();
}
function pan(dt) {
  dt = Math.max(-view0, Math.min(total - view1, dt));
  view0 += dt; view1 += dt; draw();
}
canvas.addEventListener("wheel", function (ev) {
  ev.preventDefault();
  zoom(ev.deltaY > 0 ? 1.25 : 0.8, timeAt(ev.offsetX));
}, {passive: false});
let dragFrom = null, dragged = false;
canvas.addEventListener("mousedown", function (ev) { dragFrom = ev.offsetX; dragged = false; });
window.addEventListener("mouseup", function () { dragFrom = null; });
canvas.addEventListener("mousemove", function (ev) {
  if (dragFrom === null) return;
  const dx = ev.offsetX - dragFrom;
  if (Math.abs(dx) > 2) dragged = true;
  if (!dragged) return;
  pan(timeAt(dragFrom) - timeAt(ev.offsetX)); dragFrom = ev.offsetX;
});
canvas.addEventListener("dblclick", function () { view0 = 0; view1 = total; draw(); });
window.addEventListener("keydown", function (ev) {
  const mid = (view0 + view1) / 2, span = view1 - view0;
  if (ev.key === "+" || ev.key === "=") zoom(0.8, mid);
  else if (ev.key === "-") zoom(1.25, mid);
  else if (ev.key === "ArrowLeft") pan(-span / 10);
  else if (ev.key === "ArrowRight") pan(span / 10);
  else if (ev.key === "0") { view0 = 0; view1 = total; draw(); }
});
function describe(id) {
  const t = tasklets.get(id);
  if (!t) return "tasklet " + id;
  return "tasklet " + id + (t[1] ? " \"" + D.strings[t[1]] + "\"" : "") + ": " + STATE[t[3]] +
    "\nspawn site " + (D.strings[t[2]] || "-") + ", spawned at +" + fmt(t[8]) +
    " by " + (t[9] ? "tasklet " + t[9] : "a thread") +
    "\n" + t[4] + " runs, " + fmt(t[5]) + " running, " + t[6] + " parks, " + fmt(t[7]) + " parked";
}
canvas.addEventListener("click", function (ev) {
  if (dragged) return;
  const row = Math.floor((ev.offsetY - AXIS) / ROW);
  if (row < 0 || row >= tracks.length) return;
  const tr = tracks[row], t = timeAt(ev.offsetX);
  const px = (view1 - view0) / Math.max(10, (canvas.clientWidth || 800) - LABEL);
  // The slice under the pointer, or the nearest within two pixels.
  let i = lowerBound(tr.s, t + 2 * px) - 1, best = -1;
  if (i >= 0 && tr.e[i] >= t - 2 * px) best = i;
  const det = document.getElementById("detail");
  if (best < 0) { det.textContent = "No run slice there (worker " + tr.worker + ", +" + fmt(t) + ")."; return; }
  det.textContent = "worker " + tr.worker + ": run +" + fmt(tr.s[best]) + " for " +
    fmt(tr.e[best] - tr.s[best]) + "\n" + describe(tr.t[best]);
});
const table = document.getElementById("tasklets");
const head = table.insertRow();
for (const h of ["id", "state", "runs", "run time", "parks", "waited", "name", "spawn site"]) {
  const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
}
D.tasklets.slice().sort(function (a, b) { return b[5] - a[5]; }).slice(0, 500).forEach(function (t) {
  const r = table.insertRow();
  for (const v of [t[0], STATE[t[3]], t[4], fmt(t[5]), t[6], fmt(t[7]), D.strings[t[1]] || "-", D.strings[t[2]] || "-"])
    r.insertCell().textContent = v;
});
window.addEventListener("resize", resize);
resize();
// "#bench": draws 60 frames while zooming in and panning, writes the mean
// frame time into the page, then clicks the first row and copies what the
// detail panel says (the render CTest reads both with --dump-dom).
if (location.hash === "#bench") {
  const t0 = performance.now();
  for (let i = 0; i < 60; i++) {
    if (i < 30) zoom(0.8, total / 2); else pan((view1 - view0) / 7);
  }
  const out = document.createElement("div");
  out.id = "bench";
  out.textContent = "frame-ms " + ((performance.now() - t0) / 60).toFixed(3);
  // Then a click near the start of the first worker's row, as a user would.
  view0 = 0; view1 = total; draw();
  const rect = canvas.getBoundingClientRect();
  canvas.dispatchEvent(new MouseEvent("click", {clientX: rect.left + LABEL + 2,
                                                clientY: rect.top + AXIS + ROW / 2}));
  out.textContent += " click: " + document.getElementById("detail").textContent.replace(/\n/g, " | ");
  document.body.appendChild(out);
}
</script></body></html>
)page";

}  // namespace

int cmd_html(const context& c, std::ostream& out, std::ostream&) {
  const auto& m = c.m;
  std::ostringstream summary;
  write_summary(c, summary);
  out << page_head;
  out << "{\"file\":\"" << json_escape(c.path) << "\",\"duration\":" << (m.end - m.start)
      << ",\"summary\":\"" << json_escape(summary.str()) << "\",\"strings\":[";
  for (std::size_t i = 0; i < m.strings.size(); ++i)
    out << (i ? "," : "") << '"' << json_escape(m.strings[i]) << '"';
  out << "],\"tasklets\":[";
  bool first = true;
  for (const auto& [id, t] : m.tasklets) {
    out << (first ? "" : ",") << '[' << id << ',' << t.name << ',' << t.site << ','
        << static_cast<int>(t.state) << ',' << t.runs << ',' << t.run_time << ',' << t.parks << ','
        << t.wait_time << ',' << (t.spawn_time >= m.start ? t.spawn_time - m.start : 0) << ','
        << t.parent << ']';
    first = false;
  }
  out << "],\"tracks\":[";
  std::map<std::uint64_t, std::vector<std::uint32_t>> by_worker;
  for (std::uint32_t i = 0; i < m.slices.size(); ++i) by_worker[m.slices[i].worker].push_back(i);
  first = true;
  for (auto& [w, list] : by_worker) {
    std::sort(list.begin(), list.end(),
              [&](auto a, auto b) { return m.slices[a].start < m.slices[b].start; });
    out << (first ? "" : ",") << "{\"w\":" << w << ",\"s\":[";
    first = false;
    std::uint64_t at = m.start;
    for (std::size_t i = 0; i < list.size(); ++i) {
      out << (i ? "," : "") << m.slices[list[i]].start - at;
      at = m.slices[list[i]].start;
    }
    out << "],\"d\":[";
    for (std::size_t i = 0; i < list.size(); ++i)
      out << (i ? "," : "") << m.slices[list[i]].end - m.slices[list[i]].start;
    out << "],\"t\":[";
    for (std::size_t i = 0; i < list.size(); ++i)
      out << (i ? "," : "") << m.slices[list[i]].tasklet;
    out << "]}";
  }
  out << "]}";
  out << page_tail;
  return ok;
}

}  // namespace taiga::trace::cli

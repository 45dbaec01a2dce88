// dgm dashboard: plain JS + SVG. Polls the run state and re-renders when it changes.
"use strict";
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (x, d = 3) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
const POLL_MS = 3000;
let runKey = null, version = null, selected = null, lastState = null;

// The write token `dgm ui` printed (its URL carries it as ?token=); kept for this tab, dropped from the address bar.
const TOKEN = (() => {
  const url = new URL(location.href), t = url.searchParams.get("token");
  if (t) { sessionStorage.setItem("dgm-token", t); url.searchParams.delete("token"); history.replaceState(null, "", url); }
  return sessionStorage.getItem("dgm-token");
})();

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

// viridis-like ramp for scores in [0, max]
function colour(score, max) {
  if (score === null) return "#ddd";
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const t = Math.max(0, Math.min(1, score / (max || 1))) * (stops.length - 1);
  const i = Math.min(Math.floor(t), stops.length - 2), f = t - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c.join(",")})`;
}

// -- the archive tree: SVG in world coordinates inside one <g>, panned and zoomed by its transform ---------
const DX = 30, PAD = 24;
let zoom = { k: 1, x: 0, y: 0 }, fitted = false, treeVersion = null, extent = { w: 1, h: 1 }, dragged = false;

function renderTree(state) {
  const maxX = Math.max(0, ...state.nodes.map((n) => n.x)), maxD = Math.max(0, ...state.nodes.map((n) => n.depth));
  const maxScore = Math.max(0.01, ...state.nodes.map((n) => n.score || 0));
  // A wide tree (hundreds of leaves) gets taller levels, so the whole tree fills the panel when fitted.
  const box = $("#tree").getBoundingClientRect();
  const dy = Math.max(64, Math.min(400, ((maxX * DX) * (box.height / (box.width || 1))) / (maxD || 1)));
  const pos = Object.fromEntries(state.nodes.map((n) => [n.id, [PAD + n.x * DX, PAD + n.depth * dy]]));
  const onPath = new Set(state.lineage);
  const sizes = state.stage_sizes;
  extent = { w: 2 * PAD + maxX * DX, h: 2 * PAD + maxD * dy + 12 };
  let body = "";
  for (const n of state.nodes) {
    if (!n.parent || !pos[n.parent]) continue;
    const [x0, y0] = pos[n.parent], [x1, y1] = pos[n.id];
    const cls = ["edge", onPath.has(n.id) && onPath.has(n.parent) ? "best" : "", n.compiled ? "" : "faint"].join(" ");
    body += `<line class="${cls}" x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}"/>`;
  }
  for (const n of state.nodes) {
    const [x, y] = pos[n.id];
    const r = 7 + 3 * Math.max(0, sizes.indexOf(n.tasks));
    const cls = ["node", n.compiled ? "" : "faint", n.id === selected ? "selected" : "", n.approval || ""].join(" ");
    const gate = n.approval ? `, ${n.approval.replace("_", " ")}` : "";
    const tip = `${n.id}: score ${fmt(n.score)} on ${n.tasks} tasks, ${n.status}${gate}${n.title ? " — " + n.title : ""}`;
    const shape = n.id === state.best
      ? `<path d="${star(0, 0, r + 6)}" fill="${colour(n.score, maxScore)}"/>`
      : `<circle r="${r}" fill="${colour(n.score, maxScore)}"/>`;
    body += `<g class="${cls}" data-node="${esc(n.id)}" transform="translate(${x},${y})"><title>${esc(tip)}</title>` +
      `<g class="mark" data-r="${r}">${shape}<circle class="busy" r="${r + 5}" visibility="hidden"/></g>` +
      `<text y="${r + 12}" text-anchor="middle">${esc(n.id.length > 12 ? n.id.slice(-8) : n.id)}</text></g>`;
  }
  $("#tree").innerHTML = `<svg xmlns="http://www.w3.org/2000/svg"><g id="viewport">${body}</g></svg>`;
  for (const g of document.querySelectorAll("#tree .node")) {
    g.addEventListener("click", () => { if (!dragged) selectNode(g.dataset.node); });
  }
  if (!fitted) fitTree(); else applyZoom();
  markBusy(state);
}

function applyZoom() {
  const vp = $("#viewport");
  if (!vp) return;
  vp.setAttribute("transform", `translate(${zoom.x},${zoom.y}) scale(${zoom.k})`);
  // Zoomed far out, marks keep a visible size on screen and labels are hidden.
  for (const m of document.querySelectorAll("#tree .mark")) {
    const grow = Math.max(1, 3.5 / (Number(m.dataset.r) * zoom.k));
    m.setAttribute("transform", grow > 1 ? `scale(${grow})` : "");
  }
  $("#tree svg").classList.toggle("far", zoom.k < 0.55);
}

function fitTree() {
  const box = $("#tree").getBoundingClientRect();
  if (!box.width || !box.height || !$("#viewport")) return;  // nothing drawn yet: the first drawing fits
  const k = Math.min((box.width - 24) / extent.w, (box.height - 24) / extent.h, 1.5);  // 12px margin each side
  zoom = { k, x: (box.width - extent.w * k) / 2, y: Math.max(12, (box.height - extent.h * k) / 2) };
  fitted = true;
  applyZoom();
}

function zoomAt(factor, px, py) {
  const k = Math.max(0.01, Math.min(8, zoom.k * factor));
  zoom = { k, x: px - ((px - zoom.x) * k) / zoom.k, y: py - ((py - zoom.y) * k) / zoom.k };
  applyZoom();
}

function focusNode(id) {
  const g = document.querySelector(`#tree [data-node="${CSS.escape(id)}"]`);
  if (!g) return;
  const [x, y] = g.getAttribute("transform").match(/[-\d.]+/g).map(Number);
  const box = $("#tree").getBoundingClientRect();
  const k = Math.max(zoom.k, 1);
  zoom = { k, x: box.width / 2 - x * k, y: box.height / 2 - y * k };
  applyZoom();
}

function setUpPanZoom() {
  const el = $("#tree");
  el.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = el.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - box.left, e.clientY - box.top);
  }, { passive: false });
  let start = null;
  el.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    start = { px: e.clientX, py: e.clientY, x: zoom.x, y: zoom.y };
    dragged = false;
  });
  window.addEventListener("pointermove", (e) => {
    if (!start) return;
    const mx = e.clientX - start.px, my = e.clientY - start.py;
    if (!dragged && Math.hypot(mx, my) < 4) return;  // a click, not a drag
    dragged = true;
    el.classList.add("dragging");
    zoom = { k: zoom.k, x: start.x + mx, y: start.y + my };
    applyZoom();
  });
  window.addEventListener("pointerup", () => {
    start = null;
    el.classList.remove("dragging");
    setTimeout(() => { dragged = false; }, 0);  // the click that ends a drag is not a selection
  });
  const centre = () => { const b = el.getBoundingClientRect(); return [b.width / 2, b.height / 2]; };
  $("#zoom-in").addEventListener("click", () => zoomAt(1.5, ...centre()));
  $("#zoom-out").addEventListener("click", () => zoomAt(1 / 1.5, ...centre()));
  $("#zoom-reset").addEventListener("click", fitTree);
}

// Parents of attempts in flight get a dashed ring (their child is being made now).
function markBusy(state) {
  const busy = new Set(state.in_flight.map((a) => a.parent_id).filter(Boolean));
  for (const g of document.querySelectorAll("#tree .node")) {
    g.querySelector(".busy").setAttribute("visibility", busy.has(g.dataset.node) ? "visible" : "hidden");
  }
}

// -- in-flight attempts, progress and cost ------------------------------------------------------------
function ago(stamp) {
  if (!stamp) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(stamp)) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
}

function renderInFlight(state) {
  // A run that is not going any more leaves its unfinished attempts behind; a resume re-runs them.
  $("#now h3").textContent = state.status === "running" || !state.in_flight.length ? "In flight" : "Unfinished (re-run on resume)";
  if (!state.in_flight.length) {
    $("#in-flight").innerHTML = `<p class="hint">nothing in flight${state.status === "running" ? "" : ` (run ${esc(state.status)})`}</p>`;
    return;
  }
  const rows = state.in_flight.map((a) => {
    const phase = a.phase || "starting";
    const counts = a.phase_total ? ` ${a.phase_done || 0}/${a.phase_total}` : "";
    const bar = a.phase_total ? `<span class="phase-bar"><span style="width:${Math.round(100 * (a.phase_done || 0) / a.phase_total)}%"></span></span>` : "";
    const parent = a.parent_id ? `<a href="#" data-focus="${esc(a.parent_id)}">${esc(a.parent_id)}</a>` : "—";
    return `<tr data-attempt="${esc(a.attempt_id)}"><td>${esc(a.node)}</td><td>${parent}</td>` +
      `<td class="phase">${esc(phase + counts)}${bar}</td><td>${ago(a.phase_at || a.started_at)}</td></tr>`;
  }).join("");
  $("#in-flight").innerHTML = `<table><tr><th>attempt</th><th>parent</th><th>phase</th><th>for</th></tr>${rows}</table>`;
  for (const a of document.querySelectorAll("[data-focus]")) a.addEventListener("click", (e) => { e.preventDefault(); focusNode(a.dataset.focus); });
}

// A small line chart: series of [x, y] points on shared axes from 0.
function lineChart(series, { ymax, ylabel }) {
  const W = 300, H = 150, L = 34, B = 20, T = 8, R = 8;
  const xmax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[0])));
  const X = (x) => L + (x / xmax) * (W - L - R), Y = (y) => H - B - (y / ymax) * (H - B - T);
  let out = `<svg class="chart" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg">` +
    `<line class="axis" x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}"/><line class="axis" x1="${L}" y1="${T}" x2="${L}" y2="${H - B}"/>`;
  for (const f of [0, 0.5, 1]) out += `<text x="${L - 3}" y="${Y(f * ymax) + 3}" text-anchor="end">${ylabel(f * ymax)}</text>`;
  out += `<text x="${L}" y="${H - 6}">0</text><text x="${W - R}" y="${H - 6}" text-anchor="end">${xmax} children</text>`;
  for (const s of series) {
    if (!s.points.length) continue;
    out += `<path class="${s.cls}" d="M${s.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join("L")}"><title>${esc(s.name)}</title></path>`;
  }
  return out + "</svg>";
}

function renderCharts(state) {
  const step = (pts) => pts.flatMap(([x, y], i) => (i ? [[x, pts[i - 1][1]], [x, y]] : [[x, y]]));
  const best = state.progress.filter((p) => p.best_so_far !== null).map((p) => [p.iteration, p.best_so_far]);
  const mean = state.progress.filter((p) => p.archive_mean !== null).map((p) => [p.iteration, p.archive_mean]);
  $("#progress-chart").innerHTML = lineChart([{ name: "best so far", cls: "best", points: step(best) },
    { name: "archive mean", cls: "mean", points: mean }], { ymax: 1, ylabel: (y) => y.toFixed(1) });
  const cost = state.cost_series.map((c, i) => [i, c]);
  const top = Math.max(0.01, ...state.cost_series);
  $("#cost-chart").innerHTML = lineChart([{ name: "cumulative cost", cls: "cost", points: cost }],
    { ymax: top, ylabel: (y) => "$" + (top >= 10 ? y.toFixed(0) : y.toFixed(2)) });
}

function star(cx, cy, r) {
  const pts = [];
  for (let i = 0; i < 10; i++) {
    const a = -Math.PI / 2 + (i * Math.PI) / 5, rr = i % 2 ? r * 0.45 : r;
    pts.push(`${(cx + rr * Math.cos(a)).toFixed(1)},${(cy + rr * Math.sin(a)).toFixed(1)}`);
  }
  return "M" + pts.join("L") + "Z";
}

async function selectNode(id) {
  selected = id;
  for (const g of document.querySelectorAll("#tree .node")) g.classList.toggle("selected", g.dataset.node === id);
  showTab("node-page");
  const d = await getJSON(`/api/runs/${encodeURIComponent(runKey)}/nodes/${encodeURIComponent(id)}`);
  const interval = d.interval ? ` [${fmt(d.interval[0], 2)}–${fmt(d.interval[1], 2)}]` : "";
  const cost = Object.entries(d.cost).map(([p, c]) => `${p}: $${c.cost_usd.toFixed(4)} (${c.tokens} tok)`).join(", ") || "—";
  const diag = d.diagnosis ? Object.entries(d.diagnosis).map(([k, v]) =>
    `<dt>${esc(k)}</dt><dd>${esc(typeof v === "string" ? v : JSON.stringify(v))}</dd>`).join("") : "<dd>—</dd>";
  const base = `/api/runs/${encodeURIComponent(runKey)}/nodes/${encodeURIComponent(id)}/log/`;
  const rows = d.results.map((r) => `<tr class="${r.regression ? "regression" : ""}"><td>${esc(r.task)}</td><td>${r.stage}</td>` +
    `<td class="outcome-${esc(r.outcome)}">${esc(r.outcome)}${r.regression ? " (regression)" : ""}</td>` +
    `<td>${r.duration_s.toFixed(1)}s</td><td>${r.has_log ? `<a href="#" data-log="${esc(r.task)}">trajectory</a>` : ""}</td></tr>`).join("");
  $("#node-page").innerHTML = `
    <h2 id="node-title">${esc(d.id)}</h2>
    <dl class="kv">
      <dt>parent</dt><dd>${d.parent ? `<a href="#" data-goto="${esc(d.parent)}">${esc(d.parent)}</a>` : "—"}</dd>
      <dt>entry</dt><dd>${esc(d.entry || "—")}</dd>
      <dt>status</dt><dd>${esc(d.status)} · compiled ${d.compiled} · admitted ${d.admitted}</dd>
      ${d.approval ? `<dt>approval</dt><dd id="approval-state">${esc(d.approval.replace("_", " "))}${d.approval_reason ? ` (${esc(d.approval_reason)})` : ""}${approvalControls(d)}</dd>` : ""}
      <dt>score</dt><dd>${fmt(d.score)}${interval} (${d.stages.map((s) => `${s.resolved}/${s.total}` + (s.graded !== null ? ` (adaptive stop after ${s.graded} graded)` : "")).join(", ") || "unscored"})</dd>
      <dt>cost</dt><dd>${esc(cost)}</dd>
      ${d.error ? `<dt>error</dt><dd>${esc(d.error)}</dd>` : ""}
      ${d.has_self_modify_log ? `<dt>self-modification</dt><dd><a href="#" data-log="self_modify">trajectory</a></dd>` : ""}
    </dl>
    <h3>Diagnosis</h3><dl class="kv">${diag}</dl>
    <h3>Change vs parent</h3><div id="diff">${d.diff_html || "<p class='hint'>no code change recorded</p>"}</div>
    <h3>Task outcomes</h3><table id="outcomes"><tr><th>task</th><th>stage</th><th>outcome</th><th>time</th><th></th></tr>${rows}</table>`;
  for (const b of document.querySelectorAll("[data-decide]")) b.addEventListener("click", () => decideApproval(d.id, b.dataset.decide === "approve"));
  for (const a of document.querySelectorAll("[data-goto]")) a.addEventListener("click", (e) => { e.preventDefault(); selectNode(a.dataset.goto); });
  for (const a of document.querySelectorAll("[data-log]")) a.addEventListener("click", (e) => { e.preventDefault(); showLog(base + encodeURIComponent(a.dataset.log)); });
}

// The human approval gate: approve / reject a pending child (needs the write token `dgm ui` printed).
function approvalControls(d) {
  if (d.approval !== "pending_approval") return "";
  if (!TOKEN) return `<p class="hint">open the URL \`dgm ui\` printed (with ?token=) to decide here, or run \`dgm approve\`</p>`;
  return `<div class="approval"><input id="approval-reason" placeholder="reason (optional)">` +
    `<button data-decide="approve">approve</button><button data-decide="reject">reject</button><span id="approval-error"></span></div>`;
}

async function decideApproval(id, approve) {
  const reason = $("#approval-reason").value.trim() || null;
  const r = await fetch(`/api/runs/${encodeURIComponent(runKey)}/nodes/${encodeURIComponent(id)}/approval`, {
    method: "POST", headers: { "Content-Type": "application/json", "X-DGM-Token": TOKEN }, body: JSON.stringify({ approve, reason }),
  });
  if (!r.ok) { $("#approval-error").textContent = (await r.json()).detail || r.statusText; return; }
  version = null;  // redraw the tree with the decision
  await poll();
  await selectNode(id);
}

async function showLog(url) {
  const d = await getJSON(url);
  $("#log").innerHTML = d.blocks.map((b) => `<h4>${esc(b.heading)}</h4><pre>${esc(b.body)}</pre>`).join("");
  $("#log-dialog").showModal();
}

function renderRunPage(state) {
  $("#progress-figure").href = `/api/runs/${encodeURIComponent(runKey)}/progress.svg?v=${state.version}`;
  const spend = Object.entries(state.spend).map(([p, c]) => `<tr><td>${esc(p)}</td><td>$${c.toFixed(4)}</td><td>${state.tokens[p]}</td></tr>`).join("");
  $("#spend").innerHTML = `<tr><th>purpose</th><th>$</th><th>tokens</th></tr>${spend}<tr><th>total</th><th>$${state.total_cost.toFixed(4)}</th><th></th></tr>`;
  const byGen = {};
  for (const n of state.nodes) (byGen[n.generation] ||= []).push(n);
  const gens = state.generations.map((g) => `<tr><td>${g.generation}</td><td>${esc(g.started_at)}</td><td>${esc(g.finished_at || "running…")}</td>` +
    `<td>${esc(JSON.parse(g.parents).join(", "))}</td><td>${(byGen[g.generation] || []).map((n) => esc(n.id) + " " + fmt(n.score, 2)).join(", ")}</td></tr>`).join("");
  const flying = state.in_flight.map((a) => `<tr><td>${a.generation}</td><td colspan="4">in flight: ${esc(a.node)} from ${esc(a.parent_id || "—")}, ${esc(a.phase || "starting")}</td></tr>`).join("");
  $("#timeline").innerHTML = `<tr><th>gen</th><th>started</th><th>finished</th><th>parents</th><th>children</th></tr>${gens}${flying}`;
}

function showTab(id) {
  for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== id;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === id);
}

async function poll() {
  try {
    const state = await getJSON(`/api/runs/${encodeURIComponent(runKey)}/state`);
    $("#live").classList.remove("stale");
    if (state.version !== version) {
      version = state.version;
      lastState = state;
      const banner = $("#scripted-banner");
      banner.hidden = !state.scripted;
      banner.textContent = state.scripted ? `⚠ scripted model — test double, not an agent result (run ${state.run_id})` : "";
      const pending = state.nodes.filter((n) => n.approval === "pending_approval").length;
      $("#run-status").textContent = `${state.run_id}: ${state.status.replaceAll("_", " ")}, ${state.nodes.length} nodes, best ${state.best || "—"}, $${state.total_cost.toFixed(2)}` +
        (pending ? `, ${pending} waiting for approval` : "");
      if (state.tree_version !== treeVersion) {
        treeVersion = state.tree_version;
        renderTree(state);
      } else {
        markBusy(state);
      }
      renderInFlight(state);
      renderCharts(state);
      renderRunPage(state);
    }
  } catch (err) {
    $("#live").classList.add("stale");
    console.error(err);
  }
}

async function main() {
  const { runs } = await getJSON("/api/runs");
  const select = $("#run-select");
  select.innerHTML = runs.map((r) => `<option value="${esc(r.key)}">${esc(r.key)}${r.scripted ? " (scripted)" : ""}</option>`).join("");
  select.addEventListener("change", () => { runKey = select.value; version = null; treeVersion = null; fitted = false; selected = null; $("#node-page").innerHTML = "<p class='hint'>Click a node in the tree.</p>"; poll(); });
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  setUpPanZoom();
  runKey = runs[0].key;
  await poll();
  setInterval(poll, POLL_MS);
}
main();

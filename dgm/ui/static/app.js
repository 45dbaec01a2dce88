// dgm dashboard: plain JS + SVG. Polls the run state and re-renders when it changes.
"use strict";
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (x, d = 3) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));
const POLL_MS = 3000;
let runKey = null, version = null, selected = null, lastState = null;

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

function renderTree(state) {
  const dx = 56, dy = 70, pad = 30;
  const maxX = Math.max(0, ...state.nodes.map((n) => n.x)), maxD = Math.max(0, ...state.nodes.map((n) => n.depth));
  const maxScore = Math.max(0.01, ...state.nodes.map((n) => n.score || 0));
  const pos = Object.fromEntries(state.nodes.map((n) => [n.id, [pad + n.x * dx, pad + n.depth * dy]]));
  const onPath = new Set(state.lineage);
  const sizes = state.stage_sizes;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * pad + maxX * dx + 20}" height="${2 * pad + maxD * dy + 20}">`;
  for (const n of state.nodes) {
    if (!n.parent || !pos[n.parent]) continue;
    const [x0, y0] = pos[n.parent], [x1, y1] = pos[n.id];
    const cls = ["edge", onPath.has(n.id) && onPath.has(n.parent) ? "best" : "", n.compiled ? "" : "faint"].join(" ");
    svg += `<line class="${cls}" x1="${x0}" y1="${y0}" x2="${x1}" y2="${y1}"/>`;
  }
  for (const n of state.nodes) {
    const [x, y] = pos[n.id];
    const stage = Math.max(0, sizes.indexOf(n.tasks));
    const r = 7 + 3 * stage;
    const cls = ["node", n.compiled ? "" : "faint", n.id === selected ? "selected" : ""].join(" ");
    const tip = `${n.id}: score ${fmt(n.score)} on ${n.tasks} tasks, ${n.status}${n.title ? " — " + n.title : ""}`;
    const shape = n.id === state.best
      ? `<path d="${star(x, y, r + 6)}" fill="${colour(n.score, maxScore)}"/>`
      : `<circle cx="${x}" cy="${y}" r="${r}" fill="${colour(n.score, maxScore)}"/>`;
    svg += `<g class="${cls}" data-node="${esc(n.id)}"><title>${esc(tip)}</title>${shape}` +
      `<text x="${x}" y="${y + r + 12}" text-anchor="middle">${esc(n.id.length > 12 ? n.id.slice(-8) : n.id)}</text></g>`;
  }
  $("#tree").innerHTML = svg + "</svg>";
  for (const g of document.querySelectorAll("#tree .node")) g.addEventListener("click", () => selectNode(g.dataset.node));
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
  if (lastState) renderTree(lastState);
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
      <dt>score</dt><dd>${fmt(d.score)}${interval} (${d.stages.map((s) => `${s.resolved}/${s.total}`).join(", ") || "unscored"})</dd>
      <dt>cost</dt><dd>${esc(cost)}</dd>
      ${d.error ? `<dt>error</dt><dd>${esc(d.error)}</dd>` : ""}
      ${d.has_self_modify_log ? `<dt>self-modification</dt><dd><a href="#" data-log="self_modify">trajectory</a></dd>` : ""}
    </dl>
    <h3>Diagnosis</h3><dl class="kv">${diag}</dl>
    <h3>Change vs parent</h3><div id="diff">${d.diff_html || "<p class='hint'>no code change recorded</p>"}</div>
    <h3>Task outcomes</h3><table id="outcomes"><tr><th>task</th><th>stage</th><th>outcome</th><th>time</th><th></th></tr>${rows}</table>`;
  for (const a of document.querySelectorAll("[data-goto]")) a.addEventListener("click", (e) => { e.preventDefault(); selectNode(a.dataset.goto); });
  for (const a of document.querySelectorAll("[data-log]")) a.addEventListener("click", (e) => { e.preventDefault(); showLog(base + encodeURIComponent(a.dataset.log)); });
}

async function showLog(url) {
  const d = await getJSON(url);
  $("#log").innerHTML = d.blocks.map((b) => `<h4>${esc(b.heading)}</h4><pre>${esc(b.body)}</pre>`).join("");
  $("#log-dialog").showModal();
}

function renderRunPage(state) {
  $("#progress").src = `/api/runs/${encodeURIComponent(runKey)}/progress.svg?v=${state.version}`;
  const spend = Object.entries(state.spend).map(([p, c]) => `<tr><td>${esc(p)}</td><td>$${c.toFixed(4)}</td><td>${state.tokens[p]}</td></tr>`).join("");
  $("#spend").innerHTML = `<tr><th>purpose</th><th>$</th><th>tokens</th></tr>${spend}<tr><th>total</th><th>$${state.total_cost.toFixed(4)}</th><th></th></tr>`;
  const byGen = {};
  for (const n of state.nodes) (byGen[n.generation] ||= []).push(n);
  const gens = state.generations.map((g) => `<tr><td>${g.generation}</td><td>${esc(g.started_at)}</td><td>${esc(g.finished_at || "running…")}</td>` +
    `<td>${esc(JSON.parse(g.parents).join(", "))}</td><td>${(byGen[g.generation] || []).map((n) => esc(n.id) + " " + fmt(n.score, 2)).join(", ")}</td></tr>`).join("");
  const flying = state.in_flight.map((a) => `<tr><td>${a.generation}</td><td colspan="4">in flight: slot ${a.slot} from ${esc(a.parent_id)}</td></tr>`).join("");
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
      $("#run-status").textContent = `${state.run_id}: ${state.status}, ${state.nodes.length} nodes, best ${state.best || "—"}, $${state.total_cost.toFixed(2)}`;
      renderTree(state);
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
  select.addEventListener("change", () => { runKey = select.value; version = null; selected = null; $("#node-page").innerHTML = "<p class='hint'>Click a node in the tree.</p>"; poll(); });
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  runKey = runs[0].key;
  await poll();
  setInterval(poll, POLL_MS);
}
main();

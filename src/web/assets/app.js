// The minimega web console: one page, tables pushed over /ws/events.
"use strict";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const enc = encodeURIComponent;

const DEFAULT_COLUMNS = ["host", "name", "state", "uptime", "vcpus", "memory", "vlan", "ip", "vnc_port", "tags"];
const S = {
  me: null,
  ns: "",
  columns: [],
  rows: new Map(), // key "host/id" -> row (array of cells)
  trs: new Map(), // key -> <tr>
  selected: new Set(),
  sort: { col: "id", dir: 1 },
  filter: "",
  shown: null, // columns shown
  ws: null,
  pending: false,
};
window.mm = S; // for the browser tests and the curious

function col(name) { return S.columns.indexOf(name); }
function keyOf(row) { return row[col("host")] + "/" + row[col("id")]; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  if (r.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function post(path, data) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": S.me.csrf },
    body: JSON.stringify(data),
  });
}

// ---- VM table ----------------------------------------------------------

function shownColumns() {
  if (!S.shown) {
    const saved = localStorage.getItem("mm.columns");
    S.shown = saved ? JSON.parse(saved) : DEFAULT_COLUMNS;
  }
  return S.shown.filter((c) => S.columns.includes(c));
}

function buildColumnChooser() {
  const list = $("#column-list");
  list.textContent = "";
  for (const c of S.columns) {
    const box = el("input", { type: "checkbox", "data-col": c });
    box.checked = shownColumns().includes(c);
    box.addEventListener("change", () => {
      S.shown = S.columns.filter((x) => x === c ? box.checked : shownColumns().includes(x));
      localStorage.setItem("mm.columns", JSON.stringify(S.shown));
      rebuildTable();
    });
    const l = el("label");
    l.append(box, " " + c);
    list.append(l);
  }
}

function buildHead() {
  const tr = $("#vms thead tr");
  tr.textContent = "";
  const all = el("th", { class: "sel" });
  const box = el("input", { type: "checkbox", id: "select-all", title: "select all shown" });
  box.addEventListener("click", (ev) => {
    ev.stopPropagation();
    for (const [k, row] of S.rows) if (!S.trs.get(k).hidden) box.checked ? S.selected.add(k) : S.selected.delete(k);
    for (const [k, t] of S.trs) paintSelected(k, t);
    updateCount();
  });
  all.append(box);
  tr.append(all);
  for (const c of shownColumns()) {
    const th = el("th", { "data-col": c }, c);
    if (S.sort.col === c) th.className = S.sort.dir > 0 ? "sorted-asc" : "sorted-desc";
    th.addEventListener("click", () => {
      S.sort = { col: c, dir: S.sort.col === c ? -S.sort.dir : 1 };
      buildHead();
      order();
    });
    tr.append(th);
  }
  tr.append(el("th", {}, "console"));
}

function paintSelected(k, tr) {
  const on = S.selected.has(k);
  tr.classList.toggle("selected", on);
  tr.firstChild.firstChild.checked = on;
}

function fillRow(tr, row) {
  const k = keyOf(row);
  tr.textContent = "";
  tr.dataset.key = k;
  tr.dataset.name = row[col("name")];
  const sel = el("td", { class: "sel" });
  const box = el("input", { type: "checkbox" });
  box.addEventListener("change", () => {
    box.checked ? S.selected.add(k) : S.selected.delete(k);
    paintSelected(k, tr);
    updateCount();
  });
  sel.append(box);
  tr.append(sel);
  for (const c of shownColumns()) {
    const v = row[col(c)] ?? "";
    const td = el("td", { "data-col": c, title: v }, v);
    if (c === "state") td.className = "state-" + v;
    tr.append(td);
  }
  const links = el("td", { class: "links" });
  const state = row[col("state")];
  if (state === "RUNNING" || state === "PAUSED") {
    const name = enc(row[col("name")]);
    links.append(el("a", { href: `/vnc.html?vm=${name}&ns=${enc(S.ns)}`, target: "_blank", class: "vnc" }, "screen"), " ",
      el("a", { href: `/serial.html?vm=${name}&ns=${enc(S.ns)}`, target: "_blank", class: "serial" }, "serial"));
  }
  tr.append(links);
  paintSelected(k, tr);
}

function matches(row) {
  if (!S.filter) return true;
  return S.filter.split(/\s+/).every((term) => {
    const eq = term.indexOf("=");
    if (eq > 0) {
      const c = col(term.slice(0, eq));
      const want = term.slice(eq + 1).toLowerCase();
      return c >= 0 && String(row[c]).toLowerCase().includes(want);
    }
    const t = term.toLowerCase();
    return row.some((cell) => String(cell).toLowerCase().includes(t));
  });
}

function compare(a, b) {
  const c = col(S.sort.col);
  if (c < 0) return 0;
  const x = a[c], y = b[c];
  const nx = Number(x), ny = Number(y);
  const r = x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny) ? nx - ny : String(x).localeCompare(String(y));
  return r * S.sort.dir || String(a[0]).localeCompare(String(b[0]));
}

// Re-sorts and re-filters by moving the rows there are, once per frame.
function order() {
  if (S.pending) return;
  S.pending = true;
  requestAnimationFrame(() => {
    S.pending = false;
    const body = $("#vms tbody");
    const rows = [...S.rows.values()].sort(compare);
    const frag = document.createDocumentFragment();
    for (const row of rows) {
      const tr = S.trs.get(keyOf(row));
      tr.hidden = !matches(row);
      frag.append(tr);
    }
    body.append(frag);
    // When the first whole table was on screen (ms since navigation).
    if (!S.tableAt && S.rows.size) S.tableAt = performance.now();
    updateCount();
    if (!$("#tab-screens").hidden) screens();
  });
}

function updateCount() {
  let shown = 0;
  for (const tr of S.trs.values()) if (!tr.hidden) shown++;
  $("#count").textContent = `${S.rows.size} VMs, ${shown} shown, ${S.selected.size} selected`;
}

function rebuildTable() {
  buildHead();
  S.trs.clear();
  $("#vms tbody").textContent = "";
  for (const [k, row] of S.rows) {
    const tr = el("tr");
    fillRow(tr, row);
    S.trs.set(k, tr);
  }
  order();
}

function showErrors(errors) {
  $("#errors").textContent = (errors || []).map((e) => `${e.host}: ${e.error}`).join("\n");
}

function upsert(row) {
  const k = keyOf(row);
  S.rows.set(k, row);
  let tr = S.trs.get(k);
  if (!tr) { tr = el("tr"); S.trs.set(k, tr); }
  fillRow(tr, row);
}

function onPush(m) {
  if (m.t === "vms") {
    const newColumns = JSON.stringify(m.columns) !== JSON.stringify(S.columns);
    S.columns = m.columns;
    S.rows = new Map(m.rows.map((r) => [keyOf(r), r]));
    for (const k of [...S.selected]) if (!S.rows.has(k)) S.selected.delete(k);
    if (newColumns) buildColumnChooser();
    showErrors(m.errors);
    rebuildTable();
  } else if (m.t === "diff") {
    for (const row of m.upsert) upsert(row);
    for (const k of m.remove) {
      S.rows.delete(k);
      S.selected.delete(k);
      const tr = S.trs.get(k);
      if (tr) tr.remove();
      S.trs.delete(k);
    }
    showErrors(m.errors);
    order();
  } else if (m.t === "state") {
    const row = S.rows.get(m.key);
    if (!row) return;
    row[col("state")] = m.state;
    fillRow(S.trs.get(m.key), row);
    order();
  } else if (m.t === "hosts") {
    if (!$("#tab-hosts").hidden) loadTable("hosts", "#hosts");
    loadNamespaces();
  } else if (m.t === "error") {
    showErrors([{ host: "console", error: m.error }]);
  }
}

function connect() {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); }
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(`${proto}${location.host}/ws/events?ns=${enc(S.ns)}`);
  S.ws = ws;
  ws.onopen = () => $("#live").classList.remove("off");
  ws.onmessage = (ev) => {
    S.received = (S.received || 0) + ev.data.length;
    onPush(JSON.parse(ev.data));
  };
  ws.onclose = () => {
    $("#live").classList.add("off");
    if (S.ws === ws) setTimeout(connect, 2000);
  };
}

async function act(action) {
  const names = [...S.selected].map((k) => S.rows.get(k)).filter(Boolean).map((r) => r[col("name")]);
  if (action !== "flush" && !names.length) { showErrors([{ host: "console", error: "select VMs first" }]); return; }
  if (action === "kill" && names.length > 1 && !confirm(`Kill ${names.length} VMs?`)) return;
  try {
    const r = await post(`/api/vm/${action}`, { ns: S.ns, names });
    showErrors(r.errors);
  } catch (e) {
    showErrors([{ host: "console", error: e.message }]);
  }
}

// ---- other tabs ----------------------------------------------------------

function fillGrid(sel, t, extra) {
  const head = $(`${sel} thead tr`), body = $(`${sel} tbody`);
  head.textContent = "";
  body.textContent = "";
  for (const c of t.columns) head.append(el("th", {}, c));
  if (extra) head.append(el("th"));
  for (const row of t.rows) {
    const tr = el("tr");
    for (const c of row) tr.append(el("td", { title: c }, c));
    if (extra) tr.append(extra(row, t));
    body.append(tr);
  }
}

async function loadTable(kind, sel, query, extra) {
  try {
    const t = await api(`/api/${kind}?ns=${enc(S.ns)}${query || ""}`);
    fillGrid(sel, t, extra);
    return t;
  } catch (e) {
    showErrors([{ host: "console", error: e.message }]);
  }
}

async function loadNamespaces() {
  const t = await api("/api/namespaces");
  const c = t.columns.indexOf("namespace");
  const sel = $("#ns");
  sel.textContent = "";
  const names = t.rows.map((r) => r[c]);
  if (!names.includes(S.ns)) names.push(S.ns);
  for (const n of names) {
    const o = el("option", { value: n }, n);
    if (n === S.ns) o.selected = true;
    sel.append(o);
  }
}

async function network() {
  const t = await loadTable("vlans", "#vlans");
  const svg = $("#graph");
  svg.textContent = "";
  const vlanCol = col("vlan"), nameCol = col("name");
  if (vlanCol < 0) return;
  const vlans = new Map();
  for (const row of S.rows.values()) {
    const list = String(row[vlanCol]).replace(/^\[|\]$/g, "").split(",").map((s) => s.trim()).filter(Boolean);
    for (const v of list) {
      if (!vlans.has(v)) vlans.set(v, []);
      vlans.get(v).push(row[nameCol]);
    }
  }
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  let y = 20;
  const width = svg.clientWidth || 900;
  for (const [v, vms] of [...vlans].sort()) {
    const perRow = Math.max(1, Math.floor((width - 200) / 110));
    const rows = Math.ceil(vms.length / perRow);
    const cy = y + rows * 15;
    svg.append(mk("circle", { cx: 60, cy, r: 14, class: "vlan" }), mk("text", { x: 80, y: cy + 4 }, v));
    vms.forEach((name, i) => {
      const x = 200 + (i % perRow) * 110, vy = y + Math.floor(i / perRow) * 30 + 10;
      svg.append(mk("line", { x1: 74, y1: cy, x2: x - 6, y2: vy }), mk("circle", { cx: x, cy: vy, r: 6, class: "vm" }),
        mk("text", { x: x + 9, y: vy + 4 }, name));
    });
    y += Math.max(40, rows * 30 + 10);
  }
  svg.setAttribute("height", y + 10);
  if (!vlans.size) svg.append(mk("text", { x: 20, y: 30 }, "No VM is on a VLAN."));
}

async function files(path) {
  $("#file-path").value = path || "";
  await loadTable("files", "#files", `&path=${enc(path || "")}`, (row, t) => {
    const td = el("td");
    const dir = row[t.columns.indexOf("dir")], name = row[t.columns.indexOf("name")];
    if (dir) {
      const a = el("a", { href: "#files" }, "open");
      a.addEventListener("click", () => files(name));
      td.append(a);
    } else {
      td.append(el("a", { href: `/api/download?ns=${enc(S.ns)}&path=${enc(name)}` }, "download"));
    }
    return td;
  });
}

// A tile per running VM; tiles in view reload one at a time, so a big
// experiment costs the daemon one screenshot at a time.
const shots = { seen: new Set(), busy: false, next: 0 };
const observer = new IntersectionObserver((entries) => {
  for (const e of entries) e.isIntersecting ? shots.seen.add(e.target) : shots.seen.delete(e.target);
});

function screens() {
  const grid = $("#screens");
  const size = $("#shot-size").value;
  const want = [...S.rows.values()].filter((r) => r[col("state")] === "RUNNING" && matches(r)).map((r) => r[col("name")]).sort();
  const have = new Map([...grid.children].map((f) => [f.dataset.name, f]));
  for (const [name, f] of have) if (!want.includes(name)) { observer.unobserve(f); shots.seen.delete(f); f.remove(); }
  for (const name of want) {
    if (have.has(name)) continue;
    const f = el("figure", { "data-name": name });
    const a = el("a", { href: `/vnc.html?vm=${enc(name)}&ns=${enc(S.ns)}`, target: "_blank" });
    const img = el("img", { alt: name, "data-size": size });
    a.append(img);
    f.append(a, el("figcaption", {}, name));
    grid.append(f);
    observer.observe(f);
  }
}

function refreshShot() {
  if ($("#tab-screens").hidden || shots.busy || !shots.seen.size) return;
  const tiles = [...shots.seen];
  const f = tiles[shots.next++ % tiles.length];
  const img = f.querySelector("img");
  shots.busy = true;
  const done = () => { shots.busy = false; };
  const fresh = new Image();
  fresh.onload = () => { img.src = fresh.src; img.classList.add("loaded"); done(); };
  fresh.onerror = done;
  fresh.src = `/api/screenshot/${enc(f.dataset.name)}?ns=${enc(S.ns)}&size=${$("#shot-size").value}&t=${Date.now()}`;
}
setInterval(refreshShot, 250);

function showTab() {
  const tab = (location.hash || "#vms").slice(1);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "tab-" + tab;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("on", a.dataset.tab === tab);
  if (tab === "hosts") loadTable("hosts", "#hosts");
  if (tab === "network") network();
  if (tab === "files") files($("#file-path").value);
  if (tab === "screens") screens();
}

async function runCommand(ev) {
  ev.preventDefault();
  const line = $("#command").value;
  const out = $("#command-output");
  out.textContent += `${S.ns}$ ${line}\n`;
  try {
    const r = await post("/api/command", { ns: S.ns, command: line });
    out.textContent += r.text + (r.errors || []).map((e) => `E ${e.host}: ${e.error}\n`).join("");
  } catch (e) {
    out.textContent += `E ${e.message}\n`;
  }
  out.scrollTop = out.scrollHeight;
}

async function main() {
  S.me = await api("/api/whoami");
  S.ns = new URLSearchParams(location.search).get("ns") || S.me.namespace;
  document.body.classList.toggle("readonly", S.me.readonly);
  $("#user").textContent = S.me.user + (S.me.readonly ? " (read-only)" : "");
  $("#filter").addEventListener("input", (e) => { S.filter = e.target.value.trim(); order(); });
  for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => act(b.dataset.action));
  $("#ns").addEventListener("change", (e) => {
    S.ns = e.target.value;
    history.replaceState(null, "", `?ns=${enc(S.ns)}${location.hash}`);
    S.rows.clear();
    S.selected.clear();
    $("#screens").textContent = "";
    connect();
    showTab();
  });
  $("#logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": S.me.csrf } });
    location.href = "/login";
  });
  $("#file-go").addEventListener("click", () => files($("#file-path").value));
  $("#command-form").addEventListener("submit", runCommand);
  $("#shot-size").addEventListener("change", () => { $("#screens").textContent = ""; screens(); });
  window.addEventListener("hashchange", showTab);
  await loadNamespaces();
  connect();
  showTab();
}

main();

// portkit console: live updates (server-sent events) and the few actions a page offers.
// No framework and no build step: the server renders every page and escapes every value;
// this script swaps in server-rendered rows and updates numbers with textContent only.
"use strict";

const page = document.body.dataset.page;

function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

async function change(method, url, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status}`);
  return response.json();
}

// -- host view ----------------------------------------------------------------------------

function drawSpark(svg, history) {
  const line = svg.querySelector("polyline");
  if (!history || history.length < 2) { line.setAttribute("points", ""); return; }
  const values = history.map((h) => h[0]);
  const peak = Math.max(...values, 1);
  const step = 120 / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(27 - (v / peak) * 25).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
}

function updateHost(doc) {
  for (const app of doc.apps) {
    const card = document.querySelector(`article.app[data-app="${CSS.escape(app.name)}"]`);
    if (!card) continue;
    for (const dd of card.querySelectorAll("dd[data-c]")) {
      const value = app.counters[dd.dataset.c];
      const text = "bytes" in dd.dataset ? formatBytes(value) : String(value);
      if (dd.textContent !== text) {
        dd.textContent = text;
        dd.classList.remove("bump");
        void dd.offsetWidth; // restart the highlight animation
        dd.classList.add("bump");
      }
    }
    drawSpark(card.querySelector("svg.spark"), app.history);
  }
}

// -- inbox --------------------------------------------------------------------------------

async function reloadRows() {
  const inbox = document.getElementById("inbox");
  if (!inbox) return;
  const params = new URLSearchParams({ page: inbox.dataset.page || "1" });
  if (inbox.dataset.query) params.set("q", inbox.dataset.query);
  const response = await fetch(`/mail/rows?${params}`);
  if (response.ok) {
    const selected = document.querySelector("tr.selected");
    const keep = selected ? selected.dataset.id : null;
    inbox.innerHTML = await response.text(); // server-rendered, every value escaped
    if (keep) select(document.querySelector(`tr[data-id="${CSS.escape(keep)}"]`));
  }
}

function select(row) {
  for (const r of document.querySelectorAll("tr.selected")) r.classList.remove("selected");
  if (row) { row.classList.add("selected"); row.scrollIntoView({ block: "nearest" }); }
}

function setupInbox() {
  const inbox = document.getElementById("inbox");
  inbox.addEventListener("click", async (event) => {
    const row = event.target.closest("tr[data-id]");
    if (!row) return;
    if (event.target.closest("button.delete")) {
      await change("DELETE", "/api/v1/messages", { IDs: [row.dataset.id] });
      await reloadRows();
    } else if (event.target.closest("button.toggle-read")) {
      await change("PUT", "/api/v1/messages", { IDs: [row.dataset.id], Read: row.classList.contains("unread") });
      await reloadRows();
    } else if (!event.target.closest("a")) {
      select(row);
    }
  });
  document.getElementById("delete-all").addEventListener("click", async () => {
    if (window.confirm("Delete every message in the store?")) {
      await change("DELETE", "/api/v1/messages");
      await reloadRows();
    }
  });
  // Keyboard: j/k or arrows move, Enter opens, Delete removes the selected message.
  document.addEventListener("keydown", async (event) => {
    if (event.target.closest("input, textarea")) return;
    const rows = [...document.querySelectorAll("tr[data-id]")];
    if (!rows.length) return;
    const current = rows.findIndex((r) => r.classList.contains("selected"));
    if (event.key === "j" || event.key === "ArrowDown") {
      select(rows[Math.min(current + 1, rows.length - 1)]); event.preventDefault();
    } else if (event.key === "k" || event.key === "ArrowUp") {
      select(rows[Math.max(current - 1, 0)]); event.preventDefault();
    } else if (event.key === "Enter" && current >= 0) {
      window.location.href = `/mail/view/${encodeURIComponent(rows[current].dataset.id)}`;
    } else if (event.key === "Delete" && current >= 0) {
      await change("DELETE", "/api/v1/messages", { IDs: [rows[current].dataset.id] });
      await reloadRows();
    }
  });
}

// -- one message --------------------------------------------------------------------------

function setupMessage() {
  const article = document.querySelector("article.message");
  const id = article.dataset.id;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll("[role=tab]")) t.setAttribute("aria-selected", String(t === tab));
      for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${tab.dataset.tab}`;
    });
  }
  const allow = document.getElementById("allow-remote");
  if (allow) {
    allow.addEventListener("click", () => {
      document.getElementById("html-frame").src = `/mail/view/${encodeURIComponent(id)}/html?remote=1`;
      allow.disabled = true;
      allow.textContent = "Remote content loaded";
    });
  }
  article.querySelector(".mark-unread").addEventListener("click", async (event) => {
    await change("PUT", "/api/v1/messages", { IDs: [id], Read: false });
    event.target.textContent = "Marked unread";
  });
  article.querySelector(".delete-one").addEventListener("click", async () => {
    await change("DELETE", "/api/v1/messages", { IDs: [id] });
    window.location.href = "/mail";
  });
}

// -- live events --------------------------------------------------------------------------

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => live.classList.add("on"));
  source.addEventListener("error", () => live.classList.remove("on"));
  source.addEventListener("host", (event) => { if (page === "host") updateHost(JSON.parse(event.data)); });
  source.addEventListener("mail", (event) => {
    const state = JSON.parse(event.data);
    const badge = document.getElementById("unread-badge");
    if (badge) { badge.textContent = String(state.unread); badge.hidden = state.unread === 0; }
    const inbox = document.getElementById("inbox");
    if (inbox && String(state.generation) !== inbox.dataset.generation) {
      inbox.dataset.generation = String(state.generation);
      reloadRows();
    }
  });
}

// -- a saved scan: filter and sort the ports table ----------------------------------------

function setupScan() {
  const table = document.getElementById("ports");
  const filter = document.getElementById("filter");
  if (!table) return;
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of table.tBodies[0].rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !words.every((w) => text.includes(w));
    }
  });
  for (const [column, th] of [...table.tHead.rows[0].cells].entries()) {
    th.tabIndex = 0;
    const sort = () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const key = (row) => {
        const cell = row.cells[column];
        return th.dataset.sort === "num" ? Number(cell.dataset.value) : cell.textContent.trim().toLowerCase();
      };
      const rows = [...table.tBodies[0].rows].sort((a, b) => {
        const x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      table.tBodies[0].append(...rows);
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (event) => { if (event.key === "Enter") sort(); });
  }
}

if (page === "scan") setupScan();
if (page === "mail") setupInbox();
if (page === "message") setupMessage();
connect();

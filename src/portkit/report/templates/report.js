// Sorting, filtering and keyboard movement for the port tables; no network, no data
// outside the page. The page works without it (every row is shown, in port order).
(() => {
  "use strict";

  const visible = (rows) => rows.filter((row) => !row.hidden);

  function setup(section) {
    const table = section.querySelector("table.ports");
    if (!table) return;
    const tbody = table.tBodies[0];
    const rows = Array.from(tbody.rows);
    const texts = new Map(rows.map((row) => [row, row.textContent.toLowerCase()]));
    const filter = section.querySelector("input.filter");
    const stateFilter = section.querySelector("select.state-filter");
    const onlyUnexpected = section.querySelector("input.only-unexpected");
    const shown = section.querySelector(".shown");
    const none = section.querySelector(".none");

    function apply() {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      const state = stateFilter.value;
      const unexpected = onlyUnexpected !== null && onlyUnexpected.checked;
      let count = 0;
      for (const row of rows) {
        const text = texts.get(row);
        const keep =
          words.every((word) => text.includes(word)) &&
          (state === "" || row.dataset.state === state) &&
          (!unexpected || row.dataset.verdict === "unexpected");
        row.hidden = !keep;
        if (keep) count += 1;
      }
      shown.textContent = `${count} of ${rows.length} ports`;
      none.hidden = count !== 0;
      // Keep one visible row in the tab order (a roving tabindex).
      const first = visible(rows)[0];
      if (first && !rows.some((row) => row.tabIndex === 0 && !row.hidden)) {
        rows.forEach((row) => (row.tabIndex = -1));
        first.tabIndex = 0;
      }
    }
    filter.addEventListener("input", apply);
    stateFilter.addEventListener("change", apply);
    if (onlyUnexpected) onlyUnexpected.addEventListener("change", apply);
    filter.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && filter.value) {
        filter.value = "";
        apply();
        event.preventDefault();
      }
    });

    const headers = Array.from(table.tHead.rows[0].cells);
    headers.forEach((th, column) => {
      const button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = th.dataset.type === "number";
        const key = (row) => {
          const cell = row.cells[column];
          const raw = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
          if (!numeric) return raw.toLowerCase();
          return raw === "" ? Infinity : Number(raw);
        };
        const order = new Map(rows.map((row, index) => [row, index]));
        const sorted = Array.from(tbody.rows).sort((a, b) => {
          const ka = key(a);
          const kb = key(b);
          let c = 0;
          if (numeric) c = ka - kb;
          else c = ka < kb ? -1 : ka > kb ? 1 : 0;
          if (!ascending) c = -c;
          return c || order.get(a) - order.get(b);
        });
        tbody.append(...sorted);
      });
    });

    tbody.addEventListener("keydown", (event) => {
      const row = event.target.closest("tr");
      if (!row || event.target !== row) return;
      const list = visible(Array.from(tbody.rows));
      const at = list.indexOf(row);
      let next = null;
      if (event.key === "ArrowDown" || event.key === "j") next = list[at + 1];
      else if (event.key === "ArrowUp" || event.key === "k") next = list[at - 1];
      else if (event.key === "Home") next = list[0];
      else if (event.key === "End") next = list[list.length - 1];
      else if (event.key === "Enter" || event.key === " ") {
        const details = row.querySelector("details");
        if (details) details.open = !details.open;
        event.preventDefault();
        return;
      } else return;
      event.preventDefault();
      if (next) {
        row.tabIndex = -1;
        next.tabIndex = 0;
        next.focus();
      }
    });
    tbody.addEventListener("focusin", (event) => {
      const row = event.target.closest("tr");
      if (!row) return;
      rows.forEach((other) => (other.tabIndex = other === row ? 0 : -1));
    });
    apply();
  }

  document.querySelectorAll("section.host").forEach(setup);

  // "/" jumps to the first filter, as on many sites; not while typing in a field.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, select, textarea")) return;
    // The filter of the host being looked at (focus inside its section), else the first.
    const active = document.activeElement;
    const section = active && active.closest ? active.closest("section.host") : null;
    const filter = (section || document).querySelector("input.filter");
    if (filter) {
      event.preventDefault();
      filter.focus();
    }
  });

  // Printed, every port and every detail shows, whatever the screen's filter was.
  const reopened = [];
  window.addEventListener("beforeprint", () => {
    document.querySelectorAll("details:not([open])").forEach((details) => {
      details.open = true;
      reopened.push(details);
    });
  });
  window.addEventListener("afterprint", () => {
    reopened.splice(0).forEach((details) => (details.open = false));
  });
})();

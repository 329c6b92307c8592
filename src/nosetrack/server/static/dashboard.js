// Refreshes the counters from the public /api/stats endpoint once a second. Text only: nothing is parsed as HTML.
"use strict";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function render(stats) {
  document.getElementById("uptime").textContent = Math.floor(stats.uptime_s);
  document.getElementById("total").textContent = stats.requests_total;
  for (const node of document.querySelectorAll("[data-route]")) {
    const byStatus = stats.requests[node.dataset.route] || {};
    node.textContent = Object.values(byStatus).reduce((a, b) => a + b, 0);
  }
  const rows = [];
  for (const route of Object.keys(stats.requests).sort()) {
    for (const status of Object.keys(stats.requests[route]).sort()) {
      const tr = document.createElement("tr");
      if (status[0] === "4" || status[0] === "5") tr.className = "error";
      tr.append(cell(route), cell(status), cell(stats.requests[route][status]));
      rows.push(tr);
    }
  }
  document.querySelector("#routes tbody").replaceChildren(...rows);
}

async function refresh() {
  try {
    const response = await fetch("/api/stats", { cache: "no-store" });
    if (response.ok) render(await response.json());
  } catch (error) {
    // The server may be restarting; the next tick tries again.
  }
}

setInterval(refresh, 1000);

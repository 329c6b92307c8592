// The live part of the dashboard: polls the public /api/stats once a second and redraws counters and charts.
// Everything from the server is set with textContent: nothing is ever parsed as HTML.

import { apiFetch } from "./api.js";
import { byId as $, element } from "./dom.js";
import { barChart, lineChart, pointIndex } from "./charts.js";

const css = getComputedStyle(document.documentElement);
const colour = (name) => css.getPropertyValue(name).trim();

function formatMs(ms) {
  if (ms == null) return "–";
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function formatDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function renderHeader(stats) {
  $("version").textContent = stats.version;
  const others = stats.models.length > 1 ? ` +${stats.models.length - 1} more` : "";
  $("model").replaceChildren(`${stats.model.name} `, element("span", stats.model.version + others, "muted"));
  $("workers").textContent = stats.workers;
  $("model-instances").textContent = stats.model_instances;
  $("uptime").textContent = formatDuration(stats.uptime_s);
  $("uptime").dataset.seconds = Math.floor(stats.uptime_s);
}

function renderKpis(stats) {
  const recent = stats.timeline.recent;
  const rate = recent.requests_per_s;
  $("kpi-rate").textContent = rate >= 10 ? rate.toFixed(0) : rate.toFixed(2);
  $("kpi-p50").textContent = formatMs(recent.p50_ms);
  $("kpi-p90").textContent = formatMs(recent.p90_ms);
  $("kpi-p99").textContent = formatMs(recent.p99_ms);
  const errors = $("kpi-errors");
  errors.textContent = recent.requests ? `${recent.errors} (${((100 * recent.errors) / recent.requests).toFixed(1)}%)` : "0";
  errors.classList.toggle("bad", recent.errors > 0);
  $("total").textContent = stats.requests_total;
}

function renderRoutes(requests) {
  for (const node of document.querySelectorAll("[data-route]")) {
    const byStatus = requests[node.dataset.route] || {};
    node.textContent = Object.values(byStatus).reduce((a, b) => a + b, 0);
  }
  const rows = Object.keys(requests)
    .sort()
    .map((route) => {
      const byStatus = requests[route];
      const statuses = Object.keys(byStatus).sort();
      const row = element("tr", null, statuses.some((s) => s[0] === "4" || s[0] === "5") ? "error" : "");
      const chips = element("td");
      for (const status of statuses) {
        const failed = status[0] === "4" || status[0] === "5";
        chips.append(element("span", `${status} × ${byStatus[status]}`, failed ? "status error" : "status ok"));
      }
      const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
      row.append(element("td", route), element("td", total, "num"), chips);
      return row;
    });
  document.querySelector("#routes tbody").replaceChildren(...rows);
}

function meanMs(duration) {
  return duration.count ? formatMs((1000 * duration.seconds) / duration.count) : "–";
}

function renderModels(models, totals) {
  const rows = models.map((model) => {
    const row = element("tr");
    const own = totals[model.name];
    row.append(
      element("td", model.name),
      element("td", model.version, "muted"),
      element("td", own.success.count, "num"),
      element("td", own.fail.count, "num"),
      element("td", meanMs(own.queue), "num"),
      element("td", meanMs(own.decode), "num"),
      element("td", meanMs(own.inference), "num"),
    );
    return row;
  });
  document.querySelector("#models tbody").replaceChildren(...rows);
}

// Which second the pointer is over, per chart (null: none).
const hovered = { rate: null, latency: null };

function clock(series, index) {
  const second = series.end - (series.requests.length - 1 - index);
  return new Date(second * 1000).toLocaleTimeString();
}

function renderCharts(series) {
  const answered = series.requests.map((n, i) => n - series.errors[i]);
  const rateHover = hovered.rate == null ? null : {
    index: hovered.rate,
    lines: [clock(series, hovered.rate), `${series.requests[hovered.rate]} requests`, `${series.errors[hovered.rate]} errors`],
  };
  barChart($("chart-rate"), [
    { values: answered, colour: colour("--ok") },
    { values: series.errors, colour: colour("--err") },
  ], rateHover);
  const i = hovered.latency;
  const latencyHover = i == null ? null : {
    index: i,
    lines: series.p50_ms[i] == null
      ? [clock(series, i), "no requests"]
      : [clock(series, i), `p50 ${formatMs(series.p50_ms[i])}`, `p90 ${formatMs(series.p90_ms[i])}`, `p99 ${formatMs(series.p99_ms[i])}`],
  };
  lineChart($("chart-latency"), [
    { values: series.p50_ms, colour: colour("--p50") },
    { values: series.p90_ms, colour: colour("--p90") },
    { values: series.p99_ms, colour: colour("--p99") },
  ], latencyHover);
}

function followPointer(canvas, key, latest) {
  canvas.addEventListener("mousemove", (event) => {
    const series = latest();
    if (!series) return;
    hovered[key] = pointIndex(canvas, event, series.requests.length);
    renderCharts(series);
  });
  canvas.addEventListener("mouseleave", () => {
    hovered[key] = null;
    if (latest()) renderCharts(latest());
  });
}

export function startStats(onStats) {
  const live = $("live");
  let last = null;
  async function refresh() {
    try {
      const response = await apiFetch("/api/stats", { cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      last = await response.json();
      renderHeader(last);
      renderKpis(last);
      renderRoutes(last.requests);
      renderModels(last.models, last.model_totals);
      renderCharts(last.timeline.series);
      live.textContent = "live";
      live.className = "pill live";
      onStats(last);
    } catch (error) {
      live.textContent = "unreachable";
      live.className = "pill down";
    }
  }
  const latest = () => last && last.timeline.series;
  followPointer($("chart-rate"), "rate", latest);
  followPointer($("chart-latency"), "latency", latest);
  refresh();
  setInterval(refresh, 1000);
  window.addEventListener("resize", () => latest() && renderCharts(latest()));
}

// Thumbnails of the latest predictions from /api/recent, when the server keeps them (--show-recent N).

import { apiFetch } from "./api.js";
import { byId as $ } from "./dom.js";

const JPEG_DATA_URL = "data:image/jpeg;base64,";

function ago(seconds) {
  return seconds < 60 ? `${Math.max(0, Math.round(seconds))} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function figure(frame) {
  const node = document.createElement("figure");
  const image = document.createElement("img");
  image.alt = `${frame.faces} face(s), ${frame.route}`;
  if (typeof frame.jpeg === "string" && frame.jpeg.startsWith(JPEG_DATA_URL)) image.src = frame.jpeg;
  const caption = document.createElement("figcaption");
  caption.dataset.time = frame.time;
  node.dataset.sequence = frame.sequence;
  node.dataset.faces = frame.faces;
  node.append(image, caption);
  return node;
}

export function startRecent() {
  const panel = $("recent");
  const grid = $("recent-frames");
  let capacity = Number(panel.dataset.capacity) || 0;
  let newest = 0;
  let busy = false;

  function captions() {
    const now = Date.now() / 1000;
    for (const node of grid.children) {
      const caption = node.querySelector("figcaption");
      const frame = node.frameDetails;
      const faces = `${frame.faces} face${frame.faces === 1 ? "" : "s"}`;
      caption.textContent = `${frame.route} · ${faces}\n${Math.round(frame.latency_ms)} ms · ${ago(now - frame.time)}`;
    }
  }

  async function refresh() {
    if (!capacity || busy) return;
    busy = true;
    try {
      const response = await apiFetch(`/api/recent?after=${newest}`, { cache: "no-store" });
      if (!response.ok) return;
      const body = await response.json();
      const fresh = body.frames.map((frame) => {
        const node = figure(frame);
        node.frameDetails = frame;
        return node;
      });
      if (body.frames.length) newest = body.frames[0].sequence;
      grid.prepend(...fresh);
      while (grid.children.length > capacity) grid.lastElementChild.remove();
      captions();
    } finally {
      busy = false;
    }
  }

  // Called with each /api/stats answer: the capacity tells whether the server keeps frames at all.
  return function onStats(stats) {
    if (stats.show_recent !== capacity) {
      capacity = stats.show_recent;
      panel.dataset.capacity = capacity;
      $("recent-off").hidden = capacity > 0;
      $("recent-note").textContent = capacity ? `the last ${capacity}, in memory only` : "off";
    }
    refresh();
  };
}

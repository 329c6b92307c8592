// "Try it": an image from the user's disk goes to POST /v1/nose; the page draws the answer over the picture.

import { apiFetch } from "./api.js";
import { byId as $ } from "./dom.js";
import { drawFaces, errorMessage, markersAttribute } from "./faces.js";

const LONGEST_SIDE = 1280;

function showError(text) {
  const summary = $("try-summary");
  summary.textContent = text;
  summary.className = "summary error";
  $("try-canvas").hidden = true;
}

async function predict(file) {
  const summary = $("try-summary");
  const canvas = $("try-canvas");
  summary.className = "summary";
  summary.textContent = `Sending ${file.name} (${Math.round(file.size / 1024)} kB)…`;
  const started = performance.now();
  let response;
  try {
    response = await apiFetch("/v1/nose", {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
  } catch (error) {
    showError(`The server could not be reached: ${error.message}`);
    return;
  }
  const roundTrip = performance.now() - started;
  if (!response.ok) {
    showError(`${file.name}: ${await errorMessage(response)}`);
    $("try-details").hidden = true;
    return;
  }
  const answer = await response.json();
  $("try-json").textContent = JSON.stringify(answer, null, 2);
  $("try-details").hidden = false;

  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    showError(`${file.name}: the server read it, but this browser cannot show it.`);
    return;
  }
  const scale = Math.min(1, LONGEST_SIDE / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  // The server's coordinates are in the pixels it decoded; the browser may have decoded another size.
  const markers = drawFaces(context, answer.faces, canvas.width / answer.image.width);
  canvas.dataset.noses = markersAttribute(markers);
  canvas.hidden = false;
  const faces = answer.faces.length;
  summary.textContent =
    `${file.name}: ${faces ? `${faces} face${faces === 1 ? "" : "s"}` : "no face"} · ` +
    `${answer.image.width}×${answer.image.height} · ${answer.latency_ms.toFixed(1)} ms in the server, ` +
    `${Math.round(roundTrip)} ms round trip`;
}

export function startTryIt() {
  const drop = $("try-drop");
  const input = $("try-file");
  input.addEventListener("change", () => input.files.length && predict(input.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) predict(file);
  });
}

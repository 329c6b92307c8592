// "Webcam": frames from getUserMedia go to POST /v1/nose one at a time; the nose is drawn over the live video,
// with a short trail, the way a hands-free mouse would follow it.

import { apiFetch } from "./api.js";
import { byId as $ } from "./dom.js";
import { drawFaces, errorMessage, markersAttribute, NOSE_COLOUR } from "./faces.js";

const FRAME_WIDTH = 640;
const TRAIL = 24;
const WINDOW_MS = 2000;

export function startWebcam() {
  const button = $("webcam-toggle");
  const video = $("webcam-video");
  const overlay = $("webcam-overlay");
  const stage = $("webcam-stage");
  const message = $("webcam-message");
  const panel = $("webcam");
  const grab = document.createElement("canvas");
  let stream = null;
  let answered = [];
  let trail = [];
  let frames = 0;

  $("webcam-mirror").addEventListener("change", (event) => stage.classList.toggle("mirrored", event.target.checked));

  function readouts(roundTrip, serverMs) {
    const now = performance.now();
    answered = answered.filter((t) => now - t < WINDOW_MS);
    const fps = answered.length > 1 ? ((answered.length - 1) * 1000) / (answered.at(-1) - answered[0]) : 0;
    $("webcam-fps").textContent = fps.toFixed(1);
    $("webcam-latency").textContent = `${Math.round(roundTrip)} ms`;
    $("webcam-server").textContent = `${serverMs.toFixed(1)} ms`;
    panel.dataset.fps = fps.toFixed(2);
  }

  function draw(answer) {
    const context = overlay.getContext("2d");
    context.clearRect(0, 0, overlay.width, overlay.height);
    const scale = overlay.width / answer.image.width;
    if (answer.detected) trail.push({ x: answer.nose.x * scale, y: answer.nose.y * scale });
    trail = trail.slice(-TRAIL);
    context.strokeStyle = NOSE_COLOUR;
    context.lineCap = "round";
    for (let i = 1; i < trail.length; i += 1) {
      context.globalAlpha = i / trail.length;
      context.lineWidth = 1 + (4 * i) / trail.length;
      context.beginPath();
      context.moveTo(trail[i - 1].x, trail[i - 1].y);
      context.lineTo(trail[i].x, trail[i].y);
      context.stroke();
    }
    context.globalAlpha = 1;
    const markers = drawFaces(context, answer.faces, scale, { labels: false });
    overlay.dataset.noses = markersAttribute(markers);
  }

  async function sendFrame() {
    const width = Math.min(FRAME_WIDTH, video.videoWidth);
    const height = Math.round((video.videoHeight * width) / video.videoWidth);
    if (grab.width !== width || grab.height !== height) {
      grab.width = overlay.width = width;
      grab.height = overlay.height = height;
    }
    grab.getContext("2d").drawImage(video, 0, 0, width, height);
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.8));
    const started = performance.now();
    const response = await apiFetch("/v1/nose", {
      method: "POST",
      body: blob,
      headers: { "Content-Type": "image/jpeg" },
    });
    if (response.status === 503) {
      // Overloaded: skip this frame and wait as long as the server asks, rather than stop.
      const seconds = Number(response.headers.get("Retry-After")) || 1;
      message.textContent = `The server is busy; trying again in ${seconds} s.`;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    const answer = await response.json();
    const roundTrip = performance.now() - started;
    if (!stream) return;
    frames += 1;
    answered.push(performance.now());
    draw(answer);
    readouts(roundTrip, answer.latency_ms);
    panel.dataset.frames = frames;
    panel.dataset.detected = Number(panel.dataset.detected || 0) + (answer.detected ? 1 : 0);
  }

  // Resolves when the video shows a frame it has not shown before (or, in older browsers, at the next paint).
  function nextVideoFrame() {
    return new Promise((resolve) =>
      video.requestVideoFrameCallback ? video.requestVideoFrameCallback(() => resolve()) : requestAnimationFrame(resolve),
    );
  }

  // One frame in flight at a time, the next one as soon as the answer is drawn and the video has moved on.
  async function loop() {
    while (stream) {
      if (video.readyState >= 2 && video.videoWidth) {
        try {
          await sendFrame();
        } catch (error) {
          stop(`Stopped: ${error.message}`);
          return;
        }
      }
      await nextVideoFrame();
    }
  }

  function stop(reason = "Camera off.") {
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    message.textContent = reason;
    button.textContent = "Start camera";
    button.className = "";
  }

  async function start() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      message.textContent = "This browser offers no camera here (a camera needs https or localhost).";
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      message.textContent = `No camera: ${error.message}`;
      return;
    }
    stage.hidden = false;
    video.srcObject = stream;
    await video.play();
    button.textContent = "Stop camera";
    button.className = "stop";
    message.textContent = "Tracking: each frame is sent as a JPEG, the nose drawn when its answer comes back.";
    trail = [];
    loop();
  }

  button.addEventListener("click", () => (stream ? stop() : start()));
}

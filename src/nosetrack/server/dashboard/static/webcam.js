// "Webcam": the camera's frames go over one WebSocket (WS /v1/track) as JPEGs, each after a {"timestamp"}
// message with its capture time; the tracker's smoothed nose is drawn with a trail over the live video, this
// frame's raw nose as a ring around it. Two frames are in flight at most: the server always has the next one
// and never has to drop one for a newer; camera frames that come while two are out are skipped here.

import { apiFetch, apiKey } from "./api.js";
import { byId as $ } from "./dom.js";
import { drawFaces, markersAttribute, NOSE_COLOUR } from "./faces.js";

const FRAME_WIDTH = 640;
const IN_FLIGHT = 2;
const TRAIL = 24;
const WINDOW_MS = 2000;
const RAW_COLOUR = "#ffd23f";

// A browser cannot put headers on a WebSocket: the key goes as a second subprotocol, in unpadded base64url.
function subprotocols() {
  const key = apiKey();
  if (!key) return ["nosetrack"];
  const bytes = new TextEncoder().encode(key);
  const base64 = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["nosetrack", `nosetrack.bearer.${base64}`];
}

function streamUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/track`;
}

const RESUMABLE = new Set([1001, 1006, 1012]);
const RESUME_ATTEMPTS = 8;

export function startWebcam() {
  const button = $("webcam-toggle");
  const video = $("webcam-video");
  const overlay = $("webcam-overlay");
  const stage = $("webcam-stage");
  const message = $("webcam-message");
  const panel = $("webcam");
  const grab = document.createElement("canvas");
  let camera = null;
  let socket = null;
  let sentAt = new Map(); // frame number -> when it was sent (the server numbers frames as they arrive)
  let sent = 0;
  let answered = [];
  let trail = [];
  // sent: camera frames sent; busy: camera frames skipped because two were unanswered (the tests read both).
  let counts = { frames: 0, detected: 0, dropped: 0, sent: 0, busy: 0 };
  let resumes = 0;

  $("webcam-mirror").addEventListener("change", (event) => stage.classList.toggle("mirrored", event.target.checked));

  function readouts(roundTrip, serverMs) {
    const now = performance.now();
    answered = answered.filter((t) => now - t < WINDOW_MS);
    const fps = answered.length > 1 ? ((answered.length - 1) * 1000) / (answered.at(-1) - answered[0]) : 0;
    $("webcam-fps").textContent = fps.toFixed(1);
    $("webcam-latency").textContent = `${Math.round(roundTrip)} ms`;
    $("webcam-server").textContent = `${serverMs.toFixed(1)} ms`;
    $("webcam-dropped").textContent = counts.dropped;
    panel.dataset.fps = fps.toFixed(2);
    Object.assign(panel.dataset, counts);
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
    context.strokeStyle = RAW_COLOUR;
    context.lineWidth = 2;
    for (const face of answer.faces) {
      context.beginPath();
      context.arc(face.nose_raw.x * scale, face.nose_raw.y * scale, Math.max(7, overlay.width / 60), 0, 2 * Math.PI);
      context.stroke();
    }
    overlay.dataset.noses = markersAttribute(markers);
  }

  function onAnswer(answer) {
    const number = answer.error ? answer.error.frame : answer.frame;
    if (number === undefined) {
      // About the stream rather than a frame (an idle close, a refused message): say it.
      if (answer.error) message.textContent = `${answer.error.status}: ${answer.error.message}`;
      return;
    }
    const roundTrip = performance.now() - sentAt.get(number);
    for (const [n] of sentAt) if (n <= number) sentAt.delete(n); // answered, or dropped for a newer one
    counts.dropped += answer.dropped || 0;
    if (answer.error) {
      message.textContent = `Frame ${number}: ${answer.error.status} ${answer.error.message}`;
      return;
    }
    counts.frames += 1;
    counts.detected += answer.detected ? 1 : 0;
    answered.push(performance.now());
    draw(answer);
    readouts(roundTrip, answer.latency_ms);
  }

  async function sendFrame() {
    const width = Math.min(FRAME_WIDTH, video.videoWidth);
    const height = Math.round((video.videoHeight * width) / video.videoWidth);
    if (grab.width !== width || grab.height !== height) {
      grab.width = overlay.width = width;
      grab.height = overlay.height = height;
    }
    const captured = performance.now();
    grab.getContext("2d").drawImage(video, 0, 0, width, height);
    sentAt.set(sent, captured);
    sent += 1;
    counts.sent = sent;
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.8));
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ timestamp: captured / 1000 }));
    socket.send(blob);
  }

  // Each new camera frame is sent unless two are still unanswered.
  function onVideoFrame() {
    if (!camera) return;
    if (socket && socket.readyState === WebSocket.OPEN && video.videoWidth) {
      if (sentAt.size < IN_FLIGHT) sendFrame();
      else counts.busy += 1;
    }
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onVideoFrame);
    else requestAnimationFrame(onVideoFrame);
  }

  function openSocket() {
    return new Promise((resolve, reject) => {
      const opening = new WebSocket(streamUrl(), subprotocols());
      opening.binaryType = "arraybuffer";
      opening.onopen = () => resolve(opening);
      opening.onerror = () => reject(new Error("the stream could not be opened"));
      opening.onmessage = (event) => onAnswer(JSON.parse(event.data));
    });
  }

  // A stream the server ends by going away (a worker or replica stopping: 1001, 1012) or that is lost (1006)
  // opens again, as the Python clients do; the camera goes on, and the new stream numbers frames from 0.
  function watch(opened) {
    opened.onclose = (event) => {
      if (socket !== opened) return; // stopped here on purpose
      if (camera && RESUMABLE.has(event.code)) resume(event.code);
      else stop(`The stream closed${event.reason ? `: ${event.reason}` : ` (${event.code})`}.`);
    };
  }

  async function resume(code) {
    socket = null;
    resumes += 1;
    panel.dataset.resumed = resumes;
    message.textContent = `The server went away (${code}): opening the stream again.`;
    for (let attempt = 0; attempt < RESUME_ATTEMPTS && camera; attempt += 1) {
      await new Promise((wake) => setTimeout(wake, Math.min(3000, 200 * 2 ** attempt)));
      try {
        const opened = await openSocket();
        sentAt = new Map();
        sent = 0;
        socket = opened;
        watch(opened);
        message.textContent = `Tracking again (the stream resumed ${resumes === 1 ? "once" : `${resumes} times`}; ids start anew).`;
        return;
      } catch (error) {
        // not back yet: try again
      }
    }
    if (camera) stop("The stream closed and could not be opened again.");
  }

  function stop(reason = "Camera off.") {
    const closing = socket;
    socket = null;
    if (closing) closing.close(1000, "camera off");
    if (camera) camera.getTracks().forEach((track) => track.stop());
    camera = null;
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
      socket = await openSocket();
    } catch (error) {
      // The browser hides the handshake's answer: ask over HTTP whether the key is what is missing.
      const check = await apiFetch("/api/stats", { cache: "no-store" });
      message.textContent = check.status === 401 ? "This server needs an API key: enter it above." : `No stream: ${error.message}.`;
      return;
    }
    watch(socket);
    try {
      camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      stop(`No camera: ${error.message}`);
      return;
    }
    stage.hidden = false;
    video.srcObject = camera;
    await video.play();
    button.textContent = "Stop camera";
    button.className = "stop";
    message.textContent = "Tracking: frames stream over a WebSocket; the ring is each frame's own nose, the dot the steady one.";
    sentAt = new Map();
    sent = 0;
    trail = [];
    counts = { frames: 0, detected: 0, dropped: 0, sent: 0, busy: 0 };
    onVideoFrame();
  }

  button.addEventListener("click", () => (camera ? stop() : start()));
}

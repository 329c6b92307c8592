// Draws a prediction's faces (the JSON of /v1/nose) on a canvas: a box per face and a marker on each nose.
// Shared by "Try it" and "Webcam", so both show exactly what the API answered.

export const NOSE_COLOUR = "#ff2bd6";
export const BOX_COLOUR = "#3ddc97";

// `scale` maps the answer's image pixels to canvas pixels. Returns the markers' centres in canvas pixels.
export function drawFaces(context, faces, scale, { labels = true } = {}) {
  const size = Math.max(context.canvas.width, context.canvas.height);
  const line = Math.max(2, size / 320);
  const radius = Math.max(4, size / 90);
  const markers = [];
  context.save();
  context.lineJoin = "round";
  for (const face of faces) {
    if (face.box) {
      const { x, y, width, height } = face.box;
      context.strokeStyle = BOX_COLOUR;
      context.lineWidth = line;
      context.strokeRect(x * scale, y * scale, width * scale, height * scale);
      context.font = `600 ${Math.round(radius * 2.4)}px system-ui, sans-serif`;
      const text = face.score == null ? "" : `face ${face.score.toFixed(2)}`;
      const w = context.measureText(text).width + radius;
      // A label wider than its face would cover its neighbours' in a crowd: small faces go without.
      if (labels && text && w <= width * scale + line) {
        const h = radius * 3.2;
        const top = Math.max(0, y * scale - h);
        context.fillStyle = BOX_COLOUR;
        context.fillRect(x * scale - line / 2, top, w, h);
        context.fillStyle = "#06281a";
        context.textBaseline = "middle";
        context.fillText(text, x * scale + radius / 2, top + h / 2);
      }
    }
    const nx = face.nose.x * scale;
    const ny = face.nose.y * scale;
    context.beginPath();
    context.arc(nx, ny, radius + line, 0, 2 * Math.PI);
    context.fillStyle = "#ffffff";
    context.fill();
    context.beginPath();
    context.arc(nx, ny, radius, 0, 2 * Math.PI);
    context.fillStyle = NOSE_COLOUR;
    context.fill();
    markers.push({ x: nx, y: ny });
  }
  context.restore();
  return markers;
}

// Whole-pixel coordinates, for data attributes a test (or a curious user) can read.
export function markersAttribute(markers) {
  return JSON.stringify(markers.map((m) => ({ x: Math.round(m.x * 10) / 10, y: Math.round(m.y * 10) / 10 })));
}

// The error message of the API's one error shape, or a fallback for anything else.
export async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") return `${response.status}: ${body.error.message}`;
  } catch (ignored) {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`;
}

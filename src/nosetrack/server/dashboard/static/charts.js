// Time-series charts on <canvas>, small enough to read: stacked bars and lines with gaps for empty seconds.

const GRID = "#26304a";
const LABEL = "#8d99b1";
const PAD = { left: 44, right: 10, top: 10, bottom: 22 };

// A round axis maximum and its step, e.g. 37 -> [40, 10].
function niceScale(max) {
  if (!(max > 0)) return [1, 0.25];
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return [Math.ceil(max / step) * step, step];
}

function formatTick(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(value % 1000 ? 1 : 0)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 1 ? 2 : 1);
}

// Fits the canvas' pixels to its CSS size (sharp on HiDPI screens); returns the context and plot area.
function prepare(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400;
  const height = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  return { context, plot: { x: PAD.left, y: PAD.top, w: width - PAD.left - PAD.right, h: height - PAD.top - PAD.bottom } };
}

function drawAxes(context, plot, top, step, points) {
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = LABEL;
  context.strokeStyle = GRID;
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (let value = 0; value <= top + 1e-9; value += step) {
    const y = Math.round(plot.y + plot.h - (value / top) * plot.h) + 0.5;
    context.beginPath();
    context.moveTo(plot.x, y);
    context.lineTo(plot.x + plot.w, y);
    context.stroke();
    context.fillText(formatTick(value), plot.x - 6, y);
  }
  context.textAlign = "center";
  context.textBaseline = "top";
  const minutes = Math.floor(points / 60);
  for (let m = 0; m <= minutes; m += 1) {
    const x = plot.x + plot.w - ((m * 60) / points) * plot.w;
    context.fillText(m === 0 ? "now" : `-${m} min`, Math.min(x, plot.x + plot.w - 10), plot.y + plot.h + 6);
  }
}

// The point under the pointer: its index among `points`, or null outside the plot.
export function pointIndex(canvas, event, points) {
  const width = canvas.clientWidth - PAD.left - PAD.right;
  const index = Math.floor(((event.offsetX - PAD.left) / width) * points);
  return index >= 0 && index < points ? index : null;
}

// A rule at the hovered point and a box with its values (`hover` = {index, lines}).
function drawHover(context, plot, points, hover) {
  if (!hover || hover.index == null) return;
  const x = Math.round(plot.x + ((hover.index + 0.5) / points) * plot.w) + 0.5;
  context.strokeStyle = "#c9d6ff88";
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(x, plot.y);
  context.lineTo(x, plot.y + plot.h);
  context.stroke();
  context.font = "12px system-ui, sans-serif";
  const width = Math.max(...hover.lines.map((line) => context.measureText(line).width)) + 16;
  const height = hover.lines.length * 16 + 10;
  const left = x + 8 + width > plot.x + plot.w ? x - 8 - width : x + 8;
  context.fillStyle = "#0b101aee";
  context.fillRect(left, plot.y, width, height);
  context.strokeStyle = GRID;
  context.strokeRect(left + 0.5, plot.y + 0.5, width - 1, height - 1);
  context.fillStyle = "#e7ecf6";
  context.textAlign = "left";
  context.textBaseline = "top";
  hover.lines.forEach((line, i) => context.fillText(line, left + 8, plot.y + 6 + i * 16));
}

// Stacked bars, one per second: `stacks` = [{values, colour}], bottom first.
export function barChart(canvas, stacks, hover = null) {
  const { context, plot } = prepare(canvas);
  const points = stacks[0].values.length;
  const totals = stacks[0].values.map((_, i) => stacks.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const [top, step] = niceScale(Math.max(...totals, 1));
  drawAxes(context, plot, top, step, points);
  const width = plot.w / points;
  for (let i = 0; i < points; i += 1) {
    let base = 0;
    for (const stack of stacks) {
      const value = stack.values[i] || 0;
      if (!value) continue;
      const y0 = plot.y + plot.h - (base / top) * plot.h;
      const y1 = plot.y + plot.h - ((base + value) / top) * plot.h;
      context.fillStyle = stack.colour;
      context.fillRect(plot.x + i * width, y1, Math.max(width - 0.5, 0.5), y0 - y1);
      base += value;
    }
  }
  drawHover(context, plot, points, hover);
}

// Lines with a break wherever a value is null (a second without requests).
export function lineChart(canvas, lines, hover = null) {
  const { context, plot } = prepare(canvas);
  const points = lines[0].values.length;
  const all = lines.flatMap((l) => l.values.filter((v) => v != null));
  const [top, step] = niceScale(Math.max(...all, 1));
  drawAxes(context, plot, top, step, points);
  const x = (i) => plot.x + ((i + 0.5) / points) * plot.w;
  const y = (v) => plot.y + plot.h - (Math.min(v, top) / top) * plot.h;
  context.lineWidth = 1.6;
  context.lineJoin = "round";
  for (const line of lines) {
    context.strokeStyle = line.colour;
    context.fillStyle = line.colour;
    context.beginPath();
    let drawing = false;
    line.values.forEach((value, i) => {
      if (value == null) {
        drawing = false;
        return;
      }
      const lonely = line.values[i - 1] == null && line.values[i + 1] == null;
      if (lonely) context.fillRect(x(i) - 1.5, y(value) - 1.5, 3, 3);
      if (drawing) context.lineTo(x(i), y(value));
      else context.moveTo(x(i), y(value));
      drawing = true;
    });
    context.stroke();
  }
  drawHover(context, plot, points, hover);
}

// The overview's runs-per-minute chart, drawn as pages.chart_bars draws it.

import { formatTime } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART_HEIGHT = 120;
const CHART_BAR = 10;

function bar(className, x, y, height) {
  const rect = document.createElementNS(SVG, "rect");
  rect.setAttribute("class", className);
  rect.setAttribute("x", String(x));
  rect.setAttribute("y", String(y));
  rect.setAttribute("width", "8");
  rect.setAttribute("height", String(height));
  return rect;
}

export function drawChart(minutes) {
  const svg = document.getElementById("runs-chart");
  if (!svg) return;
  const top = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  const groups = minutes.map((m, index) => {
    const completedH = Math.round((m.completed * CHART_HEIGHT) / top);
    const failedH = Math.round((m.failed * CHART_HEIGHT) / top);
    const group = document.createElementNS(SVG, "g");
    const title = document.createElementNS(SVG, "title");
    title.textContent =
      formatTime(m.minute).slice(11, 16) + ": " + m.completed + " completed, " + m.failed + " failed";
    const x = index * CHART_BAR + 1;
    group.append(
      title,
      bar("bar-completed", x, CHART_HEIGHT - completedH, completedH),
      bar("bar-failed", x, CHART_HEIGHT - completedH - failedH, failedH)
    );
    return group;
  });
  svg.replaceChildren(...groups);
  svg.setAttribute("viewBox", "0 0 " + minutes.length * CHART_BAR + " " + CHART_HEIGHT);
  document.getElementById("chart-completed").textContent = minutes.reduce((n, m) => n + m.completed, 0);
  document.getElementById("chart-failed").textContent = minutes.reduce((n, m) => n + m.failed, 0);
  document.getElementById("chart-top").textContent = top;
}

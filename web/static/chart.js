// The overview's runs-per-minute chart. chartBars is pages.chart_bars, key for key
// (tests/unit/test_dashboard_format.py compares them); drawChart puts it in the SVG.

import { formatTime } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART_HEIGHT = 120;
const CHART_BAR = 10;

export function chartBars(minutes) {
  const top = Math.max(1, ...minutes.map((m) => m.completed + m.failed));
  const bars = minutes.map((m, index) => {
    const completedH = Math.round((m.completed * CHART_HEIGHT) / top);
    const failedH = Math.round((m.failed * CHART_HEIGHT) / top);
    return {
      x: index * CHART_BAR,
      completed_y: CHART_HEIGHT - completedH,
      completed_h: completedH,
      failed_y: CHART_HEIGHT - completedH - failedH,
      failed_h: failedH,
      title: formatTime(m.minute).slice(11, 16) + ": " + m.completed + " completed, " + m.failed + " failed",
    };
  });
  return {
    bars,
    top,
    width: minutes.length * CHART_BAR,
    height: CHART_HEIGHT,
    completed: minutes.reduce((n, m) => n + m.completed, 0),
    failed: minutes.reduce((n, m) => n + m.failed, 0),
  };
}

function rect(className, x, y, height) {
  const node = document.createElementNS(SVG, "rect");
  node.setAttribute("class", className);
  node.setAttribute("x", String(x + 1));
  node.setAttribute("y", String(y));
  node.setAttribute("width", "8");
  node.setAttribute("height", String(height));
  return node;
}

export function drawChart(minutes) {
  const svg = document.getElementById("runs-chart");
  if (!svg) return;
  const chart = chartBars(minutes);
  const groups = chart.bars.map((bar) => {
    const group = document.createElementNS(SVG, "g");
    const title = document.createElementNS(SVG, "title");
    title.textContent = bar.title;
    group.append(
      title,
      rect("bar-completed", bar.x, bar.completed_y, bar.completed_h),
      rect("bar-failed", bar.x, bar.failed_y, bar.failed_h)
    );
    return group;
  });
  svg.replaceChildren(...groups);
  svg.setAttribute("viewBox", "0 0 " + chart.width + " " + chart.height);
  document.getElementById("chart-completed").textContent = chart.completed;
  document.getElementById("chart-failed").textContent = chart.failed;
  document.getElementById("chart-top").textContent = chart.top;
}

// Relative times ("3 min ago"), the exact UTC time on hover, kept ticking on the server's
// clock (the footer's render time says how far this browser's clock is off).

import { formatRelative, formatTime } from "./format.js";

const rendered = document.getElementById("rendered-at");
const offset = rendered ? Date.parse(rendered.getAttribute("datetime")) - Date.now() || 0 : 0;
const TICK_MS = 5000;

export function serverNow() {
  return Date.now() + offset;
}

// Point a <time class="ago"> at a wire timestamp (or at nothing).
export function setTime(node, iso) {
  node.setAttribute("datetime", iso || "");
  node.title = iso ? formatTime(iso) + " UTC" : "";
  node.textContent = formatRelative(iso, serverNow());
}

export function timeElement(iso) {
  const node = document.createElement("time");
  node.className = "ago";
  setTime(node, iso);
  return node;
}

function tick() {
  const now = serverNow();
  for (const node of document.querySelectorAll("time.ago")) {
    node.textContent = formatRelative(node.getAttribute("datetime"), now);
  }
}

export function keepTimesTicking() {
  tick();
  setInterval(tick, TICK_MS);
}

// Relative times ("3 min ago") and ages ("12 min 5 s", <time class="age">: how long since),
// the exact UTC time on hover, kept ticking on the server's clock (the footer's render
// time says how far this browser's clock is off).

import { formatElapsed, formatRelative, formatTime } from "./format.js";

const offset = clockOffset(document.getElementById("rendered-at"));
const TICK_MS = 5000;
const AGE_TICK_MS = 1000;

// How far the server's clock is ahead of this browser's. The server rendered the page after
// the request left and before the answer arrived, so the offset lies between the two
// differences; when that range holds 0 the clocks cannot be told apart, and agree.
function clockOffset(rendered) {
  if (!rendered) return 0;
  const at = Date.parse(rendered.getAttribute("datetime"));
  const trip = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  if (!trip || !trip.requestStart || !trip.responseStart) return at - Date.now() || 0;
  const low = at - (performance.timeOrigin + trip.responseStart);
  const high = at - (performance.timeOrigin + trip.requestStart);
  return Math.min(Math.max(0, low), high) || 0;
}

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

function ageText(iso, now) {
  return iso ? formatElapsed(now - Date.parse(iso)) : "";
}

// Point a <time class="age"> at the moment its age counts from (or at nothing).
export function setAge(node, iso) {
  node.setAttribute("datetime", iso || "");
  node.title = iso ? "Since " + formatTime(iso) + " UTC" : "";
  node.textContent = ageText(iso, serverNow());
}

function tick() {
  const now = serverNow();
  for (const node of document.querySelectorAll("time.ago")) {
    node.textContent = formatRelative(node.getAttribute("datetime"), now);
  }
}

function tickAges() {
  const now = serverNow();
  for (const node of document.querySelectorAll("time.age")) {
    node.textContent = ageText(node.getAttribute("datetime"), now);
  }
}

export function keepTimesTicking() {
  tick();
  setInterval(tick, TICK_MS);
  tickAges();
  setInterval(tickAges, AGE_TICK_MS); // ages count seconds
}

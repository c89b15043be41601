// The connection indicator (#connection-status) and the page's dimming while offline.

import { base, el } from "./dom.js";

const indicator = document.getElementById("connection-status");
const pollSeconds = Math.round(
  Math.max(500, Number(document.body.getAttribute("data-poll-interval")) || 5000) / 1000
);
const WORDS = {
  connecting: "Connecting…",
  connected: "Live",
  reconnecting: "Connection lost, reconnecting…",
  polling: "Live stream unavailable: refreshing every " + pollSeconds + " s",
  disconnected: "Offline: retrying",
};

function words() {
  return indicator.querySelector(".connection-text") || indicator;
}

// The state also goes on <html data-connection>, so the stylesheet dims stale data.
export function setState(state) {
  document.documentElement.setAttribute("data-connection", state);
  if (!indicator) return;
  indicator.classList.remove("as-rendered");
  indicator.setAttribute("data-state", state);
  words().textContent = WORDS[state];
  indicator.title = WORDS[state];
}

let isSignedOut = false;

// The session expired or its token was revoked: stop, and offer to sign in again.
export function signedOut() {
  if (isSignedOut) return;
  isSignedOut = true;
  document.dispatchEvent(new Event("zapjobs:signed-out"));
  setState("disconnected");
  if (!indicator) return;
  const text = words();
  text.textContent = "Signed out: ";
  const link = el("a", "sign-in", "sign in again");
  link.href = base + "/login?next=" + encodeURIComponent(location.pathname + location.search);
  text.appendChild(link);
}

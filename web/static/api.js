// The JSON API, for the first catch-up after a reconnect and for the polling fallback;
// and the server-drawn parts of a page (the insights charts), fetched again to refresh
// them, so that each is drawn in one place: the server's templates.

import { base } from "./dom.js";
import { signedOut } from "./indicator.js";

const FETCH_TIMEOUT_MS = 10000;

async function get(url, accept, read) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      headers: { Accept: accept },
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (response.status === 401) signedOut();
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return await read(response);
  } finally {
    clearTimeout(timer);
  }
}

export function api(path) {
  return get(base + "/api/" + path, "application/json", (response) => response.json());
}

// Replace the element `id` with the same element of this page fetched with ?part=`part`
// (the page's other parameters kept); open <details> stay open.
export async function refreshPart(id, part) {
  const query = new URLSearchParams(window.location.search);
  query.set("part", part);
  const url = window.location.pathname + "?" + query.toString();
  const html = await get(url, "text/html", (response) => response.text());
  const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
  const current = document.getElementById(id);
  if (!fresh || !current) return;
  const open = [...current.querySelectorAll("details")].map((node) => node.open);
  fresh.querySelectorAll("details").forEach((node, index) => {
    if (open[index]) node.open = true;
  });
  current.replaceWith(document.adoptNode(fresh));
}

// The JSON API, for the first catch-up after a reconnect and for the polling fallback.

import { base } from "./dom.js";
import { signedOut } from "./indicator.js";

const FETCH_TIMEOUT_MS = 10000;

export async function api(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch(base + "/api/" + path, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: controller.signal,
    });
    if (response.status === 401) signedOut();
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

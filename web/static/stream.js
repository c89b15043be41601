// ONE EventSource per page: reconnects (the browser sends Last-Event-ID), resyncs from
// the JSON API, and falls back to polling when the stream cannot be held. The first
// stream starts where the server rendered the page (data-live-from): what changed in
// between is replayed, in order, so the page misses nothing and needs no reload.
//
// A page controller is {params(), events: {Name: handler}, refresh(), reopenOnResync?}.

import { base } from "./dom.js";
import { setState, signedOut } from "./indicator.js";

const MAX_FAILURES = 3; // stream errors in a row before falling back to polling
const STABLE_MS = 10000; // a stream that stayed open this long resets the failure count
const pollInterval = Math.max(500, Number(document.body.getAttribute("data-poll-interval")) || 5000);

export class LiveConnection {
  constructor(page) {
    this.page = page;
    this.source = null;
    this.failures = 0;
    this.openedAt = 0;
    this.polling = false;
    this.pollTimer = null;
    this.everOpened = false;
    this.stale = false; // something may have been missed: reload from the API once open
    // The id of the last event before the page was rendered: the first stream's start.
    this.renderedAt = document.body.getAttribute("data-live-from");
  }

  url() {
    const query = new URLSearchParams();
    for (const [key, value] of this.page.params()) {
      if (value !== null && value !== undefined) query.append(key, value);
    }
    // The browser's own reconnects send Last-Event-ID, which the server prefers.
    if (this.renderedAt) query.append("last_event_id", this.renderedAt);
    const text = query.toString();
    return base + "/events" + (text ? "?" + text : "");
  }

  close() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  open() {
    this.close();
    const source = new EventSource(this.url());
    // Later streams (after a resync or polling) follow a reload from the API instead.
    this.renderedAt = null;
    this.source = source;
    if (!this.polling) setState(this.everOpened ? "reconnecting" : "connecting");
    const current = () => this.source === source;

    source.onopen = () => {
      if (!current()) return;
      this.openedAt = Date.now();
      this.stopPolling();
      setState("connected");
      if (this.everOpened || this.stale) this.catchUp();
      this.everOpened = true;
    };
    source.onerror = () => {
      if (!current()) return;
      if (this.polling) {
        this.close(); // a probe that failed: keep polling
        return;
      }
      if (this.openedAt && Date.now() - this.openedAt > STABLE_MS) this.failures = 0;
      this.openedAt = 0;
      this.failures += 1;
      this.stale = true;
      if (source.readyState === EventSource.CLOSED || this.failures >= MAX_FAILURES) {
        // Refused (an HTTP error such as 502/503/404) or failing again and again.
        this.close();
        this.startPolling();
      } else {
        setState("reconnecting"); // the browser retries, sending Last-Event-ID
      }
    };
    for (const [name, handler] of Object.entries(this.page.events)) {
      source.addEventListener(name, (event) => {
        if (current()) handler(JSON.parse(event.data));
      });
    }
    source.addEventListener("auth_expired", () => {
      if (current()) signedOut();
    });
    source.addEventListener("resync", () => {
      if (!current()) return;
      if (this.page.reopenOnResync) {
        // A fresh subscription from the last line held: nothing lost, nothing twice.
        this.stale = true;
        this.open();
      } else {
        this.catchUp();
      }
    });
  }

  catchUp() {
    this.stale = false;
    this.page.refresh().catch(() => {
      this.stale = true;
    });
  }

  startPolling() {
    if (this.polling) return;
    this.polling = true;
    setState("polling");
    this.tick(0);
  }

  tick(delay) {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(async () => {
      if (!this.polling) return;
      try {
        await this.page.refresh();
        if (this.polling) setState("polling");
      } catch {
        if (this.polling) setState("disconnected");
      }
      if (!this.polling) return;
      this.open(); // probe: back to the stream as soon as it answers
      this.tick(pollInterval);
    }, delay);
  }

  stopPolling() {
    if (!this.polling) return;
    this.polling = false;
    this.failures = 0;
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }
}

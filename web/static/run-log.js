// The run page's live log: lines in cursor order, each once; the level filter (kept in the
// URL as ?level=); Follow, paused by scrolling up, with "N new lines" while paused.

import { el, showEmpty, slug } from "./dom.js";
import { LEVELS, formatLogTime } from "./format.js";

function parseCursor(cursor) {
  const dot = cursor.indexOf(".");
  return [Number(cursor.slice(0, dot)), cursor.slice(dot + 1)];
}

function compareCursors(a, b) {
  const [x, y] = [parseCursor(a), parseCursor(b)];
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] === y[1]) return 0;
  return x[1] < y[1] ? -1 : 1;
}

function newLine(line) {
  const node = el("div", "log-line level-" + slug(line.level));
  node.id = "log-" + line.id;
  node.setAttribute("data-log-id", line.id);
  node.setAttribute("data-cursor", line.cursor);
  node.setAttribute("data-level", line.level);
  const link = el("a", "log-time", formatLogTime(line.timestamp));
  link.href = "#log-" + line.id;
  link.title = "Link to this line";
  node.append(
    link,
    " ",
    el("span", "log-level", line.level),
    " ",
    el("span", "log-category", line.category || ""),
    " ",
    el("span", "log-message", line.message)
  );
  if (line.exception) {
    const details = el("details", "log-exception");
    details.append(el("summary", null, "Exception"), el("pre", null, line.exception));
    node.appendChild(details);
  }
  return node;
}

export class RunLog {
  constructor() {
    this.container = document.getElementById("logs-container");
    this.follow = document.getElementById("log-follow");
    this.levelSelect = document.getElementById("log-level");
    this.lastCursor = this.container.getAttribute("data-logs-after");
    this.seen = new Set();
    this.unseen = 0; // visible lines that arrived while Follow was paused
    this.programmaticScroll = false;
    this.queued = [];
    this.flushScheduled = false;
    for (const line of this.container.querySelectorAll("[data-log-id]")) {
      this.seen.add(line.getAttribute("data-log-id"));
    }
    if (window.location.hash.startsWith("#log-")) this.follow.checked = false;
    this.container.addEventListener("scroll", () => this.scrolled());
    this.follow.addEventListener("change", () => this.scrollToEnd());
    this.levelSelect.addEventListener("change", () => this.levelChanged());
    document.getElementById("log-new").addEventListener("click", () => {
      this.follow.checked = true;
      this.scrollToEnd();
    });
    this.levelSelect.form.addEventListener("submit", (event) => event.preventDefault());
    this.applyLevel();
    this.scrollToEnd();
  }

  minLevel() {
    return Math.max(0, LEVELS.indexOf(this.levelSelect.value));
  }

  shows(node) {
    return LEVELS.indexOf(node.getAttribute("data-level")) >= this.minLevel();
  }

  applyLevel() {
    for (const node of this.container.querySelectorAll("[data-log-id]")) node.hidden = !this.shows(node);
    this.showCount();
  }

  levelChanged() {
    const url = new URL(window.location.href);
    if (this.minLevel() > 0) url.searchParams.set("level", this.levelSelect.value);
    else url.searchParams.delete("level");
    window.history.replaceState(window.history.state, "", url);
    this.applyLevel();
    this.scrollToEnd();
  }

  // "12 lines", or "3 of 12 lines" when the level filter hides some.
  showCount() {
    const shown = this.container.querySelectorAll("[data-log-id]:not([hidden])").length;
    document.getElementById("log-count").textContent = shown;
    const total = document.getElementById("log-total");
    total.hidden = shown === this.seen.size;
    total.textContent = "of " + this.seen.size;
  }

  showUnseen() {
    const button = document.getElementById("log-new");
    button.hidden = this.unseen === 0;
    button.textContent = this.unseen === 1 ? "1 new line ↓" : this.unseen + " new lines ↓";
  }

  scrollToEnd() {
    if (!this.follow.checked) return;
    this.unseen = 0;
    this.showUnseen();
    this.programmaticScroll = true;
    this.container.scrollTop = this.container.scrollHeight;
  }

  scrolled() {
    if (this.programmaticScroll) {
      this.programmaticScroll = false;
      return;
    }
    const { scrollHeight, scrollTop, clientHeight } = this.container;
    this.follow.checked = scrollHeight - scrollTop - clientHeight < 24; // up pauses, end resumes
    if (this.follow.checked) {
      this.unseen = 0;
      this.showUnseen();
    }
  }

  // Lines go in cursor order, each once, whether they come from the stream or the API.
  add(line) {
    if (this.seen.has(line.id)) return;
    this.seen.add(line.id);
    const node = newLine(line);
    node.hidden = !this.shows(node);
    if (!node.hidden && !this.follow.checked) this.unseen += 1;
    let after = this.container.lastElementChild;
    while (after && compareCursors(after.getAttribute("data-cursor"), line.cursor) > 0) {
      after = after.previousElementSibling;
    }
    this.container.insertBefore(node, after ? after.nextElementSibling : this.container.firstChild);
    if (!this.lastCursor || compareCursors(line.cursor, this.lastCursor) > 0) this.lastCursor = line.cursor;
    showEmpty("logs-empty", false);
  }

  addLines(lines) {
    lines.forEach((line) => this.add(line));
    if (!lines.length) return;
    this.showCount();
    this.showUnseen();
    this.scrollToEnd();
  }

  // Lines from the stream go in once per frame: a run writing hundreds of lines a second
  // costs one layout per frame, not one per line.
  queue(line) {
    this.queued.push(line);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const flush = () => {
      this.flushScheduled = false;
      const lines = this.queued;
      this.queued = [];
      this.addLines(lines);
    };
    if (document.hidden) setTimeout(flush, 250);
    else window.requestAnimationFrame(flush);
  }
}

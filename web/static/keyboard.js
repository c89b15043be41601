// Keyboard shortcuts, listed in the "?" dialog (base.html): "/" the runs page's search box
// (#search), elsewhere the go-to-run box; "g" then a letter for a page, "j"/"k" through
// rows, Enter opens one. Never while typing in a field.

import { base } from "./dom.js";

const PAGES = { o: "/", r: "/runs", j: "/jobs", q: "/queues", w: "/workers", d: "/dead-letter", a: "/activity" };
const CHORD_MS = 1500;

function typing(target) {
  return !!target.closest && (!!target.closest("input, textarea, select") || target.isContentEditable);
}

function rows() {
  return [...document.querySelectorAll("main tbody tr")].filter((row) => row.offsetParent !== null);
}

function move(step) {
  const all = rows();
  if (!all.length) return;
  const current = all.findIndex((row) => row.classList.contains("selected"));
  const next = current < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, current + step));
  if (current >= 0) all[current].classList.remove("selected");
  all[next].classList.add("selected");
  all[next].scrollIntoView({ block: "nearest" });
}

function open() {
  const row = document.querySelector("main tbody tr.selected");
  const link = row && row.querySelector("a[href]");
  if (!link) return false;
  link.click();
  return true;
}

export function setupKeyboard() {
  const dialog = document.getElementById("shortcuts");
  let chord = 0; // when "g" was pressed
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target)) return;
    // An open dialog (this list, an action's question) has the keys; "?" closes this list.
    const shown = document.querySelector("dialog[open]");
    if (shown && !(shown === dialog && event.key === "?")) return;
    const key = event.key;
    if (chord && Date.now() - chord < CHORD_MS && PAGES[key]) {
      chord = 0;
      event.preventDefault();
      window.location.assign(base + PAGES[key]);
      return;
    }
    chord = 0;
    if (key === "/") {
      const box = document.getElementById("search") || document.getElementById("go-to-run-id");
      if (!box) return;
      event.preventDefault();
      box.focus();
    } else if (key === "?") {
      if (!dialog) return;
      event.preventDefault();
      if (dialog.open) dialog.close();
      else dialog.showModal();
    } else if (key === "g") {
      chord = Date.now();
    } else if (key === "j" || key === "k") {
      event.preventDefault();
      move(key === "j" ? 1 : -1);
    } else if (key === "Enter" && !event.target.closest("a, button, summary")) {
      if (open()) event.preventDefault();
    } else if (key === "Escape") {
      document.querySelector("main tbody tr.selected")?.classList.remove("selected");
    }
  });
}

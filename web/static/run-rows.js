// Run rows (tr[data-run-id]) as web/templates/macros.html renders them, kept live.
// A list has a filter: a row whose run leaves it is shown leaving, then goes; a run that
// enters it is inserted where its creation time puts it.

import { applyWhen, prepareForms } from "./actions.js";
import { base, el, findRow, setClassPrefix, showEmpty } from "./dom.js";
import { formatDuration, progressView, rowError } from "./format.js";
import { timeElement } from "./times.js";

const LEAVE_MS = 1500;

export function fillProgress(cell, run) {
  const view = progressView(run);
  const bar = cell.querySelector("progress");
  bar.hidden = view === null;
  if (view) {
    bar.max = view.max;
    if (view.value === null) bar.removeAttribute("value");
    else bar.value = view.value;
  }
  cell.querySelector(".progress-text").textContent = view ? view.text : "";
}

function fillRunRow(row, run) {
  row.setAttribute("data-created", run.createdAt || "");
  row.setAttribute("data-status", run.status);
  const status = row.querySelector(".status");
  status.textContent = run.status;
  setClassPrefix(status, "status-", run.status);
  const attempt = row.querySelector(".attempt");
  attempt.textContent = run.attemptNumber || "";
  attempt.classList.toggle("retried", (run.attemptNumber || 1) > 1);
  fillProgress(row.querySelector(".progress-cell"), run);
  row.querySelector(".duration").textContent = formatDuration(run.durationMs);
  row.querySelector(".worker").textContent = run.workerId || "";
  const error = row.querySelector(".error");
  error.textContent = rowError(run);
  error.title = rowError(run);
  const jobType = row.querySelector(".job-type a");
  jobType.textContent = run.jobTypeId;
  jobType.href = base + "/jobs/" + encodeURIComponent(run.jobTypeId);
  const actions = row.querySelector("td.actions");
  if (actions) applyWhen(actions, run.status);
}

// An operator's cancel and retry for a row the stream adds (macros.html run_actions).
function actionsCell(run) {
  const template = document.getElementById("run-actions-template");
  if (!template) return null;
  const cell = el("td", "actions");
  cell.appendChild(template.content.cloneNode(true));
  for (const form of cell.querySelectorAll("form")) {
    for (const name of ["action", "data-api"]) {
      form.setAttribute(name, form.getAttribute(name).replace("RUN_ID", encodeURIComponent(run.id)));
    }
    const question = form.getAttribute("data-confirm");
    if (question) form.setAttribute("data-confirm", question.replace("RUN_ID", run.id.slice(0, 8)));
  }
  prepareForms(cell);
  return cell;
}

function newRunRow(run) {
  const row = el("tr");
  row.setAttribute("data-run-id", run.id);
  const idCell = el("td", "run-id");
  const link = el("a", null, run.id.slice(0, 8));
  link.href = base + "/runs/" + encodeURIComponent(run.id);
  link.title = run.id;
  idCell.appendChild(link);
  const statusCell = el("td");
  statusCell.appendChild(el("span", "status"));
  const progressCell = el("td", "progress-cell");
  progressCell.append(el("progress", "progress"), " ", el("span", "progress-text"));
  const jobTypeCell = el("td", "job-type");
  jobTypeCell.appendChild(el("a"));
  const created = el("td", "created");
  created.appendChild(timeElement(run.createdAt));
  row.append(
    idCell,
    jobTypeCell,
    statusCell,
    el("td", "attempt"),
    progressCell,
    el("td", "duration"),
    created,
    el("td", "worker"),
    el("td", "error")
  );
  const actions = actionsCell(run);
  if (actions) row.appendChild(actions);
  fillRunRow(row, run);
  return row;
}

function leave(row, tbody) {
  if (row.leaving) return;
  row.classList.add("leaving");
  row.leaving = setTimeout(() => {
    row.remove();
    showEmpty("runs-empty", tbody.children.length === 0);
  }, LEAVE_MS);
}

function stay(row) {
  if (!row.leaving) return;
  clearTimeout(row.leaving);
  row.leaving = null;
  row.classList.remove("leaving");
}

// Newest first: before the first row created earlier. Past the last row only while the
// list has room (otherwise the run belongs to an older page); above the first row only on
// the first page.
function place(tbody, row, created, { limit, firstPage }) {
  const rows = [...tbody.children];
  const next = rows.find((other) => (other.getAttribute("data-created") || "") < created);
  if (next === rows[0] && rows.length && !firstPage) return false;
  if (!next && limit && rows.length >= limit) return false;
  tbody.insertBefore(row, next || null);
  while (limit && tbody.children.length > limit) tbody.lastElementChild.remove();
  return true;
}

// options: {matches(run) -> bool, limit, firstPage, adds: false to only update the rows shown}
export function upsertRun(run, { matches = () => true, limit = 0, firstPage = true, adds = true } = {}) {
  const tbody = document.getElementById("runs-body");
  if (!tbody) return;
  let row = findRow(tbody, "data-run-id", run.id);
  if (row) {
    fillRunRow(row, run);
    if (matches(run)) stay(row);
    else leave(row, tbody);
    return;
  }
  if (!adds || !matches(run)) return;
  row = newRunRow(run);
  row.classList.add("new");
  if (place(tbody, row, run.createdAt || "", { limit, firstPage })) showEmpty("runs-empty", false);
}

export function replaceRuns(runs) {
  const tbody = document.getElementById("runs-body");
  if (!tbody) return;
  tbody.replaceChildren(...runs.map(newRunRow));
  showEmpty("runs-empty", runs.length === 0);
}

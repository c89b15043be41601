// Worker rows (tr[data-worker-id]) as web/templates/macros.html renders them, kept live.
// "Running now" comes from the runs table (runs Running with this worker id): a heartbeat
// names one current job type, however many the worker runs, as of its last beat. That one
// is shown only while the runs table shows none and no run has stopped since the beat.

import { el, findRow, setClassPrefix, showEmpty, slug } from "./dom.js";
import { runningSummary } from "./format.js";
import { serverNow, setTime, timeElement } from "./times.js";

const running = new Map(); // run id -> {workerId, jobTypeId}
const heartbeats = new Map(); // worker id -> {currentJobType, timestamp}
const stopped = new Map(); // worker id -> when (server clock) a run of it last stopped

function runningOn(workerId) {
  const types = [];
  for (const run of running.values()) if (run.workerId === workerId) types.push(run.jobTypeId);
  return types;
}

function fillRunning(row) {
  const cell = row.querySelector(".current-job");
  const workerId = row.getAttribute("data-worker-id");
  const types = runningOn(workerId);
  const beat = heartbeats.get(workerId);
  const fromBeat =
    !types.length && beat && beat.currentJobType && !(Date.parse(beat.timestamp) < stopped.get(workerId));
  cell.classList.toggle("from-heartbeat", !types.length);
  cell.textContent = types.length ? runningSummary(types) : fromBeat ? beat.currentJobType : "";
  cell.title = types.length ? types.join("\n") : fromBeat ? "As of the last heartbeat" : "";
}

function fillWorkerRow(row, worker) {
  heartbeats.set(worker.workerId, worker);
  row.className = "worker-" + slug(worker.state);
  const state = row.querySelector(".state");
  state.textContent = worker.state;
  setClassPrefix(state, "state-", worker.state);
  row.querySelector(".hostname").textContent = worker.hostname;
  row.querySelector(".jobs-processed").textContent = worker.jobsProcessed;
  row.querySelector(".jobs-failed").textContent = worker.jobsFailed ?? "";
  if (worker.queues) row.querySelector(".queues").textContent = worker.queues.join(", ");
  setTime(row.querySelector(".heartbeat time"), worker.timestamp);
  fillRunning(row);
}

function newWorkerRow(worker) {
  const row = el("tr");
  row.setAttribute("data-worker-id", worker.workerId);
  const stateCell = el("td");
  stateCell.appendChild(el("span", "state"));
  const beat = el("td", "heartbeat");
  beat.appendChild(timeElement(worker.timestamp));
  row.append(
    el("td", "worker-id", worker.workerId),
    el("td", "hostname"),
    stateCell,
    el("td", "current-job"),
    el("td", "jobs-processed"),
    el("td", "jobs-failed"),
    el("td", "queues"),
    beat
  );
  fillWorkerRow(row, worker);
  return row;
}

export function upsertWorker(worker) {
  const tbody = document.getElementById("workers-body");
  if (!tbody) return;
  const row = findRow(tbody, "data-worker-id", worker.workerId);
  if (row) {
    fillWorkerRow(row, worker);
    return;
  }
  const next = [...tbody.children].find((other) => other.getAttribute("data-worker-id") > worker.workerId);
  tbody.insertBefore(newWorkerRow(worker), next || null);
  showEmpty("workers-empty", false);
}

export function replaceWorkers(workers) {
  const tbody = document.getElementById("workers-body");
  if (!tbody) return;
  tbody.replaceChildren(...workers.map(newWorkerRow));
  showEmpty("workers-empty", workers.length === 0);
}

function refill(workerIds) {
  const tbody = document.getElementById("workers-body");
  if (!tbody) return;
  for (const id of workerIds) {
    const row = id && findRow(tbody, "data-worker-id", id);
    if (row) fillRunning(row);
  }
}

// A JobRunUpdated: a run started or stopped running on a worker.
export function trackRun(run) {
  const before = running.get(run.id);
  if (run.status === "Running" && run.workerId) running.set(run.id, run);
  else running.delete(run.id);
  if (before && !running.has(run.id)) stopped.set(before.workerId, serverNow());
  refill(new Set([before && before.workerId, run.workerId]));
}

// Everything running now (the first render's rows, or the API after a resync).
export function replaceRunning(runs) {
  const workers = new Set([...running.values()].map((run) => run.workerId));
  running.clear();
  for (const run of runs) {
    if (run.status === "Running" && run.workerId) running.set(run.id, run);
    workers.add(run.workerId);
  }
  refill(workers);
}

// The runs the server rendered as running (data-running on each worker row).
export function readRendered() {
  for (const row of document.querySelectorAll("tr[data-worker-id]")) {
    const workerId = row.getAttribute("data-worker-id");
    const beat = row.querySelector(".heartbeat time").getAttribute("datetime");
    const current = row.querySelector(".current-job.from-heartbeat");
    heartbeats.set(workerId, { currentJobType: current ? current.textContent : null, timestamp: beat });
    for (const item of JSON.parse(row.getAttribute("data-running") || "[]")) {
      running.set(item.id, { id: item.id, jobTypeId: item.jobTypeId, workerId, status: "Running" });
    }
  }
}

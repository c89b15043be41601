// The run page: its summary and fields follow RunDetailUpdated; "running for" ticks on
// the server's clock (pages.running_for renders it); the log is run-log.js.

import { applyWhen } from "./actions.js";
import { api } from "./api.js";
import { body, setClassPrefix } from "./dom.js";
import { errorHeading, formatDuration, formatElapsed, formatTime } from "./format.js";
import { RunLog } from "./run-log.js";
import { fillProgress } from "./run-rows.js";

const FORMATS = { duration: formatDuration, time: formatTime };

function showFields(run) {
  for (const [key, value] of Object.entries(run)) {
    for (const node of document.querySelectorAll('[data-field="' + key + '"]')) {
      const format = FORMATS[node.getAttribute("data-format")];
      node.textContent = format ? format(value) : value === null || value === undefined ? "" : String(value);
      if (key === "status" && node.classList.contains("status")) setClassPrefix(node, "status-", value);
    }
  }
}

function elapsedClock() {
  const elapsed = document.getElementById("run-elapsed");
  const time = document.getElementById("run-elapsed-time");
  const offset = Date.parse(elapsed.getAttribute("data-server-now")) - Date.now() || 0;
  let shown = {
    status: elapsed.getAttribute("data-status"),
    startedAt: elapsed.getAttribute("data-started-at") || null,
    durationMs: elapsed.getAttribute("data-duration-ms") === "" ? null : 0,
  };
  const show = () => {
    const running = shown.status === "Running" && shown.durationMs == null && !!shown.startedAt;
    elapsed.hidden = !running;
    if (running) time.textContent = formatElapsed(Date.now() + offset - Date.parse(shown.startedAt));
  };
  setInterval(show, 1000);
  return (run) => {
    shown = run;
    show();
  };
}

export function runPage() {
  const runId = body.getAttribute("data-run-id");
  const log = new RunLog();
  const showElapsed = elapsedClock();

  function showRun(run) {
    showElapsed(run);
    showFields(run);
    fillProgress(document.getElementById("run-progress"), run);
    document.getElementById("run-error").hidden = !(run.errorMessage || run.stackTrace);
    document.getElementById("run-error-heading").textContent = errorHeading(run);
    const actions = document.getElementById("run-actions");
    if (actions) applyWhen(actions, run.status);
  }

  async function fetchLogs() {
    const after = log.lastCursor ? "&after=" + encodeURIComponent(log.lastCursor) : "";
    const data = await api("runs/" + encodeURIComponent(runId) + "/logs?limit=1000" + after);
    log.addLines(data.logs);
    if (!data.complete && data.logs.length) await fetchLogs();
  }

  return {
    params: () => [
      ["run", runId],
      ["topics", ""],
      ["logs_after", log.lastCursor],
    ],
    events: { RunDetailUpdated: showRun, LogAdded: (line) => log.queue(line) },
    // After a resync the stream is reopened from the last line this page holds.
    reopenOnResync: true,
    refresh: () => Promise.all([api("runs/" + encodeURIComponent(runId)).then(showRun), fetchLogs()]),
  };
}

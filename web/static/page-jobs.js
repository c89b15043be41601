// Job definitions: last run, its status and the next run follow the runs; an operator's
// enable or disable shows the definition it answers with.

import { applyWhen } from "./actions.js";
import { api } from "./api.js";
import { debounce, el, findRow, slug } from "./dom.js";
import { setTime } from "./times.js";

function showJob(tbody, job) {
  const row = findRow(tbody, "data-job-type-id", job.jobTypeId);
  if (!row) return;
  setTime(row.querySelector(".last-run time"), job.lastRunAt);
  const status = row.querySelector(".last-status");
  status.replaceChildren();
  if (job.lastRunStatus) {
    status.appendChild(el("span", "status status-" + slug(job.lastRunStatus), job.lastRunStatus));
  }
  setTime(row.querySelector(".next-run time"), job.nextRunAt);
  row.querySelector(".enabled").textContent = job.isEnabled ? "yes" : "no";
  const actions = row.querySelector("td.actions");
  if (actions) applyWhen(actions, job.isEnabled ? "enabled" : "disabled");
}

export function jobsPage() {
  const tbody = document.getElementById("jobs-body");
  const refresh = () =>
    api("jobs").then((data) => {
      for (const job of data.jobs) showJob(tbody, job);
    });
  const soon = debounce(() => refresh().catch(() => {}), 1000);
  document.addEventListener("zapjobs:acted", (event) => {
    if ("isEnabled" in event.detail) showJob(tbody, event.detail);
  });
  return { params: () => [["topics", "runs"]], events: { JobRunUpdated: soon }, refresh };
}

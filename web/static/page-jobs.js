// Job definitions: last run, its status and the next run follow the runs.

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
}

export function jobsPage() {
  const refresh = () =>
    api("jobs").then((data) => {
      const tbody = document.getElementById("jobs-body");
      for (const job of data.jobs) showJob(tbody, job);
    });
  const soon = debounce(() => refresh().catch(() => {}), 1000);
  return { params: () => [["topics", "runs"]], events: { JobRunUpdated: soon }, refresh };
}

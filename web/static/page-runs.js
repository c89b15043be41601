// The runs list: its filter (status, job type, queue) holds for live rows too. A search
// (q) is answered by the server alone: while one is shown, live updates change the rows
// it found (and take away those that leave the filter) but add none.

import { api } from "./api.js";
import { body } from "./dom.js";
import { replaceRuns, upsertRun } from "./run-rows.js";

export function runsPage() {
  const status = body.getAttribute("data-status-filter") || "";
  const jobType = body.getAttribute("data-job-type-filter") || "";
  const queue = body.getAttribute("data-queue-filter") || "";
  const options = {
    firstPage: body.getAttribute("data-first-page") === "1",
    limit: Number(body.getAttribute("data-page-size")) || 50,
    adds: body.getAttribute("data-search") !== "1",
    matches: (run) =>
      (!status || run.status === status) &&
      (!jobType || run.jobTypeId === jobType) &&
      (!queue || run.queue === queue),
  };
  return {
    params: () => [["topics", "runs"]],
    events: { JobRunUpdated: (run) => upsertRun(run, options) },
    refresh: () => api("runs" + window.location.search).then((data) => replaceRuns(data.runs)),
  };
}

// The runs list: its filter (status, job type) holds for live rows too.

import { api } from "./api.js";
import { body } from "./dom.js";
import { replaceRuns, upsertRun } from "./run-rows.js";

export function runsPage() {
  const status = body.getAttribute("data-status-filter") || "";
  const jobType = body.getAttribute("data-job-type-filter") || "";
  const options = {
    firstPage: body.getAttribute("data-first-page") === "1",
    limit: Number(body.getAttribute("data-page-size")) || 50,
    matches: (run) => (!status || run.status === status) && (!jobType || run.jobTypeId === jobType),
  };
  return {
    params: () => [["topics", "runs"]],
    events: { JobRunUpdated: (run) => upsertRun(run, options) },
    refresh: () => api("runs" + window.location.search).then((data) => replaceRuns(data.runs)),
  };
}

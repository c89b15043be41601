// A job type's page: its recent runs live, its insights (figures, charts, errors) drawn
// again by the server when one of its runs finishes, and every minute.

import { api, refreshPart } from "./api.js";
import { body, debounce } from "./dom.js";
import { replaceRuns, upsertRun } from "./run-rows.js";

const FINISHED = new Set(["Completed", "Failed", "Cancelled"]);

export function jobPage() {
  const jobType = body.getAttribute("data-job-type") || "";
  const limit = Number(body.getAttribute("data-page-size")) || 15;
  const options = { limit, matches: (run) => run.jobTypeId === jobType };
  const refreshInsights = () => refreshPart("insights", "insights");
  const insightsSoon = debounce(() => refreshInsights().catch(() => {}), 2000);
  setInterval(insightsSoon, 60000);
  return {
    params: () => [["topics", "runs"]],
    events: {
      JobRunUpdated(run) {
        if (run.jobTypeId !== jobType) return;
        upsertRun(run, options);
        if (FINISHED.has(run.status)) insightsSoon();
      },
    },
    refresh: () =>
      Promise.all([
        api("runs?job_type=" + encodeURIComponent(jobType) + "&limit=" + limit).then((data) =>
          replaceRuns(data.runs)
        ),
        refreshInsights(),
      ]),
  };
}

// The overview: stat cards, the chart, queues, recent runs and workers.

import { api, refreshPart } from "./api.js";
import { body, debounce } from "./dom.js";
import { formatCount } from "./format.js";
import { showQueues } from "./queue-rows.js";
import { replaceRuns, upsertRun } from "./run-rows.js";
import { readRendered, replaceRunning, replaceWorkers, trackRun, upsertWorker } from "./worker-rows.js";

const FINISHED = new Set(["Completed", "Failed", "Cancelled"]);

export function showStats(stats) {
  const estimated = stats.estimated || [];
  for (const node of document.querySelectorAll("[data-stat]")) {
    const field = node.getAttribute("data-stat");
    if (!(field in stats)) continue;
    const text = (estimated.includes(field) ? "≈" : "") + formatCount(stats[field]);
    if (node.textContent === text) continue;
    node.textContent = text;
    node.classList.remove("changed");
    void node.offsetWidth; // restart the highlight animation
    node.classList.add("changed");
  }
}

export function overviewPage() {
  const limit = Number(body.getAttribute("data-page-size")) || 15;
  // The server draws the chart: fetch it again when runs finish (its answer is shared by
  // every viewer), and every minute, since the range moves even when nothing happens.
  const refreshChart = () => refreshPart("overview-chart", "chart");
  const chartSoon = debounce(() => refreshChart().catch(() => {}), 2000);
  setInterval(chartSoon, 60000);
  readRendered();
  return {
    params: () => [["topics", "stats,runs,workers,queues"]],
    events: {
      StatsUpdated: showStats,
      QueuesUpdated: (data) => showQueues(data.queues),
      JobRunUpdated(run) {
        upsertRun(run, { limit });
        trackRun(run);
        if (FINISHED.has(run.status)) chartSoon();
      },
      WorkerUpdated: upsertWorker,
    },
    refresh: () =>
      Promise.all([
        api("stats").then(showStats),
        api("queues").then(showQueues),
        api("runs?limit=" + limit).then((data) => replaceRuns(data.runs)),
        api("workers").then((data) => replaceWorkers(data.workers)),
        api("runs?status=Running&limit=500").then((data) => replaceRunning(data.runs)),
        refreshChart(),
      ]),
  };
}

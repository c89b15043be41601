// The workers page: heartbeats, and what each worker is running now.

import { api } from "./api.js";
import { readRendered, replaceRunning, replaceWorkers, trackRun, upsertWorker } from "./worker-rows.js";

export function workersPage() {
  readRendered();
  return {
    params: () => [["topics", "workers,runs"]],
    events: { WorkerUpdated: upsertWorker, JobRunUpdated: trackRun },
    refresh: () =>
      Promise.all([
        api("workers").then((data) => replaceWorkers(data.workers)),
        api("runs?status=Running&limit=500").then((data) => replaceRunning(data.runs)),
      ]),
  };
}

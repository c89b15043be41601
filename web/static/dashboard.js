// zapjobs-sse live dashboard client (an ES module, served as it is): picks the page's
// controller and keeps the page live over ONE EventSource (stream.js).
// Everything from the database goes into the page with textContent, never as HTML.

import { setupActions } from "./actions.js";
import { setupFilterForms, setupTheme, showScriptControls } from "./controls.js";
import { body } from "./dom.js";
import { setupKeyboard } from "./keyboard.js";
import { activityPage } from "./page-activity.js";
import { deadLetterPage } from "./page-dead-letter.js";
import { jobPage } from "./page-job.js";
import { jobsPage } from "./page-jobs.js";
import { overviewPage } from "./page-overview.js";
import { queuesPage } from "./page-queues.js";
import { runPage } from "./page-run.js";
import { runsPage } from "./page-runs.js";
import { workersPage } from "./page-workers.js";
import { LiveConnection } from "./stream.js";
import { keepTimesTicking } from "./times.js";

const PAGES = {
  overview: overviewPage,
  runs: runsPage,
  run: runPage,
  jobs: jobsPage,
  job: jobPage,
  queues: queuesPage,
  workers: workersPage,
  "dead-letter": deadLetterPage,
  activity: activityPage,
};

function start() {
  setupTheme();
  showScriptControls();
  setupFilterForms();
  setupKeyboard();
  setupActions();
  keepTimesTicking();
  const factory = PAGES[body.getAttribute("data-page") || ""];
  if (!factory || typeof EventSource === "undefined") return;
  const connection = new LiveConnection(factory());
  window.zapjobsLive = connection; // for people debugging in the console
  connection.open();
  const stop = () => {
    connection.stopPolling();
    connection.close();
  };
  document.addEventListener("zapjobs:signed-out", stop);
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      connection.stale = true;
      connection.open();
    }
  });
}

start();

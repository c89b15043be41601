// The dead letter queue: says when it has changed (paging keeps the rows it rendered); an
// operator's action on one entry shows the entry it answers with.

import { api } from "./api.js";
import { findRow, setClassPrefix } from "./dom.js";

function changed() {
  const notice = document.getElementById("dead-letter-changed");
  if (notice) notice.hidden = false;
}

function showEntry(entry) {
  const row = findRow(document.getElementById("dead-letter-body"), "data-dead-letter-id", entry.id);
  if (!row) return;
  const status = row.querySelector(".entry-status .status");
  status.textContent = entry.status;
  status.removeAttribute("title");
  setClassPrefix(status, "dl-status-", entry.status);
  // Only a Pending entry can be acted on; keep the answer (the new run's link) in sight.
  for (const form of row.querySelectorAll("td.actions form")) {
    const answered = form.querySelector(".action-done");
    if (!answered) form.hidden = true;
    else for (const control of form.querySelectorAll("button, label")) control.hidden = true;
  }
}

export function deadLetterPage() {
  let lastCount = null;
  document.addEventListener("zapjobs:acted", (event) => {
    if ("changed" in event.detail) changed();
    else if (event.detail.id && "originalRunId" in event.detail) showEntry(event.detail);
  });
  return {
    params: () => [["topics", "stats"]],
    events: {
      StatsUpdated(stats) {
        if (lastCount !== null && stats.deadLetterCount !== lastCount) changed();
        lastCount = stats.deadLetterCount;
      },
    },
    refresh: () =>
      api("stats").then((stats) => {
        lastCount = stats.deadLetterCount;
      }),
  };
}

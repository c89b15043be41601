// The dead letter queue: says when it has changed (paging keeps the rows it rendered).

import { api } from "./api.js";

export function deadLetterPage() {
  let lastCount = null;
  return {
    params: () => [["topics", "stats"]],
    events: {
      StatsUpdated(stats) {
        if (lastCount !== null && stats.deadLetterCount !== lastCount) {
          const notice = document.getElementById("dead-letter-changed");
          if (notice) notice.hidden = false;
        }
        lastCount = stats.deadLetterCount;
      },
    },
    refresh: () =>
      api("stats").then((stats) => {
        lastCount = stats.deadLetterCount;
      }),
  };
}

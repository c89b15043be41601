// The queues page: pending and running runs per queue, and the oldest pending run's age.

import { api } from "./api.js";
import { showQueues } from "./queue-rows.js";

export function queuesPage() {
  return {
    params: () => [["topics", "queues"]],
    events: { QueuesUpdated: (data) => showQueues(data.queues) },
    refresh: () => api("queues").then(showQueues),
  };
}

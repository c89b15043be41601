// Queue rows (tr[data-queue]) as web/templates/macros.html renders them, kept live from
// QueuesUpdated (every queue, by name) or GET {base}/api/queues. Ages tick in times.js.

import { base, el, findRow, showEmpty } from "./dom.js";
import { formatCount } from "./format.js";
import { setAge } from "./times.js";

function setCount(cell, value) {
  const text = formatCount(value);
  if (cell.textContent === text) return;
  const first = cell.textContent === "";
  cell.textContent = text;
  if (first) return;
  cell.classList.remove("changed");
  void cell.offsetWidth; // restart the highlight animation
  cell.classList.add("changed");
}

function newQueueRow(queue) {
  const row = el("tr");
  row.setAttribute("data-queue", queue.queue);
  const link = el("a", "", queue.queue);
  link.href = base + "/runs?" + new URLSearchParams({ queue: queue.queue, status: "Pending" });
  link.title = "Pending runs of this queue";
  const name = el("td", "queue-name");
  name.appendChild(link);
  const oldest = el("td", "oldest-pending");
  const time = el("time", "age");
  oldest.appendChild(time);
  row.append(name, el("td", "count pending"), el("td", "count running"), oldest);
  return row;
}

// The whole list, in the order given (by name): rows are kept, so a selected row stays selected.
export function showQueues(queues) {
  const tbody = document.getElementById("queues-body");
  if (!tbody) return;
  const rows = queues.map((queue) => {
    const row = findRow(tbody, "data-queue", queue.queue) || newQueueRow(queue);
    setCount(row.querySelector(".pending"), queue.pending);
    setCount(row.querySelector(".running"), queue.running);
    setAge(row.querySelector("time.age"), queue.oldestPendingSince);
    return row;
  });
  tbody.replaceChildren(...rows);
  showEmpty("queues-empty", queues.length === 0);
}

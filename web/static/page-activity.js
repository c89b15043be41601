// The Activity page: on its first page, each action an operator takes arrives as a new
// row at the top (ActionPerformed, topic activity); on older pages, a notice says so.

import { api } from "./api.js";
import { base, body, el } from "./dom.js";
import { timeElement } from "./times.js";

function target(entry) {
  const cell = el("td", "target");
  if (entry.targetId === null) {
    const filter = Object.entries(entry.filter || {}).filter(([, value]) => value);
    const shown = filter.map(([key, value]) => `${key}=${value}`).join(" ");
    cell.textContent = `${entry.targetKind}: every entry matching ${shown}`;
  } else if (entry.targetKind === "run") {
    const link = el("a", "", `run ${entry.targetId.slice(0, 8)}`);
    link.href = `${base}/runs/${entry.targetId}`;
    cell.append(link);
  } else {
    cell.textContent = `${entry.targetKind} ${entry.targetId}`;
  }
  return cell;
}

function row(entry) {
  const tr = el("tr");
  tr.setAttribute("data-activity-id", String(entry.id));
  const when = el("td");
  when.append(timeElement(entry.at));
  const outcome = el("td");
  outcome.append(
    el("span", `outcome outcome-${entry.outcome}`, entry.outcome),
    " ",
    el("span", "http-status", entry.httpStatus),
  );
  const message = el("td", "message", entry.message || "");
  if (entry.changed !== null && entry.changed !== undefined) {
    message.append(` (${entry.changed} changed)`);
  }
  if (entry.runId) {
    const link = el("a", "", "new run");
    link.href = `${base}/runs/${entry.runId}`;
    message.append(" ", link);
  }
  tr.append(
    when,
    el("td", "identity", entry.identity),
    el("td", "action", entry.action),
    target(entry),
    outcome,
    message,
  );
  return tr;
}

export function activityPage() {
  const first = body.getAttribute("data-first-page") === "1";
  const tbody = document.getElementById("activity-body");
  const changed = () => {
    const notice = document.getElementById("activity-changed");
    if (notice) notice.hidden = false;
  };
  const add = (entry) => {
    if (!first || !tbody) return changed();
    if (tbody.querySelector(`[data-activity-id="${CSS.escape(String(entry.id))}"]`)) return;
    tbody.prepend(row(entry));
    const empty = document.getElementById("activity-empty");
    if (empty) empty.hidden = true;
  };
  return {
    params: () => [["topics", "activity"]],
    events: { ActionPerformed: add },
    // After a gap (or while polling), the newest page of the trail: what is not shown yet.
    refresh: () =>
      first
        ? api("activity").then(({ activity }) => [...activity].reverse().forEach(add))
        : Promise.resolve(),
  };
}

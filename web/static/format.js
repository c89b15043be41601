// What the pages show for values: the same text as the server's Jinja filters (pages.py),
// checked by tests/unit/test_dashboard_format.py. Pure functions, no DOM.

export const LEVELS = ["Trace", "Debug", "Info", "Warning", "Error", "Critical"];

export function formatTime(iso) {
  return iso ? iso.slice(0, 10) + " " + iso.slice(11, 19) : "";
}

// A log line's time of day, to the millisecond: "17:59:31.123".
export function formatLogTime(iso) {
  return iso ? iso.slice(11, 23) : "";
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) {
    const tenths = Math.floor(ms / 100);
    return Math.floor(tenths / 10) + "." + (tenths % 10) + " s";
  }
  const seconds = Math.floor(ms / 1000);
  return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
}

// How long something has lasted so far (a running run, the wait of a queue's oldest
// pending run): whole seconds, then minutes, hours and days.
export function formatElapsed(ms) {
  if (ms === null || ms === undefined) return "";
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return seconds + " s";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  return Math.floor(seconds / 86400) + " d " + Math.floor((seconds % 86400) / 3600) + " h";
}

export function formatCount(value) {
  if (value === null || value === undefined) return "";
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
}

// "3 min ago", "in 2 h", "just now": how far a wire timestamp is from `nowMs`.
export function formatRelative(iso, nowMs) {
  if (!iso) return "";
  const seconds = Math.trunc((nowMs - Date.parse(iso)) / 1000);
  const ahead = seconds < 0;
  const away = Math.abs(seconds);
  if (away < 10) return ahead ? "in a moment" : "just now";
  let text;
  if (away < 60) text = away + " s";
  else if (away < 3600) text = Math.floor(away / 60) + " min";
  else if (away < 86400) text = Math.floor(away / 3600) + " h";
  else text = Math.floor(away / 86400) + " d";
  return ahead ? "in " + text : text + " ago";
}

// The progress bar of a run: null when there is nothing to show (a finished run that never
// reported progress); value null is an indeterminate bar (running, no progress yet).
export function progressView(run) {
  const progress = run.progress || 0;
  if (run.total && run.total > 0) {
    return { max: run.total, value: Math.min(progress, run.total), text: progress + "/" + run.total };
  }
  if (progress > 0) return { max: 100, value: Math.min(progress, 100), text: progress + "%" };
  if (run.status === "Running") return { max: 100, value: null, text: "" };
  return null;
}

// A run row shows the error of the attempt its status is about; a retry that is running
// again has no error (yet): the previous attempt's stays on the run page.
export function rowError(run) {
  return run.status === "Failed" || run.status === "AwaitingRetry" ? run.errorMessage || "" : "";
}

// The heading of the run page's error panel: whose error it is.
export function errorHeading(run) {
  const attempt = run.attemptNumber || 1;
  if (run.status === "Failed") return attempt > 1 ? "Attempt " + attempt + " failed" : "Error";
  if (attempt > 1) return "Attempt " + (attempt - 1) + " failed";
  return "Error";
}

// What a worker is running now, from the runs table: "sync-inventory", or
// "6 runs: resize-images ×3, send-welcome-email ×3" (most frequent first).
export function runningSummary(jobTypes) {
  if (!jobTypes.length) return "";
  if (jobTypes.length === 1) return jobTypes[0];
  const counts = new Map();
  for (const type of jobTypes) counts.set(type, (counts.get(type) || 0) + 1);
  const parts = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([type, n]) => (n > 1 ? type + " ×" + n : type));
  return jobTypes.length + " runs: " + parts.join(", ");
}

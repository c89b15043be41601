// The operators' actions (macros.html action_form). Without JavaScript each is a form POST
// answered 303 back with a notice; here it is a fetch to the JSON API (data-api) with the
// session's CSRF token (the csrf-token meta tag) and an idempotency key per intended
// action: a double click sends one request, and a resent one gets the first answer.
// What the action changes then shows through the stream like any executor's change; the
// answer, or the error (409 with the current status, 400), shows beside the button.

import { base, el } from "./dom.js";
import { signedOut } from "./indicator.js";

const TIMEOUT_MS = 15000;
const csrfToken = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") || "";

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // crypto.randomUUID needs a secure context; this does not
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

// Show the forms offered in `state` (data-when: a run status, "enabled", "disabled").
export function applyWhen(container, state) {
  for (const form of container.querySelectorAll("form[data-when]")) {
    form.hidden = !form.getAttribute("data-when").split(" ").includes(state);
  }
}

// The confirmation is the dialog's here: the forms' required "sure" checkbox is not.
export function prepareForms(root) {
  for (const form of root.querySelectorAll("form.action-form")) form.noValidate = true;
}

function confirmed(form, button) {
  const question = form.getAttribute("data-confirm");
  const dialog = document.getElementById("confirm-action");
  if (!question || !dialog) return Promise.resolve(true);
  document.getElementById("confirm-action-message").textContent = question;
  document.getElementById("confirm-action-ok").textContent = button.textContent;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// The JSON body: a bulk action's filter, a trigger's input (JSON text; throws if it is not).
function requestBody(form) {
  const fields = new FormData(form);
  const data = {};
  for (const name of ["status", "job_type"]) {
    if (fields.has(name)) data[name] = String(fields.get(name)) || null;
  }
  if (fields.has("input")) {
    const text = String(fields.get("input")).trim();
    if (text) data.input = JSON.parse(text);
  }
  return data;
}

function show(form, kind, text, runId) {
  const result = form.querySelector(".action-result");
  if (!result) return;
  result.className = "action-result action-" + kind;
  result.replaceChildren(text);
  if (runId) {
    const link = el("a", "run-id", "run " + runId.slice(0, 8));
    link.href = base + "/runs/" + encodeURIComponent(runId);
    link.title = runId;
    result.append(" ", link);
  }
}

// What the answer says, and the run it created (trigger, retry, requeue), if any.
function described(status, answer) {
  if ("changed" in answer) return ["Done: " + answer.changed + " changed", null];
  if (status === 201) return ["New", answer.id];
  if (answer.requeuedRunId) return ["Requeued:", answer.requeuedRunId];
  return ["Done", null];
}

async function send(form, data) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    return await fetch(form.getAttribute("data-api"), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRF-Token": csrfToken,
        "Idempotency-Key": form.actionKey,
      },
      body: JSON.stringify(data),
      signal: controller.signal,
    });
  } finally {
    clearTimeout(timer);
  }
}

async function act(form, button) {
  if (form.busy) return; // a second click while the first is asked or sent
  form.busy = true;
  try {
    let data;
    try {
      data = requestBody(form);
    } catch (error) {
      show(form, "error", "input: not valid JSON (" + error.message + ")");
      return;
    }
    if (!(await confirmed(form, button))) return;
    form.actionKey = form.actionKey || newKey(); // kept until answered: a resend replays
    button.disabled = true;
    show(form, "busy", "Sending…");
    let response;
    try {
      response = await send(form, data);
    } catch {
      show(form, "error", "Not answered: the server cannot be reached. Try again.");
      return;
    }
    form.actionKey = null; // answered: the next click is a new action
    if (response.status === 401) signedOut();
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      show(form, "error", answer.error || "HTTP " + response.status);
      return;
    }
    const [text, runId] = described(response.status, answer);
    show(form, "done", text, runId);
    form.dispatchEvent(new CustomEvent("zapjobs:acted", { bubbles: true, detail: answer }));
  } finally {
    form.busy = false;
    button.disabled = false;
  }
}

export function setupActions() {
  prepareForms(document);
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("form.action-form[data-api]")) return;
    event.preventDefault();
    act(form, event.submitter || form.querySelector("button[type=submit]"));
  });
}

"""The operators' actions: trigger, cancel, retry, the dead letter (one entry or a filter's
entries), enable and disable (README.md, "Actions").

    POST {base}/api/<target>/<action>   JSON: 201/200 with the row, 4xx {"error": ...}
    POST {base}/<target>/<action>       the pages' forms (no JavaScript): 303 back to the
                                        page with a notice; a bad request, a refusal or an
                                        unknown id is an error page

Each action: who may act (an operator, unless --read-only; no forgery), what it acts on,
then ONE short transaction: the idempotency key claimed, the change (conditional on the
state it expects), the audit row, the answer kept for a resubmission. After the commit,
ActionPerformed on the stream and a log event. A bulk action changes its entries in
batches of --action-batch-size, one transaction each.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from ...db import Row, Transaction
from ..keys import DATABASE, SETTINGS
from ..live.wire import (
    DEAD_LETTER_STATUSES,
    RUN_STATUSES,
    dead_letter_wire,
    enum_name,
    job_wire,
    run_wire,
)
from .audit import Activity, announce
from .auth.authenticator import AUTHENTICATOR, PRINCIPAL, safe_next, see_other
from .layout import render_page
from .notice import leave_notice
from .params import MAX_PARAMETER_LENGTH, form_fields, parse_uuid

__all__ = ["IDEMPOTENCY_KEYS", "IdempotencyKeys", "Outcome", "setup_actions"]

# Dead-letter statuses an action leaves an entry in.
REQUEUED, DISCARDED, ARCHIVED = 1, 2, 3
CANCELLABLE: Final = ("Pending", "Scheduled", "Running", "AwaitingRetry")
MAX_KEY_LENGTH: Final = 255


class IdempotencyKeys:
    """When this process last forgot the expired idempotency keys: at most once an hour,
    after an action (an expired key that is still there is claimed anew anyway)."""

    def __init__(self, hours: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hours = hours
        self._clock = clock
        self._forgot_at = -float("inf")

    def due(self) -> bool:
        now = self._clock()
        if now - self._forgot_at < 3600:
            return False
        self._forgot_at = now
        return True


IDEMPOTENCY_KEYS = web.AppKey("idempotency_keys", IdempotencyKeys)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an action ended: the HTTP answer and what the audit trail says of it."""

    http_status: int
    body: dict[str, Any]
    outcome: str  # done, unchanged, conflict, not_found, invalid, forbidden
    message: str
    run_id: str | None = None
    changed: int | None = None


def _done(status: int, body: dict[str, Any], message: str, run_id: str | None = None) -> Outcome:
    return Outcome(status, body, "done", message, run_id=run_id)


def _error(http_status: int, outcome: str, message: str, **extra: Any) -> Outcome:
    return Outcome(http_status, {"error": message, **extra}, outcome, message)


@dataclass(frozen=True, slots=True)
class Act:
    """One action asked for: what, on which target, with which fields."""

    action: str
    kind: str  # job, run, dead_letter
    target: str | None  # None: a bulk action
    fields: Mapping[str, Any]
    identity: str
    batch_size: int


Perform = Callable[[Transaction, Act], Awaitable[Outcome]]


class _Invalid(Exception):
    """Bad input: a 400 naming the field."""


# -- the actions ------------------------------------------------------------------------


def _input_json(fields: Mapping[str, Any], form: bool) -> str | None:
    """The trigger's input serialised as JSON; None (the definition's config_json) when
    there is none, or it is JSON null (as ZapJobs' TriggerAsync)."""
    if "input" not in fields:
        return None
    value = fields["input"]
    if form:
        text = str(value).strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as error:
            raise _Invalid(f"input: not valid JSON ({error})") from None
    return None if value is None else json.dumps(value, separators=(",", ":"))


async def trigger(tx: Transaction, act: Act) -> Outcome:
    assert act.target is not None
    row = await tx.trigger_job(act.target, act.fields["input_json"], act.identity)
    if row is None:
        return _error(404, "not_found", f"id: no job type {act.target!r}")
    return _done(201, run_wire(row), f"Triggered {act.target}: run {row['id']}", str(row["id"]))


def _conflict(kind: str, target: str, status: str | None, expected: str) -> Outcome:
    return _error(409, "conflict", f"id: {kind} {target} is {status}; {expected}", status=status)


async def cancel(tx: Transaction, act: Act) -> Outcome:
    assert act.target is not None
    row = await tx.cancel_run(act.target)
    if row is not None:
        return _done(200, run_wire(row), f"Cancelled run {act.target}")
    current = await tx.run(act.target)
    if current is None:
        return _error(404, "not_found", f"id: no run {act.target}")
    status = enum_name(RUN_STATUSES, current["status"])
    expected = f"only a {', '.join(CANCELLABLE)} run can be cancelled"
    return _conflict("run", act.target, status, expected)


async def retry(tx: Transaction, act: Act) -> Outcome:
    assert act.target is not None
    row = await tx.retry_run(act.target, act.identity)
    if row is not None:
        message = f"Retried run {act.target}: new run {row['id']}"
        return _done(201, run_wire(row), message, str(row["id"]))
    current = await tx.run(act.target)
    if current is None:
        return _error(404, "not_found", f"id: no run {act.target}")
    status = enum_name(RUN_STATUSES, current["status"])
    return _conflict("run", act.target, status, "only a Failed or Cancelled run can be retried")


async def _dead_letter_rows(tx: Transaction, act: Act, limit: int) -> list[Row]:
    """The Pending entries this action changed (the one target, or a batch of the filter)."""
    job_type = act.fields.get("job_type") if act.target is None else None
    if act.action == "requeue":
        return await tx.requeue_dead_letter(
            entry_id=act.target, job_type=job_type, limit=limit, identity=act.identity
        )
    status = DISCARDED if act.action == "discard" else ARCHIVED
    return await tx.settle_dead_letter(
        entry_id=act.target, job_type=job_type, limit=limit, status=status
    )


async def settle_entry(tx: Transaction, act: Act) -> Outcome:
    """requeue, discard or archive one dead-letter entry."""
    assert act.target is not None
    rows = await _dead_letter_rows(tx, act, 1)
    if rows:
        entry = rows[0]
        run_id = str(entry["requeued_run_id"]) if act.action == "requeue" else None
        message = f"{_past(act.action).capitalize()} dead-letter entry {act.target}"
        if run_id is not None:
            message += f": new run {run_id}"
        return _done(200, dead_letter_wire(entry), message, run_id)
    current = await tx.dead_letter_entry(act.target)
    if current is None:
        return _error(404, "not_found", f"id: no dead-letter entry {act.target}")
    status = enum_name(DEAD_LETTER_STATUSES, current["status"])
    expected = f"only a Pending entry can be {_past(act.action)}"
    return _conflict("dead-letter entry", act.target, status, expected)


def _past(action: str) -> str:
    return {"requeue": "requeued", "discard": "discarded", "archive": "archived"}[action]


def _enabling(enabled: bool) -> Perform:
    async def set_enabled(tx: Transaction, act: Act) -> Outcome:
        assert act.target is not None
        row = await tx.set_job_enabled(act.target, enabled)
        word = "Enabled" if enabled else "Disabled"
        if row is not None:
            return _done(200, job_wire(row), f"{word} {act.target}")
        current = await tx.definition(act.target)
        if current is None:
            return _error(404, "not_found", f"id: no job type {act.target!r}")
        return Outcome(200, job_wire(current), "unchanged", f"{act.target} was already {word}")

    return set_enabled


# -- who may act, and what on -----------------------------------------------------------


async def _fields(request: web.Request, form: bool) -> Mapping[str, Any]:
    """The request's fields: the form's, or the JSON body's (an object; none is {})."""
    if form:
        try:
            return await form_fields(request)
        except web.HTTPBadRequest:
            raise _Invalid("body: not a form (undecodable)") from None
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise _Invalid(f"body: not JSON ({error})") from None
    if not isinstance(body, dict):
        raise _Invalid("body: must be a JSON object")
    return body


def _role_refusal(request: web.Request) -> str | None:
    """Why this requester may not act at all (--read-only, a viewer), if it may not."""
    principal = request[PRINCIPAL]
    if request.app[SETTINGS].read_only:
        return "read-only: this dashboard takes no actions (--read-only)"
    if not principal.is_operator:
        return f"forbidden: {principal.identity} is a viewer; actions need the operator role"
    return None


def _forgery_refusal(request: web.Request, fields: Mapping[str, Any]) -> str | None:
    """Why this request may be a forgery (another site's page posting), if it may be."""
    supplied = request.headers.get("X-CSRF-Token") or fields.get("csrf_token")
    forgery = request.app[AUTHENTICATOR].forgery_refusal(
        request, supplied if isinstance(supplied, str) else None
    )
    return None if forgery is None else f"forbidden: {forgery}"


def _target(kind: str, text: str) -> str:
    if kind == "job":
        if not text or len(text) > MAX_PARAMETER_LENGTH or "\x00" in text:
            raise _Invalid(f"id: {text[:64]!r} is not a job type id")
        return text
    try:
        return parse_uuid("id", text)
    except web.HTTPBadRequest:
        raise _Invalid(f"id: {text[:64]!r} is not a UUID") from None


def _bulk_filter(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The dead-letter page's filter: status (a name, as the page's filter gives it) and
    job_type."""
    status = fields.get("status")
    if status == "":
        status = None
    if status is not None and status not in DEAD_LETTER_STATUSES:
        names = ", ".join(DEAD_LETTER_STATUSES)
        raise _Invalid(f"status: {str(status)[:64]!r} is not one of {names}")
    job_type = fields.get("job_type")
    if job_type is not None and not isinstance(job_type, str):
        raise _Invalid("job_type: must be a string")
    if job_type is not None and (len(job_type) > MAX_PARAMETER_LENGTH or "\x00" in job_type):
        raise _Invalid("job_type: not a job type id")
    if job_type is not None:
        job_type = job_type.strip() or None
    return {"status": status, "job_type": job_type}


def _idempotency_key(request: web.Request, act: Act, fields: Mapping[str, Any]) -> str | None:
    """A digest of who asks what of which target with the client's key (the form's
    `idempotency_key`, or the Idempotency-Key header); None without one."""
    key = request.headers.get("Idempotency-Key") or fields.get("idempotency_key")
    if not isinstance(key, str) or not key.strip():
        return None
    if len(key) > MAX_KEY_LENGTH:
        raise _Invalid(f"idempotency_key: longer than {MAX_KEY_LENGTH} characters")
    scope = "\n".join([act.identity, act.action, act.kind, act.target or "", key.strip()])
    return hashlib.sha256(scope.encode("utf-8", "surrogateescape")).hexdigest()


# -- carrying it out --------------------------------------------------------------------


def _activity(act: Act, outcome: Outcome, bulk_filter: Mapping[str, Any] | None) -> Activity:
    return Activity(
        act.identity,
        act.action,
        act.kind,
        act.target,
        outcome.outcome,
        outcome.http_status,
        outcome.message,
        filter=bulk_filter,
        changed=outcome.changed,
        run_id=outcome.run_id,
    )


def _stored(outcome: Outcome) -> str:
    stored = {"body": outcome.body, "outcome": outcome.outcome, "message": outcome.message}
    return json.dumps(stored)


def _replayed(answer: Row | None) -> Outcome:
    """The answer given to the first request with this key."""
    if answer is None or answer["http_status"] is None:
        return _error(409, "conflict", "idempotency_key: the same request is still in progress")
    stored = json.loads(answer["response"])
    return Outcome(int(answer["http_status"]), stored["body"], stored["outcome"], stored["message"])


async def _perform_one(
    request: web.Request, act: Act, perform: Perform, key: str | None
) -> tuple[Outcome, Row | None]:
    """One transaction: key, change, audit row, stored answer. (The audit row is None for
    a replayed answer: the first request was recorded.)"""
    hours = request.app[IDEMPOTENCY_KEYS].hours
    async with request.app[DATABASE].transaction() as tx:
        if key is not None and not await tx.claim_idempotency_key(key, hours):
            return _replayed(await tx.idempotency_answer(key)), None
        outcome = await perform(tx, act)
        row = await tx.record_activity(_activity(act, outcome, None).params())
        if key is not None:
            await tx.store_idempotency_answer(key, outcome.http_status, _stored(outcome))
    return outcome, row


async def _perform_bulk(
    request: web.Request, act: Act, bulk_filter: Mapping[str, Any], key: str | None
) -> tuple[Outcome, Row | None]:
    """Batches of one transaction each until the filter matches no Pending entry."""
    database, hours = request.app[DATABASE], request.app[IDEMPOTENCY_KEYS].hours
    if key is not None:
        async with database.transaction() as tx:
            if not await tx.claim_idempotency_key(key, hours):
                return _replayed(await tx.idempotency_answer(key)), None
    changed = 0
    # Only Pending entries change: a filter on another status matches none of them.
    if bulk_filter["status"] in (None, "Pending"):
        while True:
            async with database.transaction() as tx:
                rows = await _dead_letter_rows(tx, act, act.batch_size)
            if not rows:
                break
            changed += len(rows)
    message = f"{_past(act.action).capitalize()} {changed} dead-letter entries"
    outcome = Outcome(200, {"changed": changed}, "done", message, changed=changed)
    async with database.transaction() as tx:
        row = await tx.record_activity(_activity(act, outcome, bulk_filter).params())
        if key is not None:
            await tx.store_idempotency_answer(key, outcome.http_status, _stored(outcome))
    return outcome, row


def _answer(request: web.Request, act: Act, outcome: Outcome, form: bool) -> web.StreamResponse:
    if not form:
        headers = {"Cache-Control": "no-store"}
        if outcome.http_status == 201 and outcome.run_id is not None:
            base = request.app[SETTINGS].normalized_base_path
            headers["Location"] = f"{base}/api/runs/{outcome.run_id}"
        return web.json_response(outcome.body, status=outcome.http_status, headers=headers)
    if outcome.http_status in (200, 201, 409):
        response = see_other(_back(request, act))
        leave_notice(
            request, response, "conflict" if outcome.http_status == 409 else "done", outcome.message
        )
        return response
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found"}
    context = {
        "status": outcome.http_status,
        "title": titles.get(outcome.http_status, "Error"),
        "message": outcome.message,
    }
    return render_page("error.html", request, context, status=outcome.http_status)


def _back(request: web.Request, act: Act) -> str:
    """Where a form goes back to: its `next` field, else the page it was posted from,
    else the target's page."""
    base = request.app[SETTINGS].normalized_base_path
    pages = {"job": f"{base}/jobs", "dead_letter": f"{base}/dead-letter"}
    default = pages.get(act.kind) or f"{base}/runs/{act.target}"
    asked = act.fields.get("next")
    if isinstance(asked, str) and asked:
        return safe_next(asked, base)
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        if parts.netloc.lower() == request.host.lower():
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            return safe_next(path, base)
    return default


def _handler(
    action: str, kind: str, perform: Perform | None, *, form: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of one action (`perform` None: the bulk dead-letter action)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        text = request.match_info.get("id")
        act = Act(action, kind, text, {}, request[PRINCIPAL].identity, settings.action_batch_size)
        bulk_filter: dict[str, Any] | None = None
        try:
            # Who may act first: a viewer's request is a 403, whatever its body.
            refusal = _role_refusal(request)
            fields = await _fields(request, form) if form else {}
            refusal = refusal or _forgery_refusal(request, fields)
            if refusal is not None:
                return await _refused(request, act, _error(403, "forbidden", refusal), form)
            if not form:
                fields = await _fields(request, form)
            act = replace(act, fields=fields)
            if text is not None:
                act = replace(act, target=_target(kind, text))
            if perform is None:
                bulk_filter = _bulk_filter(fields)
                act = replace(act, fields={**fields, "job_type": bulk_filter["job_type"]})
            if action == "trigger":
                act = replace(act, fields={**fields, "input_json": _input_json(fields, form)})
            key = _idempotency_key(request, act, fields)
        except _Invalid as error:
            return await _refused(request, act, _error(400, "invalid", str(error)), form)
        if perform is None:
            assert bulk_filter is not None
            outcome, row = await _perform_bulk(request, act, bulk_filter, key)
        else:
            outcome, row = await _perform_one(request, act, perform, key)
        if row is not None:
            announce(request.app, row)
        keys = request.app[IDEMPOTENCY_KEYS]
        if keys.due():
            await request.app[DATABASE].forget_idempotency_keys(keys.hours)
        return _answer(request, act, outcome, form)

    return handle


async def _refused(
    request: web.Request, act: Act, outcome: Outcome, form: bool
) -> web.StreamResponse:
    """An action refused before any change: recorded, announced, answered."""
    row = await request.app[DATABASE].record_activity(_activity(act, outcome, None).params())
    announce(request.app, row)
    return _answer(request, act, outcome, form)


# The actions: (path under the base, action, target kind, what it does; None: bulk).
ROUTES: Final[tuple[tuple[str, str, str, Perform | None], ...]] = (
    ("/jobs/{id}/trigger", "trigger", "job", trigger),
    ("/jobs/{id}/enable", "enable", "job", _enabling(True)),
    ("/jobs/{id}/disable", "disable", "job", _enabling(False)),
    ("/runs/{id}/cancel", "cancel", "run", cancel),
    ("/runs/{id}/retry", "retry", "run", retry),
    ("/dead-letter/{id}/requeue", "requeue", "dead_letter", settle_entry),
    ("/dead-letter/{id}/discard", "discard", "dead_letter", settle_entry),
    ("/dead-letter/{id}/archive", "archive", "dead_letter", settle_entry),
    ("/dead-letter/requeue", "requeue", "dead_letter", None),
    ("/dead-letter/discard", "discard", "dead_letter", None),
    ("/dead-letter/archive", "archive", "dead_letter", None),
)


def setup_actions(app: web.Application) -> None:
    """The actions' routes: under {base}/api for scripts, under {base} for the forms."""
    base = app[SETTINGS].normalized_base_path
    app[IDEMPOTENCY_KEYS] = IdempotencyKeys(app[SETTINGS].idempotency_hours)
    for path, action, kind, perform in ROUTES:
        name = f"{kind}_{action}" + ("_all" if "{id}" not in path else "")
        app.router.add_post(
            f"{base}/api{path}", _handler(action, kind, perform, form=False), name=f"api_{name}"
        )
        app.router.add_post(
            f"{base}{path}", _handler(action, kind, perform, form=True), name=f"form_{name}"
        )

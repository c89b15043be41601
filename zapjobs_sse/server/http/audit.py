"""The audit trail of the actions: a row of zapjobs.sse_activity for every action done or
refused (but for missing credentials), a structlog event, and ActionPerformed on the
stream's `activity` topic."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from ...db import Row
from ..keys import BROKER
from ..live.broker import TOPIC
from ..live.frames import dumps
from ..live.wire import activity_wire

__all__ = ["ACTIVITY_EVENT", "Activity", "announce"]

log = structlog.get_logger("zapjobs_sse.server.http.audit")

ACTIVITY_EVENT = "ActionPerformed"


@dataclass(frozen=True, slots=True)
class Activity:
    """One entry of the trail: who did what to which target, and how it ended."""

    identity: str
    action: str  # trigger, cancel, retry, requeue, discard, archive, enable, disable
    target_kind: str  # job, run, dead_letter
    target_id: str | None  # None for a bulk action
    outcome: str  # done, unchanged, conflict, not_found, invalid, forbidden
    http_status: int
    message: str
    filter: Mapping[str, Any] | None = None  # a bulk action's filter
    changed: int | None = None  # a bulk action's count
    run_id: str | None = None  # the run an action made

    def params(self) -> dict[str, Any]:
        """The parameters of the record_activity statement."""
        return {
            "identity": self.identity,
            "action": self.action,
            "target_kind": self.target_kind,
            "target_id": self.target_id,
            "outcome": self.outcome,
            "http_status": self.http_status,
            "message": self.message,
            "filter_json": None if self.filter is None else json.dumps(dict(self.filter)),
            "changed": self.changed,
            "run_id": self.run_id,
        }


def announce(app: web.Application, row: Row) -> None:
    """A recorded entry, to the log and to the viewers of the `activity` topic."""
    wire = activity_wire(row)
    log.info(
        "action_performed",
        identity=wire["identity"],
        action=wire["action"],
        target_kind=wire["targetKind"],
        target_id=wire["targetId"],
        outcome=wire["outcome"],
        http_status=wire["httpStatus"],
        changed=wire["changed"],
        run_id=wire["runId"],
    )
    app[BROKER].publish(ACTIVITY_EVENT, dumps(wire), (TOPIC, "activity"))

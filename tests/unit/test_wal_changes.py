"""The WAL feed's ChangeSets: rows carried whole are published without a read, the others
are read by key, and the UPDATEs that change nothing are skipped, as with the triggers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from zapjobs_sse.db import CommittedChanges, ReplicationStream, RowChange, replication
from zapjobs_sse.db.replication import _refusals
from zapjobs_sse.server.live.feeds import WalFeed

COMMITTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN = {"id": "r-1", "job_type_id": "email", "status": 0, "input_json": "{}"}


def feed() -> WalFeed:
    return WalFeed(cast(ReplicationStream, None))


def change(operation: str, table: str, row: dict[str, Any], complete: bool = True) -> RowChange:
    return RowChange(operation, "zapjobs", table, row, complete)  # type: ignore[arg-type]


def batch(*changes: RowChange) -> list[CommittedChanges]:
    return [CommittedChanges(COMMITTED, list(changes))]


def test_a_run_carried_whole_needs_no_read_and_the_latest_version_wins() -> None:
    changes = feed().changes(
        batch(change("insert", "runs", RUN), change("update", "runs", {**RUN, "status": 2}))
    )
    assert changes.run_rows == {"r-1": {**RUN, "status": 2}}
    assert not changes.runs and changes.stats and changes.received == 2
    assert changes.written_at == [COMMITTED.timestamp()]


def test_a_run_update_without_its_toasted_values_is_read_by_key() -> None:
    partial = {key: value for key, value in RUN.items() if key != "input_json"}
    changes = feed().changes(
        batch(
            change("insert", "runs", RUN), change("update", "runs", {**partial, "status": 3}, False)
        )
    )
    assert changes.runs == {"r-1"} and not changes.run_rows


def test_updates_that_change_nothing_are_skipped_even_without_their_toasted_values() -> None:
    wal = feed()
    wal.changes(batch(change("insert", "runs", RUN)))
    same = wal.changes(batch(change("update", "runs", dict(RUN))))
    partial = {key: value for key, value in RUN.items() if key != "input_json"}
    same_partial = wal.changes(batch(change("update", "runs", partial, False)))
    assert not same.run_rows and not same.runs
    assert not same_partial.run_rows and not same_partial.runs
    assert same.stats  # the stats are recomputed whatever happened


def test_every_real_change_is_published_even_between_values_of_equal_hash() -> None:
    wal = feed()
    wal.changes(batch(change("insert", "runs", {**RUN, "status": -2})))
    changed = wal.changes(batch(change("update", "runs", {**RUN, "status": -1})))
    assert changed.run_rows["r-1"]["status"] == -1  # hash(-1) == hash(-2) in Python
    long_text = wal.changes(batch(change("update", "runs", {**RUN, "input_json": "x" * 10_000})))
    assert long_text.run_rows["r-1"]["input_json"] == "x" * 10_000


def test_log_lines_are_carried_by_run_in_commit_order() -> None:
    lines = [{"id": f"l-{n}", "run_id": "r-1", "message": str(n)} for n in range(3)]
    changes = feed().changes(batch(*(change("insert", "logs", line) for line in lines)))
    carried = {run: [line.row for line in held] for run, held in changes.log_lines.items()}
    assert carried == {"r-1": lines} and not changes.log_runs


def test_heartbeats_are_aged_at_their_commit_and_deletes_stop_the_worker() -> None:
    beat = {"worker_id": "w-1", "timestamp": datetime(2026, 1, 2, 3, 3, 5)}
    changes = feed().changes(batch(change("insert", "heartbeats", beat)))
    assert changes.worker_rows["w-1"]["age_seconds"] == 60.0
    gone = feed().changes(batch(change("delete", "heartbeats", {"worker_id": "w-1"}, False)))
    assert gone.workers_gone == {"w-1"} and not gone.worker_rows


def test_other_tables_move_the_stats_only() -> None:
    changes = feed().changes(batch(change("insert", "dead_letter", {"id": "d-1"})))
    assert changes.stats and not (changes.runs or changes.run_rows or changes.log_lines)


def test_each_missing_requirement_is_named_with_how_to_set_it() -> None:
    found = {
        "wal_level": "replica",
        "can_replicate": False,
        "max_replication_slots": 2,
        "slots_used": 2,
        "max_wal_senders": 4,
        "senders_used": 1,
        "publication": False,
    }
    refusals = _refusals(found, "dashboard")
    assert len(refusals) == 4
    assert "ALTER SYSTEM SET wal_level = logical" in refusals[0]
    assert "rds.logical_replication" in refusals[0]
    assert "ALTER ROLE dashboard WITH REPLICATION" in refusals[1]
    assert "max_replication_slots" in refusals[2]
    assert "CREATE PUBLICATION zapjobs_sse" in refusals[3]
    ready = {**found, "wal_level": "logical", "can_replicate": True, "slots_used": 0}
    assert _refusals({**ready, "publication": True}, "dashboard") == []


def test_a_transaction_past_its_limit_holds_each_key_once_and_they_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replication, "TRANSACTION_ROWS", 2)
    transaction = CommittedChanges(COMMITTED)
    for n in range(5):
        line = {"id": f"l-{n}", "run_id": "r-1", "message": "x" * 1000}
        transaction.add(RowChange("insert", "zapjobs", "logs", line, True, ("id",)))
    run = RowChange("update", "zapjobs", "runs", dict(RUN), True, ("id",))
    transaction.add(run)
    transaction.add(run)
    kept = [c for c in transaction.changes if isinstance(c, RowChange)]
    assert [c.complete for c in kept] == [True, True, False, False, False, False]
    assert kept[2].row == {"id": "l-2", "run_id": "r-1"}  # the key and the run, no message
    assert kept[-1].row == {"id": "r-1"} and kept[-1].keys_only
    wal = feed()
    wal.changes(batch(change("insert", "runs", RUN)))
    changes = wal.changes([transaction])
    assert changes.log_runs == {"r-1"}  # read by cursor (with the two lines carried)
    assert changes.runs == {"r-1"}  # a key alone is never taken for an UPDATE that did nothing

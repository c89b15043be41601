"""The pgoutput decoder on hand-built messages (protocol version 1)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from zapjobs_sse.db.pgoutput import (
    Begin,
    Commit,
    PgOutputDecoder,
    PgOutputError,
    RowChange,
    Truncate,
)

TIMESTAMP, INT4, TEXT, UUID, BOOL, TEXT_ARRAY = 1114, 23, 25, 2950, 16, 1009
RUNS_OID = 16400
RUN_ID = "6f1c1b0e-8a55-4d0e-9a37-3f0c1c2a9d11"
# 2026-01-02 03:04:05.000006 UTC, in microseconds since 2000-01-01.
COMMITTED = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
PG_MICROS = int((COMMITTED - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds()) * 10**6 + 6


def string(text: str) -> bytes:
    return text.encode() + b"\0"


def relation(oid: int, schema: str, name: str, columns: list[tuple[str, int, bool]]) -> bytes:
    body = b"R" + struct.pack("!I", oid) + string(schema) + string(name) + b"d"
    body += struct.pack("!h", len(columns))
    for column, type_oid, key in columns:
        body += struct.pack("!b", 1 if key else 0) + string(column)
        body += struct.pack("!Ii", type_oid, -1)
    return body


def tuple_data(values: list[str | bool | None]) -> bytes:
    """Values: text, None (NULL), or False for an unchanged TOASTed value."""
    body = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            body += b"n"
        elif value is False:
            body += b"u"
        else:
            assert isinstance(value, str)
            data = value.encode()
            body += b"t" + struct.pack("!i", len(data)) + data
    return body


RUN_COLUMNS = [
    ("id", UUID, True),
    ("status", INT4, False),
    ("input_json", TEXT, False),
    ("created_at", TIMESTAMP, False),
]


@pytest.fixture
def decoder() -> PgOutputDecoder:
    decoder = PgOutputDecoder()
    assert decoder.decode(relation(RUNS_OID, "zapjobs", "runs", RUN_COLUMNS)) is None
    return decoder


def test_begin_and_commit_carry_positions_and_the_commit_time(decoder: PgOutputDecoder) -> None:
    begin = decoder.decode(b"B" + struct.pack("!qqI", 0x1_0000_0010, PG_MICROS, 742))
    assert begin == Begin(final_lsn=0x1_0000_0010, commit_time=COMMITTED, xid=742)
    commit = decoder.decode(b"C\0" + struct.pack("!qqq", 0x10, 0x20, PG_MICROS))
    assert commit == Commit(commit_lsn=0x10, end_lsn=0x20, commit_time=COMMITTED)


def test_an_insert_is_a_whole_row_cast_like_the_query_pool_casts_it(
    decoder: PgOutputDecoder,
) -> None:
    message = b"I" + struct.pack("!I", RUNS_OID) + b"N"
    message += tuple_data([RUN_ID, "2", '{"a": "€"}', "2026-01-02 03:04:05.000006"])
    change = decoder.decode(message)
    assert change == RowChange(
        "insert",
        "zapjobs",
        "runs",
        {
            "id": RUN_ID,
            "status": 2,
            "input_json": '{"a": "€"}',
            "created_at": datetime(2026, 1, 2, 3, 4, 5, 6),
        },
        complete=True,
    )


def test_an_update_that_left_a_toasted_value_unchanged_is_not_complete(
    decoder: PgOutputDecoder,
) -> None:
    message = b"U" + struct.pack("!I", RUNS_OID) + b"N"
    message += tuple_data([RUN_ID, "3", False, None])
    change = decoder.decode(message)
    assert isinstance(change, RowChange)
    assert change.operation == "update" and not change.complete
    assert change.row == {"id": RUN_ID, "status": 3, "created_at": None}


def test_an_update_with_the_old_key_reads_the_new_row(decoder: PgOutputDecoder) -> None:
    message = b"U" + struct.pack("!I", RUNS_OID)
    message += b"K" + tuple_data([RUN_ID, None, None, None])
    message += b"N" + tuple_data([RUN_ID, "4", "x", "2026-01-02 03:04:05"])
    change = decoder.decode(message)
    assert isinstance(change, RowChange) and change.complete
    assert change.row["status"] == 4


def test_a_delete_carries_the_key_only(decoder: PgOutputDecoder) -> None:
    message = b"D" + struct.pack("!I", RUNS_OID) + b"K" + tuple_data([RUN_ID, None, None, None])
    assert decoder.decode(message) == RowChange(
        "delete", "zapjobs", "runs", {"id": RUN_ID}, complete=False
    )


def test_arrays_and_booleans_are_cast_too() -> None:
    decoder = PgOutputDecoder()
    columns = [("worker_id", TEXT, True), ("queues", TEXT_ARRAY, False), ("down", BOOL, False)]
    decoder.decode(relation(16500, "zapjobs", "heartbeats", columns))
    message = b"I" + struct.pack("!I", 16500) + b"N" + tuple_data(["w-1", "{default,mail}", "f"])
    change = decoder.decode(message)
    assert isinstance(change, RowChange)
    assert change.row == {"worker_id": "w-1", "queues": ["default", "mail"], "down": False}


def test_a_truncate_names_its_relations(decoder: PgOutputDecoder) -> None:
    change = decoder.decode(b"T" + struct.pack("!ibI", 1, 0, RUNS_OID))
    assert isinstance(change, Truncate)
    assert [r.name for r in change.relations] == ["runs"]


def test_origin_type_and_logical_messages_are_skipped(decoder: PgOutputDecoder) -> None:
    assert decoder.decode(b"O" + struct.pack("!q", 1) + string("elsewhere")) is None
    assert decoder.decode(b"Y" + struct.pack("!I", 99) + string("public") + string("t")) is None


@pytest.mark.parametrize(
    "message",
    [
        b"I" + struct.pack("!I", 999) + b"N" + tuple_data(["x"]),  # relation never described
        b"I" + struct.pack("!I", RUNS_OID) + b"N" + tuple_data([RUN_ID]),  # too few values
        b"I" + struct.pack("!I", RUNS_OID) + b"N\0\4t\0\0",  # cut short
        b"U" + struct.pack("!I", RUNS_OID) + b"N\0\4t\0\0\0\7ab",  # cut short
        b"I" + struct.pack("!I", RUNS_OID) + b"N\0\4nnnu",  # an insert lacks a value
        b"Z",  # unknown message
    ],
    ids=[
        "unknown-relation",
        "value-count",
        "truncated-insert",
        "truncated-update",
        "insert-without-a-value",
        "unknown-kind",
    ],
)
def test_a_message_it_cannot_read_is_an_error_not_a_wrong_row(
    decoder: PgOutputDecoder, message: bytes
) -> None:
    with pytest.raises(PgOutputError):
        change = decoder.decode(message)
        assert isinstance(change, RowChange)
        assert change.row  # an insert's values are decoded when read


def test_one_value_of_an_insert_is_read_without_the_others(decoder: PgOutputDecoder) -> None:
    message = b"I" + struct.pack("!I", RUNS_OID) + b"N"
    message += tuple_data([RUN_ID, "2", None, "not a timestamp"])  # to fail when read
    change = decoder.decode(message)
    assert isinstance(change, RowChange)
    assert change.value("status") == 2 and change.value("input_json") is None
    assert change.keys().row == {"id": RUN_ID}
    with pytest.raises(KeyError):
        change.value("no_such_column")
    with pytest.raises(PgOutputError):
        assert change.row


def test_an_insert_is_read_with_its_relation_as_it_was_when_it_arrived(
    decoder: PgOutputDecoder,
) -> None:
    message = b"I" + struct.pack("!I", RUNS_OID) + b"N"
    first = decoder.decode(message + tuple_data([RUN_ID, "2", "{}", None]))
    # ALTER TABLE: the relation is described again, with one more column.
    decoder.decode(relation(RUNS_OID, "zapjobs", "runs", [*RUN_COLUMNS, ("note", TEXT, False)]))
    second = decoder.decode(message + tuple_data([RUN_ID, "3", "{}", None, "hi"]))
    assert isinstance(first, RowChange) and isinstance(second, RowChange)
    assert first.row == {"id": RUN_ID, "status": 2, "input_json": "{}", "created_at": None}
    assert second.row["note"] == "hi"

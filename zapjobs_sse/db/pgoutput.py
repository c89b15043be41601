"""The messages of PostgreSQL's built-in `pgoutput` plugin (protocol version 1), decoded.

Only what the WAL feed reads: transactions (Begin, Commit), the relations they touch and
their row changes (Insert, Update, Delete, Truncate). Values arrive as text and are cast
with psycopg2's own casters for their column types, so that a decoded row is the dict the
query pool would return for it. A column whose TOASTed value an UPDATE left unchanged
arrives without its value: the change is then not `complete`, and the reader reads the
row by key. See "Logical Replication Message Formats" in the PostgreSQL documentation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg2.extensions

from .database import Row

__all__ = [
    "Begin",
    "Column",
    "Commit",
    "PgOutputDecoder",
    "PgOutputError",
    "Relation",
    "RowChange",
    "Truncate",
]

# pgoutput's timestamps: microseconds since 2000-01-01 UTC.
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")
_INT64 = struct.Struct("!q")

Operation = Literal["insert", "update", "delete"]


class PgOutputError(ValueError):
    """A message this decoder cannot read (a bug, or a protocol it does not speak)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    key: bool  # part of the replica identity (the primary key by default)


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    name: str
    columns: tuple[Column, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.key)


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row inserted, updated or deleted.

    `row` holds every column whose value the message carried: the whole row of an insert
    or an update (but for TOASTed values it left unchanged), the key of a delete.
    `complete` says whether it holds every column. `key`: the names of the replica
    identity's columns. `keys_only`: the reader kept the key alone (see
    replication.CommittedChanges), so the columns left out may have changed too."""

    operation: Operation
    schema: str
    table: str
    row: Row
    complete: bool
    key: tuple[str, ...] = field(default=(), compare=False)
    keys_only: bool = field(default=False, compare=False)

    def keys(self, *also: str) -> RowChange:
        """The same change with the key (and the columns named) alone."""
        row = {name: self.row[name] for name in (*self.key, *also) if name in self.row}
        return RowChange(self.operation, self.schema, self.table, row, False, self.key, True)


@dataclass(frozen=True, slots=True)
class Truncate:
    relations: tuple[Relation, ...]


Message = Begin | Commit | RowChange | Truncate


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._bytes = data
        self._data = memoryview(data)
        self._at = 0

    def _take(self, size: int) -> memoryview:
        if self._at + size > len(self._data):
            raise PgOutputError("message ends early")
        piece = self._data[self._at : self._at + size]
        self._at += size
        return piece

    def byte(self) -> str:
        return chr(self._take(1)[0])

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return int(_INT16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self._take(4))[0])

    def uint32(self) -> int:
        return int(_UINT32.unpack(self._take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self._take(8))[0])

    def timestamp(self) -> datetime:
        return _POSTGRES_EPOCH + timedelta(microseconds=self.int64())

    def string(self) -> str:
        end = self._bytes.find(0, self._at)
        if end < 0:
            raise PgOutputError("string without its terminating zero")
        text = bytes(self._data[self._at : end]).decode("utf-8", "replace")
        self._at = end + 1
        return text

    def raw(self, size: int) -> bytes:
        return bytes(self._take(size))


def _caster(type_oid: int) -> Callable[[str], Any]:
    """psycopg2's cast of a column type's text form (the text itself when it has none)."""
    cast = psycopg2.extensions.string_types.get(type_oid)
    if cast is None:
        return lambda text: text
    return lambda text: cast(text, None)


class PgOutputDecoder:
    """Decodes the messages of one replication stream (it remembers their relations)."""

    def __init__(self) -> None:
        self._relations: dict[int, Relation] = {}
        self._casts: dict[int, Callable[[str], Any]] = {}

    def decode(self, payload: bytes) -> Message | None:
        """The message, or None for one the feed does not need (origin, type, message)."""
        reader = _Reader(payload)
        kind = reader.byte()
        if kind == "B":
            return Begin(reader.int64(), reader.timestamp(), reader.uint32())
        if kind == "C":
            reader.int8()  # flags, unused
            return Commit(reader.int64(), reader.int64(), reader.timestamp())
        if kind == "R":
            self._relation(reader)
            return None
        if kind == "I":
            relation = self._relation_of(reader.uint32())
            if reader.byte() != "N":
                raise PgOutputError("insert without its new tuple")
            row, complete = self._tuple(reader, relation)
            return RowChange("insert", relation.schema, relation.name, row, complete, relation.key)
        if kind == "U":
            relation = self._relation_of(reader.uint32())
            marker = reader.byte()
            if marker in ("K", "O"):  # the old key or row (REPLICA IDENTITY), not needed
                self._tuple(reader, relation)
                marker = reader.byte()
            if marker != "N":
                raise PgOutputError("update without its new tuple")
            row, complete = self._tuple(reader, relation)
            return RowChange("update", relation.schema, relation.name, row, complete, relation.key)
        if kind == "D":
            relation = self._relation_of(reader.uint32())
            if reader.byte() not in ("K", "O"):
                raise PgOutputError("delete without its old key")
            row, _ = self._tuple(reader, relation)
            key = {name: row.get(name) for name in relation.key}
            return RowChange(
                "delete", relation.schema, relation.name, key or row, False, relation.key
            )
        if kind == "T":
            count = reader.int32()
            reader.int8()  # options (CASCADE, RESTART IDENTITY)
            oids = [reader.uint32() for _ in range(count)]
            return Truncate(tuple(self._relation_of(oid) for oid in oids))
        if kind in ("O", "Y", "M"):
            return None
        raise PgOutputError(f"unknown pgoutput message {kind!r}")

    def _relation(self, reader: _Reader) -> None:
        oid = reader.uint32()
        schema, name = reader.string(), reader.string()
        reader.int8()  # replica identity setting
        columns = []
        for _ in range(reader.int16()):
            flags = reader.int8()
            column_name = reader.string()
            type_oid = reader.uint32()
            reader.int32()  # type modifier
            columns.append(Column(column_name, type_oid, bool(flags & 1)))
        self._relations[oid] = Relation(oid, schema or "pg_catalog", name, tuple(columns))

    def _relation_of(self, oid: int) -> Relation:
        try:
            return self._relations[oid]
        except KeyError:
            raise PgOutputError(f"change of relation {oid} before its description") from None

    def _cast(self, type_oid: int) -> Callable[[str], Any]:
        cast = self._casts.get(type_oid)
        if cast is None:
            cast = self._casts[type_oid] = _caster(type_oid)
        return cast

    def _tuple(self, reader: _Reader, relation: Relation) -> tuple[Row, bool]:
        count = reader.int16()
        if count != len(relation.columns):
            raise PgOutputError(f"{relation.name}: {count} values for {len(relation.columns)}")
        row: Row = {}
        complete = True
        for column in relation.columns:
            kind = reader.byte()
            if kind == "n":
                row[column.name] = None
            elif kind == "u":  # an unchanged TOASTed value: not sent
                complete = False
            elif kind == "t":
                text = reader.raw(reader.int32()).decode("utf-8", "replace")
                row[column.name] = self._cast(column.type_oid)(text)
            else:
                raise PgOutputError(f"{relation.name}.{column.name}: value kind {kind!r}")
        return row, complete

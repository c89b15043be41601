"""The messages of PostgreSQL's built-in `pgoutput` plugin (protocol version 1), decoded.

Only what the WAL feed reads: transactions (Begin, Commit), the relations they touch and
their row changes (Insert, Update, Delete, Truncate). Values arrive as text and are cast
with psycopg2's own casters for their column types, so that a decoded row is the dict the
query pool would return for it. A column whose TOASTed value an UPDATE left unchanged
arrives without its value: the change is then not `complete`, and the reader reads the
row by key. See "Logical Replication Message Formats" in the PostgreSQL documentation.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg2
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
# Fields read in one call each (the decoder runs once per change: every call counts).
_BEGIN = struct.Struct("!qqI").unpack_from  # final LSN, commit time, xid
_COMMIT = struct.Struct("!bqqq").unpack_from  # flags, commit LSN, end LSN, commit time
_CHANGE = struct.Struct("!Ic").unpack_from  # relation, first tuple marker
_INT8 = struct.Struct("!b").unpack_from
_INT16 = struct.Struct("!h").unpack_from
_INT32 = struct.Struct("!i").unpack_from
_UINT32 = struct.Struct("!I").unpack_from
_TYPE_COLUMN = struct.Struct("!Ii").unpack_from  # type oid, type modifier
# Tuple value kinds, as bytes items.
_TEXT, _NULL, _UNCHANGED = ord("t"), ord("n"), ord("u")
# How a column's text becomes its value: as it is, int(), or psycopg2's caster.
_AS_TEXT, _AS_INT, _AS_CAST = 0, 1, 2

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


# Not frozen: a frozen dataclass's __init__ costs a call per field, once per change.
@dataclass(slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


class RowChange:
    """One row inserted, updated or deleted.

    `row` holds every column whose value the message carried: the whole row of an insert
    or an update (but for TOASTed values it left unchanged), the key of a delete.
    `complete` says whether it holds every column. `key`: the names of the replica
    identity's columns. `keys_only`: the reader kept the key alone (see
    replication.CommittedChanges), so the columns left out may have changed too.

    An insert's values are decoded when first read (`row`, or `value` for one column):
    most of the log lines the feed sees belong to runs nobody follows, whose lines are
    never read."""

    __slots__ = ("_row", "_tuple", "complete", "key", "keys_only", "operation", "schema", "table")

    def __init__(
        self,
        operation: Operation,
        schema: str,
        table: str,
        row: Row,
        complete: bool,
        key: tuple[str, ...] = (),
        keys_only: bool = False,
    ) -> None:
        self.operation = operation
        self.schema = schema
        self.table = table
        self.complete = complete
        self.key = key
        self.keys_only = keys_only
        self._row: Row | None = row
        self._tuple: tuple[bytes, int, _Layout] | None = None

    @classmethod
    def _inserted(cls, data: bytes, at: int, layout: _Layout) -> RowChange:
        """An insert whose tuple, at `at` in `data`, is decoded when first read."""
        change = cls.__new__(cls)  # one per log line: no __init__ to undo
        change.operation, change.complete, change.keys_only = "insert", True, False
        change.schema, change.table = layout.relation.schema, layout.relation.name
        change.key, change._row, change._tuple = layout.key, None, (data, at, layout)
        return change

    @property
    def row(self) -> Row:
        row = self._row
        if row is None:
            assert self._tuple is not None
            data, at, layout = self._tuple
            row, complete, _ = _values(data, at, layout)
            if not complete:  # PostgreSQL sends unchanged TOASTed values in UPDATEs only
                raise PgOutputError(f"{layout.relation.name}: insert without every value")
            self._row, self._tuple = row, None
        return row

    def value(self, name: str) -> Any:
        """One column's value, without decoding the others (KeyError: not carried)."""
        if self._tuple is None:
            return self.row[name]
        data, at, layout = self._tuple
        return _value(data, at, layout, name)

    def keys(self, *also: str) -> RowChange:
        """The same change with the key (and the columns named) alone."""
        row = {}
        for name in (*self.key, *also):
            with contextlib.suppress(KeyError):
                row[name] = self.value(name)
        return RowChange(self.operation, self.schema, self.table, row, False, self.key, True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowChange):
            return NotImplemented
        return (self.operation, self.schema, self.table, self.complete, self.row) == (
            other.operation,
            other.schema,
            other.table,
            other.complete,
            other.row,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        row = "<not decoded>" if self._row is None else repr(self._row)
        return (
            f"RowChange({self.operation!r}, {self.schema!r}, {self.table!r}, {row},"
            f" complete={self.complete})"
        )


@dataclass(frozen=True, slots=True)
class Truncate:
    relations: tuple[Relation, ...]


Message = Begin | Commit | RowChange | Truncate
# A column as the tuple reader uses it: its name, how its text is read, the caster.
_Field = tuple[str, int, Any]


@dataclass(frozen=True, slots=True)
class _Layout:
    """A relation, with what reading its tuples needs worked out once."""

    relation: Relation
    key: tuple[str, ...]
    fields: tuple[_Field, ...]
    positions: dict[str, int]  # of each column in a tuple


def _field(column: Column) -> _Field:
    """psycopg2's cast of a column type's text form (the text itself when it has none)."""
    cast = psycopg2.extensions.string_types.get(column.type_oid)
    if cast is None or cast is psycopg2.STRING:
        return (column.name, _AS_TEXT, None)
    if cast is psycopg2.extensions.INTEGER or cast is psycopg2.extensions.LONGINTEGER:
        return (column.name, _AS_INT, None)  # what the caster does, without its str
    return (column.name, _AS_CAST, cast)


def _string(data: bytes, at: int) -> tuple[str, int]:
    end = data.find(0, at)
    if end < 0:
        raise PgOutputError("string without its terminating zero")
    return data[at:end].decode("utf-8", "replace"), end + 1


@functools.lru_cache(maxsize=1)  # a transaction's Begin and Commit carry the same time
def _timestamp(micros: int) -> datetime:
    return _POSTGRES_EPOCH + timedelta(microseconds=micros)


def _count(data: bytes, at: int, layout: _Layout) -> None:
    (count,) = _INT16(data, at)
    if count != len(layout.fields):
        raise PgOutputError(f"{layout.relation.name}: {count} values for {len(layout.fields)}")


def _values(data: bytes, at: int, layout: _Layout) -> tuple[Row, bool, int]:
    """The values of the tuple at `at`, whether it holds them all, and where it ends."""
    _count(data, at, layout)
    at += 2
    size_of = _INT32
    row: Row = {}
    complete = True
    try:
        for name, read_as, cast in layout.fields:
            kind = data[at]
            if kind == _TEXT:
                (size,) = size_of(data, at + 1)
                at += 5
                end = at + size
                if end > len(data):
                    raise PgOutputError("message ends early")
                if read_as == _AS_TEXT:
                    row[name] = data[at:end].decode("utf-8", "replace")
                elif read_as == _AS_INT:
                    row[name] = int(data[at:end])
                else:
                    row[name] = cast(data[at:end].decode("utf-8", "replace"), None)
                at = end
            elif kind == _NULL:
                row[name] = None
                at += 1
            elif kind == _UNCHANGED:  # an unchanged TOASTed value: not sent
                complete = False
                at += 1
            else:
                raise PgOutputError(f"{layout.relation.name}.{name}: value kind {chr(kind)!r}")
    except PgOutputError:
        raise
    except (IndexError, struct.error):
        raise PgOutputError("message ends early") from None
    except (ValueError, psycopg2.Error) as error:  # a value its type's caster refused
        raise PgOutputError(f"{layout.relation.name}: {error}") from None
    return row, complete, at


def _value(data: bytes, at: int, layout: _Layout, name: str) -> Any:
    """The value of one column of the tuple at `at` (KeyError: not there, or not sent)."""
    position = layout.positions[name]
    at += 2
    try:
        for _ in range(position):  # skip the columns before it
            kind = data[at]
            if kind == _TEXT:
                at += 5 + _INT32(data, at + 1)[0]
            elif kind in (_NULL, _UNCHANGED):
                at += 1
            else:
                raise PgOutputError(f"{layout.relation.name}: value kind {chr(kind)!r}")
        kind = data[at]
        if kind == _NULL:
            return None
        if kind != _TEXT:
            raise KeyError(name)
        (size,) = _INT32(data, at + 1)
        if at + 5 + size > len(data):
            raise PgOutputError("message ends early")
        text = data[at + 5 : at + 5 + size]
        _, read_as, cast = layout.fields[position]
        if read_as == _AS_INT:
            return int(text)
        value = text.decode("utf-8", "replace")
        return value if read_as == _AS_TEXT else cast(value, None)
    except PgOutputError:
        raise
    except (IndexError, struct.error):
        raise PgOutputError("message ends early") from None
    except (ValueError, psycopg2.Error) as error:
        raise PgOutputError(f"{layout.relation.name}.{name}: {error}") from None


class PgOutputDecoder:
    """Decodes the messages of one replication stream (it remembers their relations)."""

    def __init__(self) -> None:
        self._layouts: dict[int, _Layout] = {}

    def decode(self, payload: bytes) -> Message | None:
        """The message, or None for one the feed does not need (origin, type, message)."""
        try:
            return self._decode(payload)
        except (IndexError, struct.error):
            raise PgOutputError("message ends early") from None

    def _decode(self, data: bytes) -> Message | None:
        kind = data[0]
        if kind == 73:  # I: insert
            oid, marker = _CHANGE(data, 1)
            layout = self._layout_of(oid)
            if marker != b"N":
                raise PgOutputError("insert without its new tuple")
            _count(data, 6, layout)
            return RowChange._inserted(data, 6, layout)
        if kind == 85:  # U: update
            oid, marker = _CHANGE(data, 1)
            layout = self._layout_of(oid)
            at = 6
            if marker in (b"K", b"O"):  # the old key or row (REPLICA IDENTITY), not needed
                _, _, at = _values(data, at, layout)
                marker = data[at : at + 1]
                at += 1
            if marker != b"N":
                raise PgOutputError("update without its new tuple")
            row, complete, _ = _values(data, at, layout)
            relation = layout.relation
            return RowChange("update", relation.schema, relation.name, row, complete, layout.key)
        if kind == 66:  # B: begin
            final_lsn, micros, xid = _BEGIN(data, 1)
            return Begin(final_lsn, _timestamp(micros), xid)
        if kind == 67:  # C: commit
            _, commit_lsn, end_lsn, micros = _COMMIT(data, 1)
            return Commit(commit_lsn, end_lsn, _timestamp(micros))
        if kind == 68:  # D: delete
            oid, marker = _CHANGE(data, 1)
            layout = self._layout_of(oid)
            if marker not in (b"K", b"O"):
                raise PgOutputError("delete without its old key")
            row, _, _ = _values(data, 6, layout)
            relation = layout.relation
            key = {name: row.get(name) for name in layout.key}
            return RowChange(
                "delete", relation.schema, relation.name, key or row, False, layout.key
            )
        if kind == 82:  # R: relation
            self._relation(data)
            return None
        if kind == 84:  # T: truncate
            (count,) = _INT32(data, 1)  # then the options (CASCADE, RESTART IDENTITY)
            oids = [_UINT32(data, 6 + 4 * index)[0] for index in range(count)]
            return Truncate(tuple(self._layout_of(oid).relation for oid in oids))
        if kind in (79, 89, 77):  # O: origin, Y: type, M: message
            return None
        raise PgOutputError(f"unknown pgoutput message {chr(kind)!r}")

    def _relation(self, data: bytes) -> None:
        (oid,) = _UINT32(data, 1)
        schema, at = _string(data, 5)
        name, at = _string(data, at)
        (count,) = _INT16(data, at + 1)  # after the replica identity setting
        at += 3
        columns = []
        for _ in range(count):
            (flags,) = _INT8(data, at)
            column_name, at = _string(data, at + 1)
            type_oid, _ = _TYPE_COLUMN(data, at)
            at += 8
            columns.append(Column(column_name, type_oid, bool(flags & 1)))
        relation = Relation(oid, schema or "pg_catalog", name, tuple(columns))
        fields = tuple(_field(column) for column in relation.columns)
        positions = {column.name: index for index, column in enumerate(relation.columns)}
        self._layouts[oid] = _Layout(relation, relation.key, fields, positions)

    def _layout_of(self, oid: int) -> _Layout:
        try:
            return self._layouts[oid]
        except KeyError:
            raise PgOutputError(f"change of relation {oid} before its description") from None

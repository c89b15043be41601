"""The database port: the only package that talks to PostgreSQL (aiopg / psycopg2).

Everything above it (the server's bridge, stats, API and pages; the executor) calls the
typed methods here and gets plain dicts back; no other package imports the driver.
"""

from .cursors import CursorError, LogCursor
from .database import (
    LOG_PAGE,
    Connection,
    Database,
    DatabaseError,
    DatabaseUnavailable,
    Row,
    RunPageKey,
    Transaction,
    connect,
    mask_dsn,
)
from .listener import Listener
from .pgoutput import RowChange
from .replication import CommittedChanges, FeedUnavailable, ReplicationStream, check_wal_feed

__all__ = [
    "LOG_PAGE",
    "CommittedChanges",
    "Connection",
    "CursorError",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "FeedUnavailable",
    "Listener",
    "LogCursor",
    "ReplicationStream",
    "Row",
    "RowChange",
    "RunPageKey",
    "Transaction",
    "check_wal_feed",
    "connect",
    "mask_dsn",
]

"""The executor's statements (sql/executor.sql), by name."""

from __future__ import annotations

from ..db.database import load_queries

__all__ = ["SQL"]

SQL = load_queries(__package__ or "zapjobs_sse.executor")

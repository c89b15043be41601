"""Where the shipped folders are: inside the installed package, or beside it in a checkout."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATIONS_DIR", "WEB_DIR"]


def _shipped(name: str) -> Path:
    # setup.py maps the top-level folder into the package; a source checkout has it beside.
    inside = Path(__file__).resolve().parent / name
    return inside if inside.is_dir() else Path(__file__).resolve().parent.parent / name


MIGRATIONS_DIR = _shipped("migrations")
WEB_DIR = _shipped("web")

"""The built wheel carries web/, migrations/, the SQL and the schema file inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import repo_root


def test_wheel_ships_migrations_web_and_sql(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(repo_root()),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("zapjobs_sse-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    root = repo_root()
    expected = {f"zapjobs_sse/migrations/{p.name}" for p in (root / "migrations").glob("*.sql")}
    expected |= {
        p.relative_to(root).as_posix()
        for wing in ("db", "executor")
        for p in (root / "zapjobs_sse" / wing / "sql").glob("*.sql")
    }
    expected.add("zapjobs_sse/db/schema.sql")
    expected |= {
        "zapjobs_sse/web/" + str(p.relative_to(root / "web"))
        for p in (root / "web").rglob("*")
        if p.is_file()
    }
    assert expected <= names, sorted(expected - names)
    assert any(name.endswith("entry_points.txt") for name in names)

"""The served responses match the OpenAPI description (schemathesis against the running
server: status codes, content types, headers and bodies of every operation)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningServer
from tests.support import Writer

# What CI runs, against this server (README.md, "JSON API").
SCHEMATHESIS = [
    "run",
    "--checks",
    "all",
    "--phases",
    "examples,coverage,fuzzing",
    "--max-examples",
    "25",
    "--workers",
    "1",
    "--no-color",
]


# In the test extras: on PATH, or beside this interpreter.
SCHEMATHESIS_COMMAND = shutil.which("schemathesis") or shutil.which(
    "schemathesis", path=str(Path(sys.executable).parent)
)


async def test_every_operation_answers_as_the_openapi_document_says(
    server: RunningServer, writer: Writer, tmp_path: Path
) -> None:
    command = SCHEMATHESIS_COMMAND
    assert command is not None, "schemathesis is missing: pip install -e '.[test]'"
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name) VALUES ('email', 'Email')"
    )
    for status in (0, 2, 4):
        await writer.insert_run("email", status=status)
    completed = await asyncio.to_thread(
        subprocess.run,
        [command, *SCHEMATHESIS, server.path("api/openapi.json")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its .schemathesis/ folder of reports
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]

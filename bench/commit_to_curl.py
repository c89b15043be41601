"""Delay from an UPDATE's commit to a `curl -N` client printing its JobRunUpdated.

    python -m bench.commit_to_curl [--samples 100]

Starts the embedded PostgreSQL (or uses ZAPJOBS_BENCH_DSN) and the server in this
process, runs a real curl subprocess on the stream, and prints the median and the
worst of the samples. Baseline: the 5 s refresh of a polling dashboard (its expected
delay is 2.5 s, its worst 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2

from zapjobs_sse.db.embedded import EmbeddedPostgres
from zapjobs_sse.db.migrate import apply_migrations
from zapjobs_sse.server.run import serve_app
from zapjobs_sse.settings import Settings

POLLING_INTERVAL = 5.0


async def measure(dsn: str, samples: int) -> list[float]:
    await apply_migrations(dsn)
    writer = psycopg2.connect(dsn)
    writer.autocommit = True
    run_id = str(uuid.uuid4())
    with writer.cursor() as cursor:
        cursor.execute("INSERT INTO zapjobs.runs (id, job_type_id) VALUES (%s, 'bench')", (run_id,))
    settings = Settings(dsn=dsn, port=0, log_level="warning", log_format="console")
    delays: list[float] = []
    async with serve_app(settings) as url:
        curl = await asyncio.create_subprocess_exec(
            "curl", "-sN", url + "events?topics=runs", stdout=asyncio.subprocess.PIPE
        )
        assert curl.stdout is not None
        await curl.stdout.readline()
        await asyncio.sleep(0.5)
        for step in range(1, samples + 1):
            await asyncio.to_thread(_update, writer, run_id, step)
            committed = time.perf_counter()
            needle = f'"progress":{step},'.encode()
            while needle not in await asyncio.wait_for(curl.stdout.readline(), 5):
                pass
            delays.append(time.perf_counter() - committed)
            await asyncio.sleep(0.02)
        curl.terminate()
        await curl.wait()
    writer.close()
    return delays


def _update(connection: psycopg2.extensions.connection, run_id: str, step: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE zapjobs.runs SET progress = %s WHERE id = %s", (step, run_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    dsn = os.environ.get("ZAPJOBS_BENCH_DSN")
    server = None
    if not dsn:
        folder = Path(tempfile.mkdtemp(prefix="zapjobs-sse-bench-"))
        folder.chmod(0o755)
        server = EmbeddedPostgres(folder / "pgdata")
        dsn = server.start()
    try:
        delays = asyncio.run(measure(dsn, args.samples))
    finally:
        if server is not None:
            server.stop()
    median, worst = statistics.median(delays), max(delays)
    print(
        f"commit -> curl, {len(delays)} UPDATEs: median {median * 1000:.1f} ms, "
        f"worst {worst * 1000:.1f} ms"
    )
    print(
        f"polling every {POLLING_INTERVAL:.0f} s: expected {POLLING_INTERVAL / 2 * 1000:.0f} ms, "
        f"worst {POLLING_INTERVAL * 1000:.0f} ms; ratio (median) "
        f"{POLLING_INTERVAL / 2 / median:.0f}x"
    )


if __name__ == "__main__":
    main()

"""The server-rendered pages: complete without JavaScript, safe on bad input."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.support import Writer

XSS = "<img src=x onerror=alert(1)>"


async def get_page(http: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with http.get(url, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == status, text[:500]
        assert response.headers["Content-Type"].startswith("text/html")
        return text


async def seed(writer: Writer) -> dict[str, Any]:
    """A little of everything, with hostile text in every column that the pages show."""
    await writer.execute(
        "INSERT INTO zapjobs.definitions (job_type_id, display_name, description, queue)"
        " VALUES (%s, %s, %s, %s)",
        (XSS, XSS, XSS, XSS),
    )
    run_id = await writer.insert_run(XSS, status=4)
    await writer.execute(
        "UPDATE zapjobs.runs SET error_message = %s, stack_trace = %s, duration_ms = 4200,"
        " worker_id = 'w-1', completed_at = now() AT TIME ZONE 'utc' WHERE id = %s",
        (XSS, XSS, run_id),
    )
    await writer.insert_logs(run_id, ["first line", XSS, "last line"])
    await writer.execute(
        "INSERT INTO zapjobs.heartbeats (id, worker_id, hostname, process_id, timestamp)"
        " VALUES (gen_random_uuid(), %s, %s, 42, now() AT TIME ZONE 'utc')",
        (XSS, XSS),
    )
    await writer.execute(
        "INSERT INTO zapjobs.dead_letter (id, original_run_id, job_type_id, error_message,"
        " attempt_count) VALUES (gen_random_uuid(), %s, %s, %s, 3)",
        (run_id, XSS, XSS),
    )
    return {"run_id": run_id}


async def stats_settled(
    http: aiohttp.ClientSession, server: RunningServer, name: str, value: int
) -> None:
    """Wait until the coalesced stats have seen the writes (they lag by a fraction of a second)."""
    for _ in range(50):
        async with http.get(server.path("api/stats")) as response:
            if (await response.json())[name] == value:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"stats never showed {name} = {value}")


def assert_escaped(text: str) -> None:
    assert XSS not in text
    assert html.escape(XSS) in text or "&lt;img src=x onerror=alert(1)&gt;" in text


async def test_every_page_shows_its_data_escaped(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    seeded = await seed(writer)
    run_id = seeded["run_id"]
    await stats_settled(http, server, "failedToday", 1)
    overview = await get_page(http, server.path(""))
    assert 'id="stat-failed"' in overview and 'id="stat-pending"' in overview
    assert re.search(r'id="stat-failed"[^>]*>1<', overview)
    assert f'data-run-id="{run_id}"' in overview
    assert "4.2 s" in overview
    assert_escaped(overview)

    runs = await get_page(http, server.path("runs"))
    assert f'data-run-id="{run_id}"' in runs and ">Failed<" in runs
    assert_escaped(runs)

    run = await get_page(http, server.path(f"runs/{run_id}"))
    assert 'id="logs-container"' in run
    assert run.count("data-log-id=") == 3
    assert run.index("first line") < run.index("last line")
    assert_escaped(run)

    for path in ("jobs", "queues", "workers", "dead-letter"):
        page = await get_page(http, server.path(path))
        assert_escaped(page)
    workers = await get_page(http, server.path("workers"))
    assert "data-worker-id=" in workers and ">active<" in workers


async def test_pages_use_no_inline_script_or_style(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    seeded = await seed(writer)
    for path in (
        "",
        "runs",
        f"runs/{seeded['run_id']}",
        "jobs",
        "queues",
        "workers",
        "dead-letter",
    ):
        page = await get_page(http, server.path(path))
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.S):
            assert script.strip() == "", f"inline script on {path!r}"
        assert " style=" not in page and "<style" not in page
        assert not re.search(r"\son[a-z]+=", page.replace(html.escape(XSS), ""))


async def test_runs_page_filters_and_pages_with_links(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, created_at)"
        " SELECT gen_random_uuid(), 'bulk', 3,"
        " timestamp '2026-01-01' + n * interval '1 second' FROM generate_series(1, 7) n"
    )
    await writer.insert_run("other", status=0)
    first = await get_page(http, server.path("runs?job_type=bulk&status=Completed&limit=5"))
    assert first.count("data-run-id=") == 5 and "other" not in first.split("<tbody")[1]
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None
    link = html.unescape(older.group(1))
    assert "job_type=bulk" in link and "status=Completed" in link
    second = await get_page(http, "http://" + server.url.split("/")[2] + link + "&limit=5")
    assert second.count("data-run-id=") == 2


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("runs?status=Exploded", 400, "status"),
        ("runs?limit=-1", 400, "limit"),
        ("runs?before=garbage", 400, "before"),
        ("runs/not-a-uuid", 400, "id"),
        (f"runs/{uuid.uuid4()}", 404, "No run"),
        (f"runs/{uuid.uuid4()}?after=zzz", 400, "after"),
        ("runs/go?id=nonsense", 400, "id"),
        ("dead-letter?status=Lost", 400, "status"),
        ("runs?job_type=a%00b", 400, "job_type"),
    ],
)
async def test_bad_input_is_a_readable_page(
    server: RunningServer, http: aiohttp.ClientSession, path: str, status: int, words: str
) -> None:
    page = await get_page(http, server.path(path), status=status)
    assert words in page and "<h1>" in page


async def test_go_to_run_redirects_to_the_run(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    run_id = str(uuid.uuid4())
    async with http.get(server.path(f"runs/go?id=+{run_id.upper()}+"), allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Location"] == f"{server.settings.normalized_base_path}/runs/{run_id}"


async def test_go_to_run_takes_the_short_id_of_the_tables(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await writer.insert_run("email")
    await writer.insert_run(
        "email", run_id=f"{run_id[:7]}{'0' if run_id[7] != '0' else '1'}" + run_id[8:]
    )  # the same 7 first digits: 8 tell them apart
    for typed in (run_id[:8], run_id[:13].upper(), run_id[:8] + run_id[9:13], f" {run_id[:20]} "):
        async with http.get(
            server.path("runs/go"), params={"id": typed}, allow_redirects=False
        ) as response:
            assert response.status == 303, (typed, await response.text())
            assert response.headers["Location"] == f"/zapjobs/runs/{run_id}"


async def test_go_to_run_says_on_a_page_when_a_prefix_is_ambiguous_or_unknown(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    ids = ["abcdef12-0000-4000-8000-00000000000" + str(n) for n in (1, 2, 3)]
    for run_id in ids:
        await writer.insert_run("email", run_id=run_id)
    ambiguous = await get_page(http, server.path("runs/go?id=abcdef12"), status=300)
    assert "More than one run id starts with abcdef12" in ambiguous
    assert re.findall(r'href="/zapjobs/runs/([^"]+)"', ambiguous) == ids[:2]
    assert 'value="abcdef12"' in ambiguous  # the box, to type more of it
    unknown = await get_page(http, server.path("runs/go?id=abcdef13"), status=404)
    assert "No run id starts with abcdef13" in unknown and 'value="abcdef13"' in unknown
    assert 'href="/zapjobs/static/dashboard.css"' in unknown
    for typed in ("abcdef1", "abcdef1g", "", "x" * 40):
        refused = await get_page(http, server.path(f"runs/go?id={typed}"), status=400)
        assert "first 8 hex digits" in refused and 'id="go-to-run-id"' in refused
    for query in ("id=abcdef12&id=abcdef12", "id=" + "a" * 300):
        await get_page(http, server.path(f"runs/go?{query}"), status=400)


@pytest.mark.parametrize("server_settings", [{"base_path": "/ops/jobs/"}])
async def test_links_assets_and_forms_respect_the_base_path(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    seeded = await seed(writer)
    assert server.url.endswith("/ops/jobs/")
    for path in (
        "",
        "runs",
        f"runs/{seeded['run_id']}",
        "jobs",
        "queues",
        "workers",
        "dead-letter",
    ):
        page = await get_page(http, server.path(path))
        assert 'data-base="/ops/jobs"' in page
        for url in re.findall(r'(?:href|src|action)="([^"#][^"]*)"', page):
            local = url.startswith("/ops/jobs/") or url == "/ops/jobs"
            assert local or url == "data:,", (path, url)  # data:, the empty icon
    async with http.get(server.path("static/dashboard.js")) as response:
        assert response.status == 200

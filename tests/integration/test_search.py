"""The runs search (`q`) and the queue filter, on a real PostgreSQL: the API and the page."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.conftest import RunningServer
from tests.integration.test_api import get_json
from tests.integration.test_pages import XSS, get_page
from tests.support import Writer

FAILED = 4


async def add_run(
    writer: Writer,
    age: int,
    *,
    job_type: str = "email",
    status: int = 3,
    queue: str = "default",
    error_message: str | None = None,
    error_type: str | None = None,
    input_json: str | None = None,
    run_id: str | None = None,
) -> str:
    """A run created `age` seconds before a fixed instant (a larger age is older)."""
    run_id = run_id or str(uuid.uuid4())
    await writer.execute(
        "INSERT INTO zapjobs.runs (id, job_type_id, status, queue, created_at, error_message,"
        " error_type, input_json)"
        " VALUES (%s, %s, %s, %s, timestamp '2026-06-01 12:00' - %s * interval '1 second',"
        " %s, %s, %s)",
        (run_id, job_type, status, queue, age, error_message, error_type, input_json),
    )
    return run_id


async def found(
    http: aiohttp.ClientSession, server: RunningServer, **query: str | int
) -> list[str]:
    """The ids the API's search answers, newest first (one page of at most 500)."""
    body = await get_json(http, server.path("api/runs") + "?" + urlencode(query | {"limit": 500}))
    assert body["next"] is None
    return [run["id"] for run in body["runs"]]


async def test_a_run_is_found_by_its_id_in_any_form_and_by_its_start(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    wanted = await add_run(writer, 10)
    other = await add_run(writer, 20)
    for typed in (wanted, wanted.upper(), wanted.replace("-", ""), f"  {wanted}  ", wanted[:8]):
        assert await found(http, server, q=typed) == [wanted], typed
    # A short start is an id prefix too (the runs whose ids start with it).
    assert wanted in await found(http, server, q=wanted[:3])
    assert other not in await found(http, server, q=wanted[:8])


async def test_text_is_found_in_error_message_error_type_and_input_in_any_case(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    message = await add_run(writer, 1, status=FAILED, error_message="Connection Reset by peer")
    kind = await add_run(writer, 2, status=FAILED, error_type="System.TimeoutException")
    given = await add_run(writer, 3, input_json='{"customer": "ACME-Widgets", "qty": 3}')
    accented = await add_run(writer, 4, input_json='{"name": "Jürgen Müller"}')
    school = await add_run(writer, 5, error_message="École fermée", error_type="日本語Error")
    await add_run(writer, 6, error_message="nothing to see", input_json="{}")
    assert await found(http, server, q="connection RESET") == [message]
    assert await found(http, server, q="timeoutexception") == [kind]
    assert await found(http, server, q="acme-WIDGETS") == [given]
    # Beyond ASCII too: letters of any script, in any case.
    assert await found(http, server, q="MÜLLER") == [accented]
    assert await found(http, server, q="jürgen müller") == [accented]
    assert await found(http, server, q="école FERMÉE") == [school]
    assert await found(http, server, q="日本語") == [school]
    assert await found(http, server, q="müllerin") == []
    assert await found(http, server, q="zzz-nowhere") == []


async def test_percent_underscore_and_backslash_are_plain_characters(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    percent = await add_run(writer, 1, error_message="disk 100% full")
    await add_run(writer, 2, error_message="disk 1000 full")
    underscore = await add_run(writer, 3, input_json='{"key": "a_b"}')
    await add_run(writer, 4, input_json='{"key": "axb"}')
    backslash = await add_run(writer, 5, error_message="cannot open C:\\temp\\x.log")
    await add_run(writer, 6, error_message="cannot open C:temp")
    assert await found(http, server, q="100%") == [percent]
    assert await found(http, server, q="%") == [percent]
    assert await found(http, server, q="a_b") == [underscore]
    assert await found(http, server, q="c:\\temp") == [backslash]


async def test_search_combines_with_status_job_type_and_queue(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    text = "quota exceeded"
    failed_email = await add_run(writer, 1, status=FAILED, error_message=text)
    done_email = await add_run(writer, 2, error_message=text)
    failed_report = await add_run(writer, 3, status=FAILED, job_type="report", error_message=text)
    critical = await add_run(writer, 4, status=FAILED, queue="critical", error_message=text)
    await add_run(writer, 5, status=FAILED, error_message="other")
    assert await found(http, server, q=text) == [failed_email, done_email, failed_report, critical]
    assert await found(http, server, q=text, status="Failed") == [
        failed_email,
        failed_report,
        critical,
    ]
    assert await found(http, server, q=text, job_type="report") == [failed_report]
    assert await found(http, server, q=text, queue="critical") == [critical]
    assert await found(http, server, q=text, status="Completed", queue="critical") == []
    # An id and the filters: the run is found only where the filters hold.
    assert await found(http, server, q=critical, queue="critical") == [critical]
    assert await found(http, server, q=critical, queue="default") == []


async def test_keyset_pages_visit_every_match_once_newest_first(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    matching = set()
    for n in range(40):
        # Pairs share a creation time, so that the id breaks the tie.
        text = "payment declined" if n % 3 else "ok"
        run_id = await add_run(writer, n // 2, error_message=text)
        if n % 3:
            matching.add(run_id)
    seen: list[dict[str, Any]] = []
    url = server.path("api/runs?q=DECLINED&limit=5")
    while True:
        body = await get_json(http, url)
        assert body["searchWindow"] == server.settings.search_window
        seen.extend(body["runs"])
        if body["next"] is None:
            break
        url = server.path(f"api/runs?q=DECLINED&limit=5&before={body['next']}")
    assert [run["id"] for run in seen if run["id"] not in matching] == []
    assert len(seen) == len(matching) == 26 and {run["id"] for run in seen} == matching
    keys = [(run["createdAt"], run["id"]) for run in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("server_settings", [{"search_window": 3}])
async def test_text_is_searched_among_the_window_of_newest_runs_only(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    old = await add_run(writer, 100, error_message="rate limited")
    inside = await add_run(writer, 3, error_message="rate limited")
    for age in (1, 2):
        await add_run(writer, age, error_message="fine")
    assert await found(http, server, q="rate limited") == [inside]
    body = await get_json(http, server.path("api/runs?q=rate+limited"))
    assert body["searchWindow"] == 3
    # The whole id or its first 8 digits find a run of any age; a shorter start does not.
    assert await found(http, server, q=old) == [old]
    assert await found(http, server, q=old[:8]) == [old]
    assert old not in await found(http, server, q=old[:7])
    # Once newer runs push it out, the run inside the window is not searched either.
    for age in (0, 0, 0):
        await add_run(writer, age)
    assert await found(http, server, q="rate limited") == []


async def test_without_q_the_list_has_no_search_window_and_blank_q_is_no_search(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    await add_run(writer, 1)
    await add_run(writer, 2)
    plain = await get_json(http, server.path("api/runs"))
    assert "searchWindow" not in plain and len(plain["runs"]) == 2
    blank = await get_json(http, server.path("api/runs?q=+++&queue="))
    assert blank == plain


async def test_queue_filter_lists_the_runs_of_one_queue(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    pending = await add_run(writer, 1, status=0, queue="emails")
    done = await add_run(writer, 2, queue="emails")
    await add_run(writer, 3, status=0, queue="default")
    assert await found(http, server, queue="emails") == [pending, done]
    assert await found(http, server, queue="emails", status="Pending") == [pending]
    assert await found(http, server, queue="Emails") == []  # the exact name
    body = await get_json(http, server.path("api/runs?queue=emails"))
    assert {run["queue"] for run in body["runs"]} == {"emails"}
    page = await get_page(http, server.path("runs?queue=emails&status=Pending"))
    assert f'data-run-id="{pending}"' in page and page.count("data-run-id=") == 1
    assert 'name="queue" value="emails"' in page


@pytest.mark.parametrize(
    "query",
    ["q=" + "x" * 201, "q=a&q=b", "q=a%00b", "queue=a%00b", "queue=" + "q" * 256],
)
async def test_bad_search_or_queue_is_a_400_naming_it(
    server: RunningServer, http: aiohttp.ClientSession, query: str
) -> None:
    name = query.split("=", 1)[0]
    body = await get_json(http, server.path(f"api/runs?{query}"), status=400)
    assert body["error"].startswith(f"{name}:")
    page = await get_page(http, server.path(f"runs?{query}"), status=400)
    assert f"{name}:" in page and "<h1>" in page


async def test_a_search_of_200_characters_is_answered(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    text = "e" * 200
    run_id = await add_run(writer, 1, error_message=text)
    assert await found(http, server, q=text) == [run_id]


@pytest.mark.parametrize("server_settings", [{"search_window": 1234}])
async def test_runs_page_searches_with_its_box_and_says_what_it_searched(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    hit = await add_run(writer, 1, status=FAILED, error_message="Deadlock detected", queue="q1")
    await add_run(writer, 2, status=FAILED, error_message="other", queue="q1")
    page = await get_page(http, server.path("runs?q=deadlock&status=Failed&queue=q1"))
    assert f'data-run-id="{hit}"' in page and page.count("data-run-id=") == 1
    # The box holds the search; the filters are in the same form.
    form = page.split('<form class="filters', 1)[1].split("</form>", 1)[0]
    assert 'name="q" type="search" value="deadlock"' in form
    assert 'id="search"' in form and '<label for="search">Search</label>' in form
    assert 'name="status"' in form and 'name="queue" value="q1"' in form
    note = re.search(r'<p class="search-note" id="search-note">(.*?)</p>', page, re.S)
    assert note is not None
    assert "Searched the 1\u202f234 most recent runs; older runs are not searched." in note[1]
    # Nothing found: the message names the search.
    empty = await get_page(http, server.path("runs?q=no-such-thing"))
    assert "No runs match the search \u201cno-such-thing\u201d." in empty
    assert 'id="runs-empty" hidden' not in empty
    plain = await get_page(http, server.path("runs"))
    assert 'id="search-note"' not in plain and 'value=""' in plain


async def test_runs_page_links_keep_the_search_and_the_queue(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    for age in range(7):
        await add_run(writer, age, queue="bulk", input_json='{"batch": "nightly"}')
    first = await get_page(http, server.path("runs?q=NIGHTLY&queue=bulk&limit=5"))
    assert first.count("data-run-id=") == 5
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None
    link = html.unescape(older.group(1))
    assert "q=NIGHTLY" in link and "queue=bulk" in link
    second = await get_page(http, "http://" + server.url.split("/")[2] + link + "&limit=5")
    assert second.count("data-run-id=") == 2
    newest = re.search(r'href="([^"]+)">Newest<', second)
    assert newest is not None and "q=NIGHTLY" in html.unescape(newest[1])


async def test_a_hostile_search_is_shown_as_text(
    server: RunningServer, http: aiohttp.ClientSession, writer: Writer
) -> None:
    run_id = await add_run(writer, 1, error_message=XSS)
    async with http.get(server.path("runs"), params={"q": XSS}) as response:
        page = await response.text()
    assert response.status == 200
    assert f'data-run-id="{run_id}"' in page
    assert XSS not in page and html.escape(XSS) in page

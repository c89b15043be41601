"""What the pages show for numbers and times; web/static/format.js shows the same."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import repo_root
from zapjobs_sse.server.http.charts import (
    CHART_BAR,
    CHART_HEIGHT,
    bucket_label,
    format_ms,
    outcome_chart,
)
from zapjobs_sse.server.http.pages import (
    error_heading,
    format_count,
    format_duration,
    format_elapsed,
    format_log_time,
    format_percent,
    format_relative,
    progress_view,
    row_error,
    running_for,
    running_summary,
)
from zapjobs_sse.server.http.times import format_time


def test_durations_read_as_people_say_them() -> None:
    assert format_duration(None) == ""
    assert format_duration(0) == "0 ms"
    assert format_duration(999) == "999 ms"
    assert format_duration(1000) == "1.0 s"
    assert format_duration(1250) == "1.2 s"  # truncated, as in the browser
    assert format_duration(59999) == "59.9 s"
    assert format_duration(61000) == "1 min 1 s"
    assert format_duration(3600000) == "60 min 0 s"


def test_a_running_run_shows_how_long_it_has_run_in_whole_seconds() -> None:
    now = datetime(2026, 11, 28, 12, 0, 0)
    running = {"status": "Running", "durationMs": None, "startedAt": "2026-11-28T11:58:55.500Z"}
    assert running_for(running, now) == 64500
    assert format_elapsed(64500) == "1 min 4 s"
    assert format_elapsed(59999) == "59 s"
    assert format_elapsed(-20) == "0 s"  # a start a moment ahead of this clock
    # Long waits (a stuck queue's oldest pending run) in hours, then days.
    assert format_elapsed(3599999) == "59 min 59 s"
    assert format_elapsed(5430000) == "1 h 30 min"
    assert format_elapsed(90061000) == "1 d 1 h"
    assert running_for(running | {"durationMs": 1200}, now) is None
    assert running_for(running | {"status": "Completed"}, now) is None
    assert running_for(running | {"startedAt": None}, now) is None


def test_times_are_utc_to_the_second() -> None:
    assert format_time(None) == ""
    assert format_time("2026-11-28T17:59:31.123Z") == "2026-11-28 17:59:31"
    assert format_time(datetime(2026, 11, 28, 17, 59, 31, 999)) == "2026-11-28 17:59:31"


def test_outcome_bars_stack_completed_failed_cancelled_scaled_to_the_busiest_bucket() -> None:
    insights: dict[str, Any] = {
        "bucketSeconds": 60,
        "buckets": [
            {"start": "2026-11-28T12:00:00.000Z", "completed": 3, "failed": 1, "cancelled": 0},
            {"start": "2026-11-28T12:01:00.000Z", "completed": 0, "failed": 1, "cancelled": 1},
        ],
    }
    chart = outcome_chart(insights)
    first, second = chart["bars"]
    assert chart["top"] == 4 and chart["width"] == 2 * CHART_BAR
    completed, failed, cancelled = first["rects"]
    assert completed["h"] + failed["h"] + cancelled["h"] == CHART_HEIGHT
    assert failed["y"] + failed["h"] == completed["y"]  # failed sits on completed
    assert [r["h"] for r in second["rects"]] == [0, CHART_HEIGHT // 4, CHART_HEIGHT // 4]
    assert first["title"] == "12:00: 3 completed, 1 failed, 0 cancelled"
    empty = {"bucketSeconds": 60, "buckets": [dict(insights["buckets"][0], completed=0, failed=0)]}
    assert outcome_chart(empty)["top"] == 1


def test_bucket_labels_name_minutes_hours_and_days() -> None:
    assert bucket_label("2026-11-28T12:05:00.000Z", 60) == "12:05"
    assert bucket_label("2026-11-28T06:00:00.000Z", 21600) == "11-28 06:00"
    assert bucket_label("2026-11-28T00:00:00.000Z", 86400) == "2026-11-28"


def test_duration_percentiles_and_rates_read_as_people_say_them() -> None:
    assert [format_ms(v) for v in (None, 0.4, 850.0, 12345.6, 245000.0)] == [
        "\u2013",
        "0 ms",
        "850 ms",
        "12.3 s",
        "4 min 05 s",
    ]
    assert [format_percent(v) for v in (None, 0.0, 0.125, 1.0)] == [
        "\u2013",
        "0.0 %",
        "12.5 %",
        "100.0 %",
    ]


# -- the server's formatters and the browser's (web/static/format.js) agree ---------------

NOW = datetime(2026, 11, 28, 12, 0, 0)
NOW_MS = int((NOW - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
STATIC = repo_root() / "web" / "static"

RUNS: list[dict[str, Any]] = [
    {"status": "Completed", "progress": 0, "total": 0},
    {"status": "Completed", "progress": 10, "total": 10},
    {"status": "Running", "progress": 0, "total": 0},
    {"status": "Running", "progress": 40, "total": 0},
    {"status": "Running", "progress": 3, "total": 8},
    {"status": "Running", "progress": 12, "total": 8},
    {"status": "Running", "attemptNumber": 2, "errorMessage": "503"},
    {"status": "AwaitingRetry", "attemptNumber": 2, "errorMessage": "503"},
    {"status": "Failed", "attemptNumber": 3, "errorMessage": "boom"},
    {"status": "Failed", "attemptNumber": 1, "errorMessage": "boom"},
    {"status": "Pending", "attemptNumber": 1, "errorMessage": None},
]
STAMPS = [
    None,
    "2026-11-28T12:00:00.000Z",
    "2026-11-28T11:59:51.000Z",
    "2026-11-28T11:59:49.500Z",
    "2026-11-28T11:57:00.000Z",
    "2026-11-28T09:00:00.000Z",
    "2026-11-25T12:00:00.000Z",
    "2026-11-28T12:03:00.000Z",
    "2026-11-28T12:00:05.000Z",
]
WORKLOADS = [[], ["a"], ["b", "a", "b"], ["resize-images"] * 3 + ["send-welcome-email"] * 3]
DURATIONS = [None, 0, 999, 1000, 1250, 59999, 61000, 3599999, 3600000, 5430000, 90061000]
COUNTS = [None, 0, 999, 1000, 1234567]


def python_answers() -> dict[str, Any]:
    return {
        "relative": [format_relative(stamp, NOW) for stamp in STAMPS],
        "time": [format_time(stamp) for stamp in STAMPS],
        "logTime": [format_log_time(stamp) for stamp in STAMPS],
        "progress": [progress_view(run) for run in RUNS],
        "rowError": [row_error(run) for run in RUNS],
        "errorHeading": [error_heading(run) for run in RUNS],
        "running": [running_summary(types) for types in WORKLOADS],
        "duration": [format_duration(ms) for ms in DURATIONS],
        "elapsed": [format_elapsed(ms) for ms in DURATIONS],
        "count": [format_count(value) for value in COUNTS],
    }


BROWSER_SIDE = """
import * as f from %(format)s;
const c = JSON.parse(process.argv[1]);
console.log(JSON.stringify({
  relative: c.stamps.map((s) => f.formatRelative(s, c.now)),
  time: c.stamps.map((s) => f.formatTime(s)),
  logTime: c.stamps.map((s) => f.formatLogTime(s)),
  progress: c.runs.map((r) => f.progressView(r)),
  rowError: c.runs.map((r) => f.rowError(r)),
  errorHeading: c.runs.map((r) => f.errorHeading(r)),
  running: c.workloads.map((w) => f.runningSummary(w)),
  duration: c.durations.map((ms) => f.formatDuration(ms)),
  elapsed: c.durations.map((ms) => f.formatElapsed(ms)),
  count: c.counts.map((v) => f.formatCount(v)),
}));
"""


def test_the_browser_formats_every_value_as_the_server_does() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: cannot run web/static/format.js")
    cases = {
        "now": NOW_MS,
        "stamps": STAMPS,
        "runs": RUNS,
        "workloads": WORKLOADS,
        "durations": DURATIONS,
        "counts": COUNTS,
    }
    modules = {"format": json.dumps((STATIC / "format.js").as_uri())}
    script = BROWSER_SIDE % modules
    done = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(done.stdout) == python_answers()


def test_relative_times_round_towards_the_moment() -> None:
    assert format_relative(None, NOW) == ""
    assert format_relative("2026-11-28T11:59:51.000Z", NOW) == "just now"
    assert format_relative("2026-11-28T11:59:49.500Z", NOW) == "10 s ago"
    assert format_relative("2026-11-28T11:57:00.000Z", NOW) == "3 min ago"
    assert format_relative("2026-11-25T12:00:00.000Z", NOW) == "3 d ago"
    assert format_relative("2026-11-28T12:03:00.000Z", NOW) == "in 3 min"
    assert format_relative("2026-11-28T12:00:05.000Z", NOW) == "in a moment"


def test_a_finished_run_without_progress_shows_no_bar_and_a_retry_no_stale_error() -> None:
    assert progress_view({"status": "Completed", "progress": 0, "total": 0}) is None
    assert progress_view({"status": "Running", "progress": 0, "total": 0}) == {
        "max": 100,
        "value": None,
        "text": "",
    }
    assert row_error({"status": "Running", "attemptNumber": 2, "errorMessage": "503"}) == ""
    assert error_heading({"status": "Running", "attemptNumber": 2}) == "Attempt 1 failed"
    assert running_summary(["b", "a", "b"]) == "3 runs: b \u00d72, a"

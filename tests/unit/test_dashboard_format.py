"""What the pages show for numbers and times (dashboard.js formats them the same way)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from zapjobs_sse.server.http.pages import (
    CHART_HEIGHT,
    chart_bars,
    format_duration,
    format_elapsed,
    running_for,
)
from zapjobs_sse.server.http.readmodel import chart_minutes
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
    assert running_for(running | {"durationMs": 1200}, now) is None
    assert running_for(running | {"status": "Completed"}, now) is None
    assert running_for(running | {"startedAt": None}, now) is None


def test_times_are_utc_to_the_second() -> None:
    assert format_time(None) == ""
    assert format_time("2026-11-28T17:59:31.123Z") == "2026-11-28 17:59:31"
    assert format_time(datetime(2026, 11, 28, 17, 59, 31, 999)) == "2026-11-28 17:59:31"


def test_chart_has_sixty_minutes_ending_now_with_zeros_filled() -> None:
    now = datetime(2026, 11, 28, 12, 30, 45)
    rows = [
        {"minute": datetime(2026, 11, 28, 12, 30), "completed": 4, "failed": 1},
        {"minute": datetime(2026, 11, 28, 11, 31), "completed": 2, "failed": 0},
    ]
    minutes = chart_minutes(rows, now)
    assert len(minutes) == 60
    assert minutes[0] == {"minute": "2026-11-28T11:31:00.000Z", "completed": 2, "failed": 0}
    assert minutes[-1] == {"minute": "2026-11-28T12:30:00.000Z", "completed": 4, "failed": 1}
    assert sum(m["completed"] + m["failed"] for m in minutes[1:-1]) == 0
    stamps = [datetime.fromisoformat(m["minute"][:-1]) for m in minutes]
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(stamps))


def test_chart_bars_stack_failed_on_completed_scaled_to_the_busiest_minute() -> None:
    minutes = [
        {"minute": "2026-11-28T12:00:00.000Z", "completed": 3, "failed": 1},
        {"minute": "2026-11-28T12:01:00.000Z", "completed": 0, "failed": 2},
    ]
    chart = chart_bars(minutes)
    first, second = chart["bars"]
    assert chart["top"] == 4 and chart["completed"] == 3 and chart["failed"] == 3
    assert first["completed_h"] + first["failed_h"] == CHART_HEIGHT
    assert first["failed_y"] + first["failed_h"] == first["completed_y"]
    assert second["completed_h"] == 0 and second["failed_h"] == CHART_HEIGHT // 2
    assert chart_bars([{"minute": "x", "completed": 0, "failed": 0}])["top"] == 1

"""The insights charts as the server draws them (SVG in the page, no JavaScript needed):
runs per bucket stacked by outcome, and the durations per bucket. The browser refreshes
them by fetching the same fragment again (`?part=`), so there is one drawing of each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .times import format_time

__all__ = [
    "CHART_BAR",
    "CHART_HEIGHT",
    "OUTCOMES",
    "bucket_label",
    "duration_chart",
    "outcome_chart",
]

CHART_HEIGHT = 120
CHART_BAR = 10
# The outcomes stacked from the bottom up, with their legend.
OUTCOMES = (("completed", "Completed"), ("failed", "Failed"), ("cancelled", "Cancelled"))


def bucket_label(start: str, width: int) -> str:
    """A bucket as people name it: 14:05 (minutes), 06-12 14:00 (hours), 2026-06-12 (days)."""
    text = format_time(start)
    if width < 3600:
        return text[11:16]
    if width < 86400:
        return text[5:13] + ":00"
    return text[:10]


def format_ms(ms: float | None) -> str:
    """A duration percentile for people: 850 ms, 12.3 s, 4 min 05 s."""
    if ms is None:
        return "\u2013"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60000:
        return f"{ms / 1000:.1f} s"
    seconds = round(ms / 1000)
    return f"{seconds // 60} min {seconds % 60:02d} s"


def _scale(value: float, top: float) -> int:
    return round(value * CHART_HEIGHT / top)


def outcome_chart(insights: Mapping[str, Any]) -> dict[str, Any]:
    """Bars of completed, failed and cancelled runs per bucket, scaled to the busiest."""
    buckets, width = insights["buckets"], insights["bucketSeconds"]
    top = max([sum(b[key] for key, _ in OUTCOMES) for b in buckets] + [1])
    bars = []
    for index, bucket in enumerate(buckets):
        y = CHART_HEIGHT
        rects = []
        for key, _ in OUTCOMES:
            height = _scale(bucket[key], top)
            y -= height
            rects.append({"kind": key, "y": y, "h": height})
        counts = ", ".join(f"{bucket[key]} {key}" for key, _ in OUTCOMES)
        label = bucket_label(bucket["start"], width)
        bars.append(
            {"x": index * CHART_BAR, "rects": rects, "label": label, "title": f"{label}: {counts}"}
        )
    return {
        "bars": bars,
        "top": top,
        "width": len(buckets) * CHART_BAR,
        "height": CHART_HEIGHT,
    }


def duration_chart(insights: Mapping[str, Any]) -> dict[str, Any]:
    """Per bucket, the 95th percentile as a pale bar with the median inside it."""
    buckets, width = insights["buckets"], insights["bucketSeconds"]
    top = max([b["durationMs"]["p95"] or 0 for b in buckets] + [1])
    bars = []
    for index, bucket in enumerate(buckets):
        p50, p95 = bucket["durationMs"]["p50"], bucket["durationMs"]["p95"]
        label = bucket_label(bucket["start"], width)
        if p95 is None:
            title = f"{label}: no finished runs"
        else:
            title = f"{label}: median {format_ms(p50)}, 95th percentile {format_ms(p95)}"
        p95_h, p50_h = _scale(p95 or 0, top), _scale(p50 or 0, top)
        bars.append(
            {
                "x": index * CHART_BAR,
                "label": label,
                "title": title,
                "p50": format_ms(p50),
                "p95": format_ms(p95),
                "rects": [
                    {"kind": "p95", "y": CHART_HEIGHT - p95_h, "h": p95_h},
                    {"kind": "p50", "y": CHART_HEIGHT - p50_h, "h": p50_h},
                ],
            }
        )
    return {
        "bars": bars,
        "top": format_ms(top),
        "width": len(buckets) * CHART_BAR,
        "height": CHART_HEIGHT,
    }

"""{base}/metrics: Prometheus text format, one registry per application.

The hot path keeps plain integers (Broker.counters, Bridge.reconnects, ...); the
collector below turns them into metric families only when Prometheus scrapes. The one
real metric object is the commit-to-send delay histogram, which the bridge feeds
through `Metrics.observe_delay`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...db import DatabaseError
from ..keys import BRIDGE, BROKER, DATABASE, HOURS, STATS
from .insights import INSIGHTS

__all__ = ["DELAY_BUCKETS", "METRICS", "Metrics", "metrics_endpoint"]

log = structlog.get_logger("zapjobs_sse.server.http.metrics")

PREFIX = "zapjobs_sse"

# From "as good as it gets" to "somebody will notice" (seconds).
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# A scrape must not hang on a sick database; the gauge is then absent from the scrape.
QUEUE_USAGE_TIMEOUT = 1.0


class _AppCollector(Collector):
    """Reads the counters that the broker, bridge and stats keep anyway."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.queue_usage: float | None = None

    def collect(self) -> Iterator[Metric]:
        app = self._app
        broker = app.get(BROKER)
        if broker is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_open_streams", "Event streams open now.", broker.subscription_count
            )
            counters = dict(broker.counters)
            published = CounterMetricFamily(
                f"{PREFIX}_events_published",
                "Events published to the broker, by event type.",
                labels=["event"],
            )
            sent = CounterMetricFamily(
                f"{PREFIX}_frames_sent",
                "Event frames queued for sending to streams (one per stream), by event type.",
                labels=["event"],
            )
            for name, value in sorted(counters.items()):
                if name.startswith("events_published_"):
                    published.add_metric([name.removeprefix("events_published_")], value)
                elif name.startswith("frames_queued_"):
                    sent.add_metric([name.removeprefix("frames_queued_")], value)
            yield published
            yield sent
            yield CounterMetricFamily(
                f"{PREFIX}_clients_evicted",
                "Streams cut because the client fell behind by more than its buffer.",
                value=counters.get("clients_evicted", 0),
            )
            yield CounterMetricFamily(
                f"{PREFIX}_resyncs_sent",
                "resync events sent to streams (each one makes a client reload).",
                value=counters.get("resyncs_sent", 0),
            )
        bridge = app.get(BRIDGE)
        if bridge is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_notifications_received",
                "Notifications (--feed notify) or row changes (--feed wal) received.",
                value=bridge.notifications,
            )
            yield CounterMetricFamily(
                f"{PREFIX}_bridge_reads",
                "Statements the bridge ran to read what changes named (runs, workers, log "
                "lines); changes that carried their rows (the WAL feed) need none.",
                value=bridge.statements,
            )
            yield CounterMetricFamily(
                f"{PREFIX}_bridge_reconnects",
                "Times the feed connection (LISTEN or replication) was lost and opened again.",
                value=bridge.reconnects,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_bridge_listening",
                "1 while the feed connection (LISTEN or replication) is up, 0 otherwise.",
                1 if bridge.listening.is_set() else 0,
            )
        stats = app.get(STATS)
        if stats is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_stats_refreshes",
                "Refreshes of the stats and the queues, one query each time (one per "
                "coalesced burst of changes, or per refresh interval).",
                value=stats.refreshes,
            )
            yield GaugeMetricFamily(
                f"{PREFIX}_stats_refresh_duration_seconds",
                "Duration of the latest refresh of the stats and the queues.",
                stats.last_duration,
            )
        cache = app.get(INSIGHTS)
        if cache is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_insights_computed",
                "Insights answers computed (the others came from the cache all viewers share).",
                value=cache.computed,
            )
        hours = app.get(HOURS)
        if hours is not None:
            yield CounterMetricFamily(
                f"{PREFIX}_rollup_hours_written",
                "Hours of the run rollups recomputed from the runs table.",
                value=hours.hours_written,
            )
        if self.queue_usage is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_notify_queue_usage_ratio",
                "Share of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage).",
                self.queue_usage,
            )


class Metrics:
    """The registry of one application and the delay histogram the bridge feeds."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _AppCollector(app)
        self.registry.register(self._collector)
        self.delay = Histogram(
            f"{PREFIX}_commit_to_send_delay_seconds",
            "Seconds from the writing transaction in PostgreSQL to its events being queued "
            "to streams (measured from the transaction's start: an upper bound).",
            buckets=DELAY_BUCKETS,
            registry=self.registry,
        )

    def observe_delay(self, seconds: float) -> None:
        # The database's clock and ours may differ a little: never observe below zero.
        self.delay.observe(max(0.0, seconds))

    async def render(self, app: web.Application) -> bytes:
        """The text exposition, with the NOTIFY queue usage read now."""
        try:
            async with asyncio.timeout(QUEUE_USAGE_TIMEOUT):
                usage: float | None = await app[DATABASE].notification_queue_usage(
                    timeout=QUEUE_USAGE_TIMEOUT
                )
        except (DatabaseError, TimeoutError) as error:
            log.warning("metrics_queue_usage_failed", error=str(error) or "timeout")
            usage = None
        self._collector.queue_usage = usage
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """GET {base}/metrics."""
    body = await request.app[METRICS].render(request.app)
    return web.Response(
        body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    )

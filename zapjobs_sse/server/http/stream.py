"""GET {base}/events: the Server-Sent Events endpoint."""

from __future__ import annotations

import asyncio
import random
from typing import Final

import structlog
from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import StreamWriter
from aiohttp_sse import EventSourceResponse
from multidict import CIMultiDict, istr

from ...db import DatabaseError
from ..keys import BROKER, DATABASE, LOGS, SETTINGS
from ..live.frames import comment_frame, dumps, event_frame, with_retry
from ..live.streams import close_stream, open_stream
from .auth.access import ACCESS_ENDED, access_ended_frame, access_watch
from .auth.authenticator import identity_of
from .errors import unavailable
from .limits import STREAM_LIMITER
from .params import StreamParams, header_last_event_id

__all__ = ["stream_events"]

SHUTDOWN: Final = dumps({"reason": "shutdown"})

log = structlog.get_logger("zapjobs_sse.server.http.stream")


# aiohttp-sse's headers, named with istr (see security.SECURITY_HEADERS for why).
_STREAM_HEADERS: Final = CIMultiDict(
    [
        (hdrs.CONTENT_TYPE, "text/event-stream"),
        (hdrs.CACHE_CONTROL, "no-cache"),
        (hdrs.CONNECTION, "keep-alive"),
        (istr("X-Accel-Buffering"), "no"),
    ]
)


class _EventStream(EventSourceResponse):
    """aiohttp-sse's response without its ping task: the stream's own loop sends the
    heartbeats, so a second task per idle stream would only cost memory."""

    def __init__(self) -> None:
        super().__init__(sep="\n")
        # The same headers, under istr names: aiohttp-sse's plain str names would cost
        # each open stream about 1 KB of name copies.
        self.headers.clear()
        self.headers.extend(_STREAM_HEADERS)

    async def _ping(self) -> None:
        return None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Start the response, then let go of aiohttp-sse's ping task: it ends at once (see
        _ping), but a finished task still holds about 0.5 KB as long as the stream. (So
        aiohttp-sse's is_connected(), wait() and stop_streaming() are not for this class.)
        """
        writer = await super().prepare(request)
        self._ping_task = None
        return writer


class _SocketSink:
    """The broker's direct path to one stream's socket (see Subscription.flush)."""

    __slots__ = ("_chunked", "_transport")

    def __init__(self, transport: asyncio.Transport, chunked: bool) -> None:
        self._transport = transport
        self._chunked = chunked

    def ready(self) -> bool:
        transport = self._transport
        return not transport.is_closing() and transport.get_write_buffer_size() == 0

    def write(self, data: bytes) -> None:
        if self._chunked:  # HTTP/1.1: the same framing aiohttp's writer would add
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._transport.write(data)


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Stream the events the query asks for, until the client or the server goes away
    (HEAD: the stream's headers only)."""
    settings = request.app[SETTINGS]
    params = StreamParams.parse(request.query, settings.max_filters)
    last_event_id = header_last_event_id(request.headers) or params.last_event_id
    if request.method == hdrs.METH_HEAD:
        # The headers that GET starts with, after the same checks (credentials, query),
        # and no body: nothing is subscribed, so no stream slot is taken either.
        head = web.StreamResponse(headers=_STREAM_HEADERS)
        await head.prepare(request)
        return head

    identity = identity_of(request)
    # The credentials are checked again at every wake-up (at least every heartbeat).
    access_ended = access_watch(request)
    slot = request.app[STREAM_LIMITER].acquire(identity)  # 429 when too many are open
    # One coroutine per stream, not two: an open stream's frames are its idle cost.
    broker, following = request.app[BROKER], request.app[LOGS]
    try:
        sub = await open_stream(
            broker,
            following,
            request.app[DATABASE],
            params.filter,
            last_event_id=last_event_id,
            logs_after=params.logs_after,
            identity=identity,
        )
    except DatabaseError as error:
        slot.release()
        log.warning("stream_start_failed", error=str(error))
        unavailable("database unavailable")
    except BaseException:  # the client went away while the stream was starting
        slot.release()
        raise
    response = _EventStream()
    try:
        writer = await response.prepare(request)
        transport = request.transport
        if transport is not None:
            sub.on_abort(transport.abort)
        log.info(
            "stream_opened",
            runs=len(params.filter.runs),
            job_types=len(params.filter.job_types),
            topics=sorted(params.filter.topics),
            resumed=sub.resumed,
        )
        # The retry hint rides in the block of the stream's first event: a block with no
        # data but retry: is an empty event to some clients (httpx-sse).
        first = sub.take()
        await response.write(  # with the headers
            with_retry(settings.retry_ms, first) if first else comment_frame("connected")
        )
        retry_ms = None if first else settings.retry_ms
        direct = transport is not None and isinstance(writer, StreamWriter)
        while sub.close_reason is None:
            if retry_ms is None and direct and sub.sink is None:
                # The hint is out: from now on the broker may write to the socket directly.
                assert transport is not None and isinstance(writer, StreamWriter)
                sub.attach(_SocketSink(transport, writer.chunked))
            if await sub.wait(settings.heartbeat):
                data = sub.take()
                if data:
                    await response.write(data if retry_ms is None else with_retry(retry_ms, data))
                    retry_ms = None
            else:
                await response.write(comment_frame("heartbeat"))
            if sub.close_reason is None and (reason := access_ended()) is not None:
                sub.close(reason)
        if sub.close_reason == "shutdown":
            # Come back in a few seconds, spread so that not every client comes at once.
            await response.write(
                with_retry(random.randint(500, 5000), event_frame(None, "reconnect", SHUTDOWN))
            )
        elif sub.close_reason in ACCESS_ENDED:
            await response.write(access_ended_frame(request, sub.close_reason))
        log.info("stream_closed", reason=sub.close_reason)
    except ConnectionResetError:
        log.info("stream_client_gone", reason=sub.close_reason or "disconnected")
    except asyncio.CancelledError:
        log.info("stream_client_gone", reason=sub.close_reason or "disconnected")
        raise
    finally:
        close_stream(broker, following, sub)
        slot.release()
        if sub.close_reason == "overflow":
            log.info("stream_evicted", reason="overflow")
    return response

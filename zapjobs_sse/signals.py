"""SIGINT and SIGTERM, the signals that stop every long-running command (serve, worker, demo)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["STOP_SIGNALS", "on_stop_signals", "wait_for_stop_signal"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signals(handler: Callable[[], None]) -> Iterator[None]:
    """Call `handler` (in the running loop) on every SIGINT or SIGTERM while the block runs;
    after it, they are handled as by default again (SIGINT raises KeyboardInterrupt)."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, handler)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with on_stop_signals(stop.set):
        await stop.wait()

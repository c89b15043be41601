"""Wakeup: what a callback gives and a coroutine waits for, with a timeout, cheaply.

A bare future per wait and one lazily re-armed timer: an asyncio.Event plus an
asyncio.timeout per wake-up cost several times more CPU than this, and a stream's
deliveries and the WAL feed's socket wake-ups are counted in thousands a second.
"""

from __future__ import annotations

import asyncio

__all__ = ["Wakeup"]


class Wakeup:
    """One waiter at a time: `wait` returns what `wake` gave, or False at its timeout."""

    __slots__ = ("_deadline", "_timer", "_timer_at", "_waiter")

    def __init__(self) -> None:
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0

    @property
    def waiting(self) -> bool:
        """A coroutine waits now."""
        return self._waiter is not None

    async def wait(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        if self._timer is None or self._deadline < self._timer_at:
            self.cancel()
            self._timer_at = self._deadline
            self._timer = loop.call_at(self._deadline, self._on_timer)
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def wake(self, result: bool = True) -> None:
        """End the current wait, if any, with `result`."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def cancel(self) -> None:
        """Drop the timer (when done with waiting)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        """The timer fires at the deadline of an earlier wait: re-arm it for the current one."""
        self._timer = None
        if self._waiter is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._deadline:
            self._timer_at = self._deadline
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self.wake(False)

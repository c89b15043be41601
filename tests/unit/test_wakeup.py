"""Wakeup: a wait ends at its wake-up, or at its own timeout, whatever waits came before."""

from __future__ import annotations

import asyncio
import time

from zapjobs_sse.wakeup import Wakeup


async def test_a_wait_returns_what_woke_it() -> None:
    wakeup = Wakeup()
    waiting = asyncio.create_task(wakeup.wait(30))
    await asyncio.sleep(0)
    assert wakeup.waiting
    wakeup.wake(True)
    assert await asyncio.wait_for(waiting, 1) is True
    assert not wakeup.waiting
    wakeup.cancel()


async def test_each_wait_times_out_at_its_own_deadline() -> None:
    wakeup = Wakeup()
    long_wait = asyncio.create_task(wakeup.wait(30))
    await asyncio.sleep(0)
    wakeup.wake(True)
    await long_wait  # its timer, 30 s away, is left armed
    started = time.monotonic()
    assert await wakeup.wait(0.1) is False  # a shorter wait is not held to it
    assert 0.09 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    assert await wakeup.wait(0.2) is False  # and a longer one than the last: re-armed
    assert 0.19 <= time.monotonic() - started < 1.0
    wakeup.cancel()

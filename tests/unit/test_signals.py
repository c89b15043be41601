"""The stop signals of serve, worker and demo: handled while a block runs, default after."""

from __future__ import annotations

import asyncio
import os
import signal

from zapjobs_sse.signals import STOP_SIGNALS, on_stop_signals, wait_for_stop_signal


def _installed() -> bool:
    # SIGTERM: pytest's event loop runner has a SIGINT handler of its own.
    return signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL


async def test_every_stop_signal_calls_the_handler_while_the_block_runs() -> None:
    received: list[int] = []
    both = asyncio.Event()

    def handler() -> None:
        received.append(len(received) + 1)
        if len(received) == len(STOP_SIGNALS):
            both.set()

    with on_stop_signals(handler):
        assert _installed()
        for signum in STOP_SIGNALS:
            os.kill(os.getpid(), signum)
        await asyncio.wait_for(both.wait(), 5)

    assert received == [1, 2]
    assert not _installed()


async def test_waiting_for_a_stop_signal_ends_on_the_first_one() -> None:
    waiting = asyncio.create_task(wait_for_stop_signal())
    while not _installed():
        await asyncio.sleep(0)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(waiting, 5)
    assert not _installed()

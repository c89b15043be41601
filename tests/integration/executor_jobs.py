"""Jobs for the executor tests that run a worker in a subprocess (`--jobs` imports them)."""

from __future__ import annotations

import asyncio
from typing import Any

from zapjobs_sse.executor import JobContext, JobRegistry

__all__ = ["registry"]

registry = JobRegistry()


@registry.job("stuck-first-time", max_retries=2, timeout_seconds=300)
async def stuck_first_time(ctx: JobContext, data: Any) -> Any:
    """The first attempt hangs (its worker gets killed); a later one completes at once."""
    await ctx.log("info", f"attempt {ctx.attempt}")
    if ctx.attempt == 1:
        await asyncio.sleep(300)
    return {"attempt": ctx.attempt}


@registry.job("takes-a-second")
async def takes_a_second(ctx: JobContext, data: Any) -> Any:
    """Long enough to be running when the worker is told to stop."""
    await asyncio.sleep(1.0)
    return "finished"

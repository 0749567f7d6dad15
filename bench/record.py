"""Phases of a run: each records the CPU and peak memory of every process of the stack and the
queues between the stages while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from bench.probe import QueueProbe
from bench.procs import Sampler

# The pipeline counts as idle when its queues hold at most this much in all and Temporal's
# server uses less than this share of a core (timers of earlier applications still fire).
IDLE_QUEUES = 3
IDLE_TEMPORAL_CPU = 25.0


class Recorder:
    def __init__(
        self,
        sampler: Sampler,
        probe: QueueProbe | None,
        settle_seconds: float = 0.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sampler = sampler
        self.probe = probe
        self.settle_seconds = settle_seconds
        self.say = say
        self.phases: dict[str, dict[str, Any]] = {}

    async def settle(self) -> dict[str, Any]:
        """Wait (at most `settle_seconds`) until what earlier phases left behind is done:
        every queue empty and Temporal's server calm, so each phase starts from idle."""
        began = time.monotonic()
        calm = 0
        last: dict[str, int] = {}
        temporal: float | None = None
        while self.probe is not None and time.monotonic() - began < self.settle_seconds:
            last = await self.probe.sample()
            self.sampler.snapshot()
            temporal = self.sampler.recent_cpu("temporal")
            idle = sum(last.values()) <= IDLE_QUEUES and (temporal or 0.0) < IDLE_TEMPORAL_CPU
            calm = calm + 1 if idle else 0
            if calm >= 2:
                break
            await asyncio.sleep(1.0)
        waited = time.monotonic() - began
        settled = calm >= 2 or self.settle_seconds <= 0
        if waited > 5 or not settled:
            self.say(
                f"settled in {waited:.0f}s"
                if settled
                else f"not idle after {waited:.0f}s (queues {sum(last.values())}, "
                f"temporal {temporal or 0:.0f}% CPU): measuring anyway"
            )
        return {"waited_seconds": round(waited, 1), "idle": settled}

    @contextlib.asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """`async with recorder.phase("x") as resources:` — `resources` is filled on exit."""
        out: dict[str, Any] = {"settle": await self.settle()}
        mark = self.sampler.mark()
        first = self.probe.begin() if self.probe is not None else 0
        try:
            yield out
        finally:
            out.update(self.sampler.window(mark))
            if self.probe is not None:
                out["queues"] = self.probe.summary(first)
            self.phases[name] = out

"""A fault scenario: a steady stream of applications driven through their lifecycle while
faults are injected, then the reconciliation.

Two shapes:
- a sequence (the quick subset): each fault once, one after the other, while the stream runs;
- repeated (the long variant): the fault again every `repeat_every` seconds for as long as
  applications are being submitted, so a thousand applications meet it at every stage of
  their lifecycle. Given several faults, it takes them in turn (a rotation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.config import Settings
from tests.faults.load import LoadDriver, LoadStats
from tests.faults.reconcile import Reconciliation, details, reconcile, table
from tests.faults.stack import FAULTS, Stack

Log = Callable[[str], None]


@dataclass
class Scenario:
    label: str
    faults: list[str]
    applications: int
    rate: float  # submissions per second (at most; bounded by max_in_flight)
    max_in_flight: int = 60
    # None: each fault once, in order. Otherwise a fault every this many seconds while the
    # stream runs, the faults in turn.
    repeat_every: float | None = None
    first_after: float = 15.0  # seconds of load before the first fault
    gap: float = 5.0  # seconds of quiet between faults of a sequence
    time_limit: float = 900.0  # for the whole load, tail included
    settle_timeout: float = 240.0
    seed: int | None = None


@dataclass
class Injection:
    fault: str
    at: float  # seconds after the start of the run
    epoch: float  # when (time.time())
    recovery: float  # seconds until every service was healthy again
    error: str | None = None


@dataclass
class ScenarioResult:
    scenario: Scenario
    reconciliation: Reconciliation
    injections: list[Injection] = field(default_factory=list)
    seconds: float = 0.0
    load_seconds: float = 0.0
    stats: LoadStats = field(default_factory=LoadStats)
    latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reconciliation.ok and not any(i.error for i in self.injections)

    def summary(self) -> str:
        r = self.reconciliation
        lat = sorted(self.latencies)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:.0f}s" if lat else "-"

        injected = ", ".join(
            f"{i.fault}@{i.at:.0f}s (healthy after {i.recovery:.0f}s"
            + (f", FAILED: {i.error}" if i.error else "")
            + ")"
            for i in self.injections
        )
        retries = sum(self.stats.http_retries.values())
        return "\n".join(
            [
                table([r]),
                "",
                f"run {self.seconds:.0f}s (load {self.load_seconds:.0f}s, settle "
                f"{r.settle_seconds:.0f}s); lifecycle p50 {pct(0.5)} p95 {pct(0.95)}",
                f"faults: {injected or 'none'}",
                f"driver: {self.stats.requests} HTTP requests, {retries} retried "
                f"{dict(self.stats.http_retries)}, Kafka retries "
                f"{self.stats.kafka_retries}, 409s {dict(self.stats.conflicts)}",
                details(r),
            ]
        )


async def ensure_healthy(stack: Stack, log: Log) -> None:
    """Leave the stack as found: everything running, every /health green."""
    health = await stack.health()
    if all(health.values()):
        return
    log(f"bringing the stack back up (unhealthy: {[n for n, ok in health.items() if not ok]})")
    await stack.dev("up")
    await stack.wait_healthy()


async def run_scenario(settings: Settings, sc: Scenario, log: Log) -> ScenarioResult:
    stack = Stack(settings, log)
    skipped: list[str] = []
    for name in list(sc.faults):
        reason = FAULTS[name].unavailable(stack)
        if reason:
            log(f"skipping fault {name}: {reason}")
            skipped.append(f"{name} ({reason})")
            sc.faults.remove(name)
    await ensure_healthy(stack, log)
    started = time.monotonic()
    since = time.time()
    phase = ["load"]
    driver = LoadDriver(
        settings,
        applications=sc.applications,
        rate=sc.rate,
        max_in_flight=sc.max_in_flight,
        time_limit=sc.time_limit,
        log=log,
        seed=sc.seed,
        label=lambda: phase[0],
    )
    log(
        f"== {sc.label}: {sc.applications} applications at up to {sc.rate}/s "
        f"({sc.max_in_flight} in flight), faults {sc.faults or 'none'}"
        + (f" every {sc.repeat_every:.0f}s" if sc.repeat_every else "")
        + f"; run {driver.run_id}"
    )
    load = asyncio.create_task(driver.run(), name="faults-load")
    injections: list[Injection] = []

    async def inject(name: str) -> None:
        fault = FAULTS[name]
        at = time.monotonic() - started
        epoch = time.time()
        phase[0] = f"FAULT {name}"
        log(f"-- {name}: {fault.description}")
        t0 = time.monotonic()
        error = None
        try:
            await fault.run(stack)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log(f"-- {name} failed: {error}")
            await ensure_healthy(stack, log)
        recovery = time.monotonic() - t0
        injections.append(Injection(name, at, epoch, recovery, error))
        log(f"-- {name}: healthy again after {recovery:.1f}s")
        phase[0] = f"after {name}"

    async def wait(seconds: float) -> None:
        with_load = asyncio.shield(load)
        try:
            await asyncio.wait_for(with_load, seconds)
        except TimeoutError:
            pass

    try:
        await wait(sc.first_after)
        if sc.repeat_every is None:
            for index, name in enumerate(sc.faults):
                if index:
                    await wait(sc.gap)
                await inject(name)
        elif sc.faults:
            turn = 0
            while driver.submitting and not load.done():
                await inject(sc.faults[turn % len(sc.faults)])
                turn += 1
                await wait(sc.repeat_every)
        phase[0] = "faults done"
        tracked = await load
    except BaseException:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
        await ensure_healthy(stack, log)
        raise
    load_seconds = time.monotonic() - started
    await ensure_healthy(stack, log)
    log(f"load done in {load_seconds:.0f}s; settling, then reconciling")
    reconciliation = await reconcile(
        settings,
        tracked,
        driver.config,
        since,
        sc.label,
        log,
        settle_timeout=sc.settle_timeout,
        notifications_killed=[i.epoch for i in injections if i.fault == "kill9-notifications"],
    )
    result = ScenarioResult(
        scenario=sc,
        reconciliation=reconciliation,
        injections=injections,
        seconds=time.monotonic() - started,
        load_seconds=load_seconds,
        stats=driver.stats,
        latencies=[t.finished_at - t.submitted_at for t in tracked if t.finished_at is not None],
    )
    reconciliation.notes += [f"fault skipped: {s}" for s in skipped]
    log(result.summary())
    return result

"""The raw Temporal ceiling's workflows: one that does nothing, one that runs one no-op
activity. Run by a plain Python worker (default data converter, default sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop_activity() -> None:
    return None


@workflow.defn(name="BenchNoop")
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchOneActivity")
class OneActivityWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop_activity, start_to_close_timeout=timedelta(seconds=30))

"""Fault injection on the real stack: under a steady stream of applications moving through
their lifecycle, services are killed, Kafka, Postgres and Temporal stopped and restarted;
afterwards every application is reconciled (tests/faults/reconcile.py): nothing lost, nothing
duplicated, no outbox row unsent, no consumer lag.

- `test_quick_fault_subset` (marker `faults`, part of `./dev test`): ~40 applications, each
  service killed once, Kafka killed, Postgres stopped immediately, Temporal killed; ~5 min.
- `test_fault_long` (marker `faults_long`, `./dev faults`): per fault, 1000 applications with
  that fault injected again and again while they are submitted. Skipped unless asked for.

Progress goes to the terminal and to <state>/logs/faults.log; the table to
<state>/logs/faults-report.md."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.config import Settings
from tests.faults.reconcile import table
from tests.faults.scenario import Scenario, ScenarioResult, run_scenario
from tests.faults.stack import FAULTS, Stack, stack_settings
from tests.faults.suites import Logger, long_scenarios, quick_scenario, write_report

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fault_settings(stack: Settings) -> Settings:
    return stack_settings()


@pytest.fixture(scope="module")
def long_results(fault_settings: Settings) -> Iterator[list[ScenarioResult]]:
    results: list[ScenarioResult] = []
    yield results
    if results:
        path = write_report(fault_settings, "Fault injection: long variant", results)
        Logger(fault_settings)(
            "\n" + table(r.reconciliation for r in results) + f"\nreport: {path}"
        )


@pytest.mark.faults
async def test_quick_fault_subset(
    fault_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        log = Logger(fault_settings)
        result = await run_scenario(fault_settings, quick_scenario(), log)
        write_report(fault_settings, "Fault injection: quick subset", [result])
    assert result.ok, result.summary()


@pytest.mark.faults_long
@pytest.mark.parametrize("scenario", long_scenarios(), ids=lambda s: s.label)
async def test_fault_long(
    scenario: Scenario,
    fault_settings: Settings,
    long_results: list[ScenarioResult],
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = Logger(fault_settings)
    stack = Stack(fault_settings, log)
    unavailable = [f"{f}: {r}" for f in scenario.faults if (r := FAULTS[f].unavailable(stack))]
    if len(unavailable) == len(scenario.faults):
        pytest.skip("; ".join(unavailable))
    with capsys.disabled():
        result = await run_scenario(fault_settings, scenario, log)
    long_results.append(result)
    assert result.ok, result.summary()

"""Run fault scenarios from the command line (the same code the pytest entry runs):

    .venv/bin/python -m tests.faults quick            # the quick subset
    .venv/bin/python -m tests.faults long             # every fault, 1000 applications each
    .venv/bin/python -m tests.faults none             # the load and the reconciliation only
    GRANTS_FAULTS=kafka-kill9 GRANTS_FAULTS_APPLICATIONS=200 .venv/bin/python -m tests.faults long
    GRANTS_FAULTS=kill9-intake,kafka-term GRANTS_FAULTS_ROTATE=1 \
        .venv/bin/python -m tests.faults long         # those faults in turn, one stream

Knobs: see tests/faults/suites.py. Exit status 0 when every reconciliation is clean."""

from __future__ import annotations

import argparse
import asyncio
import os

from tests.faults.reconcile import table
from tests.faults.scenario import Scenario, ScenarioResult, run_scenario
from tests.faults.stack import stack_settings
from tests.faults.suites import Logger, long_scenarios, quick_scenario, write_report


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=["quick", "long", "none"])
    args = parser.parse_args()
    settings = stack_settings()
    log = Logger(settings)
    if args.suite == "quick":
        scenarios = [quick_scenario()]
    elif args.suite == "long":
        scenarios = long_scenarios()
    else:
        applications = int(os.environ.get("GRANTS_FAULTS_APPLICATIONS") or 20)
        rate = float(os.environ.get("GRANTS_FAULTS_RATE") or 1)
        scenarios = [
            Scenario(
                label="no fault",
                faults=[],
                applications=applications,
                rate=rate,
                max_in_flight=int(os.environ.get("GRANTS_FAULTS_IN_FLIGHT") or 60),
                first_after=0,
                time_limit=max(600, applications / rate * 3),
            )
        ]
    results: list[ScenarioResult] = []
    for scenario in scenarios:
        results.append(await run_scenario(settings, scenario, log))
        write_report(settings, f"Fault injection: {args.suite}", results)
    log("\n" + table(r.reconciliation for r in results))
    path = write_report(settings, f"Fault injection: {args.suite}", results)
    log(f"report: {path}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

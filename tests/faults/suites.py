"""The two suites: the quick subset (part of `./dev test`) and the long variant
(`./dev faults`), with their knobs from the environment.

- GRANTS_FAULTS_APPLICATIONS  applications per scenario (quick 40, long 1000)
- GRANTS_FAULTS               comma-separated fault names (quick: each service killed, Kafka
                              killed, Postgres stopped, Temporal killed; long: every fault)
- GRANTS_FAULTS_RATE          submissions per second (quick 0.4, long 4)
- GRANTS_FAULTS_IN_FLIGHT     applications being driven at once (quick 40, long 100)
- GRANTS_FAULTS_REPEAT_EVERY  long variant: seconds from one recovery to the next injection (120)
- GRANTS_FAULTS_ROTATE        long variant: "1" runs the listed faults in turn during one stream
                              (one reconciliation) instead of one stream per fault
- GRANTS_FAULTS_SEED          the plans' random seed (a fresh one by default)
- GRANTS_FAULTS_REPORT        where the Markdown report goes (<state>/logs/faults-report.md)"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from shared.config import Settings
from tests.faults.reconcile import table
from tests.faults.scenario import Scenario, ScenarioResult
from tests.faults.stack import FAULTS

# Notifications first: a delivery whose sender died mid-send waits for its lease (120 s)
# before it is sent again, and that wait overlaps the faults that follow.
QUICK_FAULTS = [
    "kill9-notifications",
    "kill9-intake",
    "kill9-review",
    "kill9-payments",
    "postgres-immediate",
    "kafka-kill9",
    "temporal-kill9",
]
LONG_FAULTS = list(FAULTS)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_faults(default: list[str]) -> list[str]:
    raw = os.environ.get("GRANTS_FAULTS")
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else default
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {sorted(FAULTS)}")
    return names


def _seed() -> int | None:
    raw = os.environ.get("GRANTS_FAULTS_SEED")
    return int(raw) if raw else None


def quick_scenario() -> Scenario:
    applications = _env_int("GRANTS_FAULTS_APPLICATIONS", 40)
    return Scenario(
        label="quick: " + ", ".join(_env_faults(QUICK_FAULTS)),
        faults=_env_faults(QUICK_FAULTS),
        applications=applications,
        rate=_env_float("GRANTS_FAULTS_RATE", 0.4),
        max_in_flight=_env_int("GRANTS_FAULTS_IN_FLIGHT", 40),
        first_after=10,
        gap=3,
        time_limit=540,
        settle_timeout=200,
        seed=_seed(),
    )


def long_faults() -> list[str]:
    return _env_faults(LONG_FAULTS)


def long_scenarios() -> list[Scenario]:
    faults = long_faults()
    if os.environ.get("GRANTS_FAULTS_ROTATE") == "1":
        return [long_scenario(faults, label="rotation: " + ", ".join(faults))]
    return [long_scenario([fault]) for fault in faults]


def long_scenario(faults: list[str], label: str | None = None) -> Scenario:
    applications = _env_int("GRANTS_FAULTS_APPLICATIONS", 1000)
    rate = _env_float("GRANTS_FAULTS_RATE", 4)
    return Scenario(
        label=label or faults[0],
        faults=list(faults),
        applications=applications,
        rate=rate,
        max_in_flight=_env_int("GRANTS_FAULTS_IN_FLIGHT", 100),
        repeat_every=_env_float("GRANTS_FAULTS_REPEAT_EVERY", 120),
        first_after=20,
        # A bound, not a target: on 2 busy cores ~1 application a second gets through.
        time_limit=max(1200, applications * 8 + 600),
        settle_timeout=300,
        seed=_seed(),
    )


class Logger:
    """Progress on the terminal (even under pytest's capture) and in <state>/logs/faults.log."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_dir / "logs" / "faults.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        sys.stdout.write(stamped + "\n")
        sys.stdout.flush()
        with self.path.open("a", encoding="utf-8") as out:
            out.write(stamped + "\n")


def write_report(settings: Settings, title: str, results: list[ScenarioResult]) -> Path:
    raw = os.environ.get("GRANTS_FAULTS_REPORT")
    path = Path(raw) if raw else settings.state_dir / "logs" / "faults-report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [f"# {title} ({time.strftime('%Y-%m-%d %H:%M')})", ""]
    body += [table(r.reconciliation for r in results), ""]
    for r in results:
        body += ["", f"## {r.scenario.label}", "", "```", r.summary(), "```"]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path

"""`python -m services.intake`: the intake service, one process."""

from pathlib import Path

from services.intake.api import build_api
from services.intake.app import register_subscribers
from services.intake.worker import WORKFLOWS, build_activities
from shared.runtime import ServiceSpec, main

SPEC = ServiceSpec(
    name="intake",
    migrations=Path(__file__).parent / "migrations",
    register_subscribers=register_subscribers,
    build_api=build_api,
    workflows=WORKFLOWS,
    build_activities=build_activities,
)

if __name__ == "__main__":
    main(SPEC)

"""`python -m services.notifications`: the notifications service, one process."""

from pathlib import Path

from services.notifications.api import build_api
from services.notifications.app import register_subscribers
from services.notifications.worker import WORKFLOWS, build_activities
from shared.runtime import ServiceSpec, main

SPEC = ServiceSpec(
    name="notifications",
    migrations=Path(__file__).parent / "migrations",
    register_subscribers=register_subscribers,
    build_api=build_api,
    workflows=WORKFLOWS,
    build_activities=build_activities,
)

if __name__ == "__main__":
    main(SPEC)

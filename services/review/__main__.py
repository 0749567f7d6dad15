"""`python -m services.review`: the review service, one process."""

from pathlib import Path

from services.review.api import build_api
from services.review.app import register_subscribers
from services.review.worker import WORKFLOWS, build_activities
from shared.runtime import ServiceSpec, main

SPEC = ServiceSpec(
    name="review",
    migrations=Path(__file__).parent / "migrations",
    register_subscribers=register_subscribers,
    build_api=build_api,
    workflows=WORKFLOWS,
    build_activities=build_activities,
)

if __name__ == "__main__":
    main(SPEC)

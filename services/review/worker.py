"""What review's Temporal worker runs on the `review` task queue."""

from services.review.activities import build_activities
from services.review.workflows import WORKFLOWS

__all__ = ["WORKFLOWS", "build_activities"]

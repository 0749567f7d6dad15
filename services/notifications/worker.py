"""What notifications' Temporal worker runs on the `notifications` task queue."""

from services.notifications.activities import build_activities
from services.notifications.workflows import WORKFLOWS

__all__ = ["WORKFLOWS", "build_activities"]

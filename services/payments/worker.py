"""What payments' Temporal worker runs on the `payments` task queue."""

from services.payments.activities import build_activities
from services.payments.workflows import WORKFLOWS

__all__ = ["WORKFLOWS", "build_activities"]

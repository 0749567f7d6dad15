"""What intake's Temporal worker runs on the `intake` task queue."""

from services.intake.activities import build_activities
from services.intake.workflows import WORKFLOWS

__all__ = ["WORKFLOWS", "build_activities"]

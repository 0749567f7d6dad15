"""Intake's activities. The lifecycle itself needs none yet: intake's work happens before the
workflow starts (validation, storage, the outbox)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.runtime import ServiceContext


def build_activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    return []

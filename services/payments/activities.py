"""Payments' activities: none yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.runtime import ServiceContext


def build_activities(ctx: ServiceContext) -> Sequence[Callable[..., Any]]:
    return []

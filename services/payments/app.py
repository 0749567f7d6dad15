"""Payments's Kafka side: no subscriptions yet."""

from __future__ import annotations

from shared.runtime import ServiceContext


def register_subscribers(ctx: ServiceContext) -> None:
    return None

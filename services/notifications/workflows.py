"""Notifications' workflows: none yet — sending is driven by Kafka events, not Temporal."""

WORKFLOWS: list[type] = []

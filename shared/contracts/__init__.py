"""Pydantic models that cross a service boundary (HTTP bodies and Kafka payloads)."""

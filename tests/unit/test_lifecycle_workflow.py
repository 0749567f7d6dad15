"""The lifecycle workflow on Temporal's time-skipping test server: started as intake starts it,
it runs the review as its child on the review service's queue, mirrors the review's progress
into the search attributes operators filter by, and hands an approved grant on to the grant
stage. (Review's own behaviour: tests/unit/test_review_workflow.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from services.intake.workflows import WORKFLOWS
from shared.contracts.review import (
    UPDATE_DECIDE,
    UPDATE_SUBMIT_REVIEW,
    Decide,
    ReviewInput,
    Scores,
    SubmitReview,
)
from shared.temporal import (
    SA_ADVISOR,
    SA_COUNTRY,
    SA_FUNDING_LINE,
    SA_FUNDING_TYPE,
    SA_NEXT_DEADLINE,
    SA_REQUESTED,
    SA_STATUS,
    TASK_QUEUE_INTAKE,
    TASK_QUEUE_REVIEW,
    lifecycle_workflow_id,
)
from tests.temporal_helpers import time_skipping
from tests.waiting import eventually
from tests.workflow_doubles import Application, Harness

pytestmark = pytest.mark.filterwarnings(
    # pydantic imports email_validator lazily, inside the workflow sandbox.
    r"ignore:Module (email_validator|idna)\S* was imported after initial workflow load"
)

SCORES = Scores(cooperation=4, relevance=4, feasibility=4, budget_realism=4, people_to_people=4)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await time_skipping()
    yield environment
    await environment.shutdown()


@pytest.fixture(scope="module")
async def running(env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    harness = await Harness.create(env)
    async with harness.workers():
        yield harness


@pytest.fixture
async def h(running: Harness) -> AsyncIterator[Harness]:
    yield running
    await running.clean_up()


@pytest.fixture
async def quiet() -> AsyncIterator[Harness]:
    """A server of its own, where no worker polls the review queue until the test says so."""
    environment = await time_skipping()
    harness = await Harness.create(environment)
    yield harness
    await environment.shutdown()


async def review_input(app: Application) -> ReviewInput:
    async for event in app.review.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [inp] = await app.client.data_converter.decode(list(payloads), [ReviewInput])
        assert isinstance(inp, ReviewInput)
        return inp
    raise AssertionError("the review has no history")


async def test_a_new_lifecycle_is_submitted_and_waits_for_the_review_service(
    quiet: Harness,
) -> None:
    h = quiet
    # Only intake's worker runs: the review child is started on review's queue and waits.
    async with Worker(h.env.client, task_queue=TASK_QUEUE_INTAKE, workflows=WORKFLOWS):
        app = await h.submit(await h.document("ko188-cultural-network.json"))
        assert app.lifecycle.id == lifecycle_workflow_id(app.id)
        assert await app.status() == "submitted"
        attributes = await app.search_attributes()
        assert attributes.get(SA_STATUS) == "submitted"
        assert attributes.get(SA_FUNDING_LINE) == "KOLARCTIC"
        assert attributes.get(SA_FUNDING_TYPE) == "project"
        assert attributes.get(SA_COUNTRY) == "SE"
        assert attributes.get(SA_REQUESTED) == float(app.document.budget.requested)

        review = await eventually(app.review.describe, 10, interval=0.05)
        assert review.parent_id == app.lifecycle.id
        assert review.task_queue == TASK_QUEUE_REVIEW
        inp = await review_input(app)
        assert inp.application_id == app.id
        assert inp.correlation_id == app.correlation_id
        assert inp.document == app.document

        # Once the review service's worker runs, the lifecycle follows the review.
        async with h.workers(intake=False):
            state = await app.reaches("in_review")
            attributes = await app.search_attributes()
            assert attributes.get(SA_STATUS) == "in_review"
            assert attributes.get(SA_ADVISOR) == state.advisor == "marina.ivanova"
            assert attributes.get(SA_NEXT_DEADLINE) == state.next_deadline


async def test_the_lifecycle_mirrors_the_review_and_hands_an_approval_on(h: Harness) -> None:
    app = await h.submit(await h.document("small-grant-head-of-section.json"))
    state = await app.reaches("in_review")
    assert isinstance((await app.search_attributes()).get(SA_NEXT_DEADLINE), datetime)

    action = SubmitReview(
        advisor=state.advisor or "", scores=SCORES, comment="Good.", recommendation="approve"
    )
    await app.update(UPDATE_SUBMIT_REVIEW, action)
    await app.reaches("awaiting_decision")
    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "awaiting_decision"
    assert attributes.get(SA_NEXT_DEADLINE) is None
    assert attributes.get(SA_ADVISOR) == state.advisor

    decision = Decide(decider="ingrid.solberg", role="head_of_section", outcome="approve")
    await app.update(UPDATE_DECIDE, decision)
    await app.reaches("approved")
    assert (await app.search_attributes()).get(SA_STATUS) == "approved"
    grant = await eventually(app.grant_input, 10, interval=0.05)
    assert grant.application_id == app.id
    assert grant.correlation_id == app.correlation_id
    assert grant.grant.amount == app.document.budget.requested
    assert grant.advisor == state.advisor
    assert grant.decided_year == (await h.env.get_current_time()).year


async def test_the_lifecycle_ends_with_a_rejection(h: Harness) -> None:
    app = await h.submit(await h.document("ru-school-exchange.json"))
    state = await app.reaches("in_review")
    action = SubmitReview(
        advisor=state.advisor or "", scores=SCORES, comment="Weak.", recommendation="reject"
    )
    await app.update(UPDATE_SUBMIT_REVIEW, action)
    decision = Decide(decider="erik.haugen", role="director", outcome="reject")
    await app.update(UPDATE_DECIDE, decision)

    result = await app.lifecycle.result()
    assert result.application_id == app.id and result.status == "rejected"
    attributes = await app.search_attributes()
    assert attributes.get(SA_STATUS) == "rejected"
    assert attributes.get(SA_NEXT_DEADLINE) is None
    assert await app.grant_input() is None

"""Replay: today's workflow code must make the same decisions, in the same order, as the code
that wrote the histories of workflows that may still be running in production. A change
that breaks that (a new activity, timer, signal or child, or one removed or moved) would
fail every running application's workflow the next time its worker replays it.

tests/fixtures/histories/<generation>/ holds the event histories of representative runs (one
file per workflow: `<scenario>.lifecycle.json` and `<scenario>.review.json`), recorded on the
time-skipping test server with the harness of tests/workflow_doubles.py. They are written
with the plain pydantic data converter, not the production one, so they can be read (and
diffed) without the encryption keys; the codec does not take part in determinism.

When this test fails after a change to services/intake/workflows.py or
services/review/workflows.py:

- If workflows started with the old code may still be running anywhere, the change must not
  change the old path: put the new behaviour behind `workflow.patched("<change-id>")` (and
  later `workflow.deprecate_patch`), keep the stored histories, and record new ones next to
  them so both the old and the new paths stay covered: a new generation folder, named in
  `CURRENT` below. Generations so far: `scheduled-steps` (every step a scheduled activity,
  every progress signal awaited) and `local-steps` (patch `local-steps-and-unawaited-progress`,
  shared/workflow_steps.py).
- If the change is intentional and no old workflow can be running (nothing deployed yet),
  regenerate the current generation's histories and commit them:

      .venv/bin/python -m tests.unit.test_workflow_replay --record

The last test proves this test has teeth: a deliberately changed copy of each workflow
(one more activity; one child fewer) must fail to replay every stored history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from services.intake.workflows import ApplicationLifecycle
from services.review.workflows import ApplicationReview
from shared.config import REPO_ROOT
from shared.contracts.lifecycle import LIFECYCLE_WORKFLOW, LifecycleInput, LifecycleState
from shared.contracts.review import (
    REVIEW_WORKFLOW,
    UPDATE_ANSWER_INFORMATION,
    UPDATE_DECIDE,
    UPDATE_REQUEST_INFORMATION,
    UPDATE_SUBMIT_REVIEW,
    AnswerInformation,
    ReviewInput,
    ReviewOutcome,
)
from shared.temporal import SEARCH_ATTRIBUTES
from tests import temporal_helpers
from tests.waiting import eventually
from tests.workflow_doubles import Application, Harness, ask, decide, review

pytestmark = pytest.mark.filterwarnings(
    # pydantic imports email_validator lazily, inside the workflow sandbox.
    r"ignore:Module (email_validator|idna)\S* was imported after initial workflow load"
)

HISTORIES = REPO_ROOT / "tests" / "fixtures" / "histories"
# Where --record writes: the histories of today's code. Older generations stay as they are.
CURRENT = HISTORIES / "local-steps"
WORKFLOWS: list[type] = [ApplicationLifecycle, ApplicationReview]


# --- the recorded runs ------------------------------------------------------------------


async def ineligible(h: Harness) -> Application:
    app = await h.submit(await h.document("ineligible-over-share-and-cap.json"))
    await app.lifecycle.result()
    return app


async def reminded_asked_answered_approved(h: Harness) -> Application:
    """Reminder, an information request answered in time, head of section approves."""
    app = await h.submit(await h.document("small-grant-head-of-section.json"))
    state = await app.reaches("in_review")
    assert state.next_deadline is not None
    await h.skip_past(state.next_deadline)
    await eventually(lambda: _has(h, app, "review.reminder"), 10)
    await app.update(UPDATE_REQUEST_INFORMATION, ask(state))
    await app.reaches("information_requested")
    await h.skip(timedelta(days=3))
    await app.update(UPDATE_ANSWER_INFORMATION, AnswerInformation(answer="Murmansk Youth Centre."))
    await app.reaches("in_review")
    await app.update(UPDATE_SUBMIT_REVIEW, review(state))
    await app.update(UPDATE_DECIDE, decide("head_of_section"))
    return app


async def escalated_budget_exhausted_reduced(h: Harness) -> Application:
    """Reminder and escalation, the director's approval refused for budget, then reduced."""
    h.ledger.limits["UD-PROJECT"] = Decimal("150000")
    app = await h.submit(await h.document("ru-school-exchange.json"))
    state = await app.reaches("in_review")
    await h.skip(timedelta(days=15))
    await eventually(lambda: _has(h, app, "review.escalated"), 10)
    await app.update(UPDATE_SUBMIT_REVIEW, review(state))
    refused = await app.update(UPDATE_DECIDE, decide("director"))
    assert refused.status == "awaiting_decision"
    await app.update(UPDATE_DECIDE, decide("director", amount="150000"))
    return app


async def board_approves_core_support(h: Harness) -> Application:
    app = await h.submit(await h.document("en-core-support.json"))
    state = await app.reaches("in_review")
    await app.update(UPDATE_SUBMIT_REVIEW, review(state))
    meeting = await eventually(lambda: _board_meeting(app), 10)
    await h.skip_past(meeting)
    await eventually(lambda: _board_open(app), 10)
    await app.update(UPDATE_DECIDE, decide("board"))
    return app


async def unanswered_and_withdrawn(h: Harness) -> Application:
    app = await h.submit(await h.document("nb-ungdom-fotball.json"))
    state = await app.reaches("in_review")
    await app.update(UPDATE_REQUEST_INFORMATION, ask(state))
    answer_by = (await app.reaches("information_requested")).next_deadline
    assert answer_by is not None
    await h.skip_past(answer_by)
    await app.lifecycle.result()
    return app


async def rejected(h: Harness) -> Application:
    app = await h.submit(await h.document("ko188-cultural-network.json"))
    state = await app.reaches("in_review")
    await app.update(UPDATE_SUBMIT_REVIEW, review(state, recommendation="reject"))
    await app.update(UPDATE_DECIDE, decide("director", outcome="reject"))
    await app.lifecycle.result()
    return app


SCENARIOS: dict[str, Callable[[Harness], Awaitable[Application]]] = {
    "ineligible": ineligible,
    "reminded-asked-answered-approved": reminded_asked_answered_approved,
    "escalated-budget-exhausted-reduced": escalated_budget_exhausted_reduced,
    "board-approves-core-support": board_approves_core_support,
    "unanswered-and-withdrawn": unanswered_and_withdrawn,
    "rejected": rejected,
}


async def _has(h: Harness, app: Application, event_type: str) -> bool:
    return event_type in h.events.types(app.id)


async def _board_meeting(app: Application) -> Any:
    state = await app.state()
    return state.next_deadline if state.board_meeting else None


async def _board_open(app: Application) -> bool:
    state = await app.state()
    return state.board_meeting is not None and state.next_deadline is None


async def record(directory: Path = CURRENT) -> list[Path]:
    """Run every scenario and write its two histories (plain JSON)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_helpers.test_server_path(),
        data_converter=pydantic_data_converter,
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                for name, kind in SEARCH_ATTRIBUTES.items()
            },
        )
    )
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.json"):
        stale.unlink()
    written: list[Path] = []
    try:
        harness = await Harness.create(env)
        async with harness.workers():
            for name, scenario in SCENARIOS.items():
                app = await scenario(harness)
                await app.review.result()  # the review is over in every scenario
                await harness.clean_up()  # and the lifecycle settled
                for kind, handle in (("lifecycle", app.lifecycle), ("review", app.review)):
                    history = await handle.fetch_history()
                    path = directory / f"{name}.{kind}.json"
                    # Indented, so a regenerated history reads as a diff in review.
                    path.write_text(
                        json.dumps(json.loads(history.to_json()), indent=1) + "\n",
                        encoding="utf-8",
                    )
                    written.append(path)
    finally:
        await env.shutdown()
    return written


# --- the tests --------------------------------------------------------------------------


def stored() -> list[Path]:
    return sorted(HISTORIES.glob("*/*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def workflow_type(history: WorkflowHistory) -> str:
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def test_the_stored_histories_cover_every_scenario() -> None:
    expected = {f"{s}.{kind}.json" for s in SCENARIOS for kind in ("lifecycle", "review")}
    generations = sorted({path.parent for path in stored()})
    assert CURRENT in generations, "record: python -m tests.unit.test_workflow_replay --record"
    for generation in generations:
        names = {path.name for path in generation.glob("*.json")}
        assert names == expected, f"{generation.name}: record it again (--record) or keep it"
    for path in stored():
        kind = path.stem.rsplit(".", 1)[1]
        assert workflow_type(load(path)) == (
            LIFECYCLE_WORKFLOW if kind == "lifecycle" else REVIEW_WORKFLOW
        )


@pytest.mark.parametrize("path", stored(), ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_a_stored_history_replays_with_todays_code(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


# Deliberately changed copies, registered under the production names. (Not sandboxed: the
# sandbox would re-import this test module for every run.)


@workflow.defn(name=REVIEW_WORKFLOW, sandboxed=False)
class ReviewPublishingOneEventMore(ApplicationReview):
    """Publishes one more event before screening: one activity more."""

    @workflow.run
    async def run(self, inp: ReviewInput) -> ReviewOutcome:
        self._inp = inp
        await self._publish("review.started", inp)
        return await super().run(inp)


@workflow.defn(name=LIFECYCLE_WORKFLOW, sandboxed=False)
class LifecycleWithoutReview(ApplicationLifecycle):
    """Skips the review child altogether."""

    @workflow.run
    async def run(self, inp: LifecycleInput) -> LifecycleState:
        return LifecycleState(application_id=inp.application_id, status=self.status())


@pytest.mark.parametrize(
    ("changed", "kind"),
    [(ReviewPublishingOneEventMore, "review"), (LifecycleWithoutReview, "lifecycle")],
    ids=["review-with-one-activity-more", "lifecycle-without-its-child"],
)
async def test_a_changed_workflow_fails_to_replay_every_history(changed: type, kind: str) -> None:
    histories = [load(p) for p in stored() if p.stem.endswith(f".{kind}")]
    assert histories
    replayer = Replayer(workflows=[changed], data_converter=pydantic_data_converter)
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        # Scheduled steps are matched by command: a nondeterminism error. Local steps are
        # matched by their order only, so an extra one is handed a neighbour's recorded
        # result and the run fails on it instead; either way the replay fails.
        assert result.replay_failure is not None, f"{history.workflow_id} replayed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--record", action="store_true", help="rewrite the stored histories")
    if not parser.parse_args().record:
        parser.error(f"nothing to do: pass --record to rewrite {CURRENT.relative_to(REPO_ROOT)}/")
    for path in asyncio.run(record()):
        print(path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()

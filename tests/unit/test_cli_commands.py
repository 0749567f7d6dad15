"""The `grants` commands without a stack: the services are an httpx mock transport that
records what the CLI sent (paths, bodies, tokens) and answers like the real APIs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from grants_cli.bank import answer_envelope
from grants_cli.client import Auth, CliSettings
from grants_cli.main import app
from grants_cli.parsing import Identity
from shared.auth import verify_token
from shared.config import Settings
from tests.conftest import SAMPLES

runner = CliRunner()
APP_ID = "a0edea8f-1356-4a89-9c02-08cd8b97b4ae"

Handler = Callable[[httpx.Request], httpx.Response]


class Services:
    """The requests the CLI made, and the answers it gets (by method and path)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], Handler] = {}

    def on(self, method: str, path: str, status: int, body: Any) -> None:
        self.answers[(method, path)] = lambda _: httpx.Response(status, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"detail": "not found"})
        return answer(request)

    def principal(self, index: int = -1) -> tuple[str, str]:
        token = self.requests[index].headers["authorization"].removeprefix("Bearer ")
        who = verify_token(Settings(), token)
        return who.role, who.sub

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    fake = Services()
    real_client = httpx.Client

    def mocked(**kwargs: Any) -> httpx.Client:
        return real_client(transport=httpx.MockTransport(fake.handle), **kwargs)

    monkeypatch.setattr(httpx, "Client", mocked)
    monkeypatch.delenv("GRANTS_TOKEN", raising=False)
    monkeypatch.setenv("GRANTS_CLI_USER", "ops.tester")
    yield fake


def review_state(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "application_id": APP_ID,
        "status": "in_review",
        "funding_line": "UD-PROJECT",
        "advisor": "kari.nordmann",
        "decider_role": "head_of_section",
        "next_deadline": None,
        "board_meeting": None,
        "requested": {"amount": "75000.00", "currency": "NOK"},
        "recommended": None,
        "ineligible_reasons": [],
    }
    return state | changes


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("submit", "status", "timeline", "list", "review", "request-info", "decide"):
        assert command in result.output
    for command in ("bank", "payments", "ledger", "tail"):
        assert command in result.output


def test_review_goes_as_the_assigned_advisor(services: Services) -> None:
    services.on("GET", f"/applications/{APP_ID}", 200, review_state())
    services.on(
        "POST",
        f"/applications/{APP_ID}/review",
        200,
        {"status": "awaiting_decision", "message": "review recorded; head_of_section decides"},
    )
    result = runner.invoke(
        app,
        [
            *("review", APP_ID, "--scores", "5,4,4,3,5", "--comment", "Good."),
            *("--recommend", "approve", "--amount", "60000"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "awaiting_decision" in result.stdout
    assert services.principal() == ("advisor", "kari.nordmann")
    assert services.body() == {
        "advisor": "kari.nordmann",
        "scores": {
            "cooperation": 5,
            "relevance": 4,
            "feasibility": 4,
            "budget_realism": 3,
            "people_to_people": 5,
        },
        "comment": "Good.",
        "recommendation": "approve",
        "recommended_amount": "60000",
    }
    # The assigned advisor was read as the operator.
    assert services.principal(0) == ("operator", "ops.tester")


def test_a_refusal_is_shown_in_red_with_exit_status_1(services: Services) -> None:
    services.on(
        "POST",
        f"/applications/{APP_ID}/decision",
        409,
        {"detail": "this application is decided by the head_of_section"},
    )
    result = runner.invoke(
        app, ["decide", APP_ID, "--role", "director", "--decider", "erik.haugen", "--approve"]
    )
    assert result.exit_code == 1
    assert "409" in result.stderr
    assert "this application is decided by the head_of_section" in result.stderr
    assert result.stdout == ""
    assert services.principal() == ("director", "erik.haugen")
    assert services.body()["outcome"] == "approve"


def test_decide_defaults_to_the_role_the_review_names(services: Services) -> None:
    services.on("GET", f"/applications/{APP_ID}", 200, review_state(status="awaiting_decision"))
    services.on(
        "POST",
        f"/applications/{APP_ID}/decision",
        200,
        {
            "status": "approved",
            "message": "approved by head_of_section",
            "amount": {"amount": "75000.00", "currency": "NOK"},
            "available": {"amount": "39000000.00", "currency": "NOK"},
        },
    )
    result = runner.invoke(app, ["decide", APP_ID, "--reject", "--comment", "No."])
    assert result.exit_code == 0, result.output
    assert services.body() == {
        "decider": "ingrid.solberg",
        "role": "head_of_section",
        "outcome": "reject",
        "comment": "No.",
    }
    assert services.principal() == ("head_of_section", "ingrid.solberg")


def test_as_overrides_the_actor(services: Services) -> None:
    services.on("GET", "/ledgers", 403, {"detail": "not allowed"})
    result = runner.invoke(app, ["--as", "applicant:981234765", "ledger"])
    assert result.exit_code == 1
    assert "403" in result.stderr and "applicant:981234765" in result.stderr
    result = runner.invoke(app, ["ledger", "--as", "finance:finance.tester", "--year", "2026"])
    assert services.principal() == ("finance", "finance.tester")
    assert services.requests[-1].url.params["year"] == "2026"


def test_submit_many_reports_each_and_fails_if_any_failed(
    services: Services, tmp_path: Path
) -> None:
    counter = iter(range(100))

    def submitted(request: httpx.Request) -> httpx.Response:
        document = json.loads(request.content)
        if document["funding_line"] == "NOPE":
            return httpx.Response(
                422, json={"detail": [{"loc": ["body", "funding_line"], "msg": "unknown"}]}
            )
        return httpx.Response(
            201,
            json={
                "application_id": str(uuid.UUID(int=next(counter))),
                "external_ref": document["external_ref"],
                "workflow_id": "w",
                "created": True,
            },
        )

    services.answers[("POST", "/applications")] = submitted
    sample = json.loads((SAMPLES / "small-grant-head-of-section.json").read_text())
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps(sample))
    (tmp_path / "c.json").write_text(json.dumps(sample | {"funding_line": "NOPE"}))
    (tmp_path / "d.json").write_text("{not json")

    result = runner.invoke(app, ["submit", "--fresh-ref", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("created" in line for line in lines)
    refs = {json.loads(r.content)["external_ref"] for r in services.requests}
    assert len(refs) == 3 and all(r.startswith("portal-2027-0080-") for r in refs)
    assert "c.json: intake answered 422: funding_line: unknown" in result.stderr
    assert "d.json: not a JSON document" in result.stderr
    assert "2 submitted (2 new, 0 existing), 2 failed" in result.stderr
    assert services.principal() == ("operator", "ops.tester")

    quiet = runner.invoke(app, ["submit", "-q", str(tmp_path / "a.json")])
    assert quiet.exit_code == 0
    assert quiet.stdout.strip() == str(uuid.UUID(int=2))


def test_bad_input_fails_before_any_request(services: Services) -> None:
    result = runner.invoke(
        app, ["review", APP_ID, "--scores", "9,9", "--comment", "x", "--recommend", "approve"]
    )
    assert result.exit_code == 1
    assert "--scores takes 5 scores" in result.stderr
    result = runner.invoke(app, ["status", "KO188"])
    assert result.exit_code == 1 and "not an application id" in result.stderr
    result = runner.invoke(app, ["list", "--status", "pending"])
    assert result.exit_code == 1 and "unknown status" in result.stderr
    result = runner.invoke(app, ["tail", "--topic", "grants.nothing"])
    assert result.exit_code == 1 and "unknown topic" in result.stderr
    assert services.requests == []


def test_connection_refused_says_to_start_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANTS_INTAKE_URL", "http://127.0.0.1:9")
    result = runner.invoke(app, ["status", APP_ID])
    assert result.exit_code == 1
    assert "cannot reach the intake service at http://127.0.0.1:9" in result.stderr
    assert "is the stack running? ./dev up" in result.stderr


def test_tokens_from_the_environment_or_minted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CliSettings()
    advisor = Identity(role="advisor", sub="kari.nordmann")
    minted = verify_token(settings, Auth(settings).token(advisor))
    assert (minted.role, minted.sub) == ("advisor", "kari.nordmann")

    real = CliSettings(token=SecretStr("real-token"))
    assert Auth(real).token(advisor) == "real-token"
    # --as wins over GRANTS_TOKEN: it asks for a local token explicitly.
    override = Identity(role="finance", sub="bank-erp")
    bank = Identity(role="finance", sub="bank-erp", sys="bank")
    as_bank = verify_token(settings, Auth(real, override).token(bank))
    assert (as_bank.role, as_bank.sys) == ("finance", "bank")


def test_service_urls_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANTS_PORT_REVIEW", "18002")
    monkeypatch.setenv("GRANTS_PAYMENTS_URL", "https://payments.example/")
    monkeypatch.setenv("GRANTS_HTTP_HOST", "0.0.0.0")
    settings = CliSettings()
    assert settings.service_url("review") == "http://127.0.0.1:18002"
    assert settings.service_url("payments") == "https://payments.example"


def test_bank_answers_follow_the_contract() -> None:
    envelope = answer_envelope("BG-0123456789AB-A1", 2, "rejected", "account closed")
    assert envelope.type == "bank.payment_answer" and envelope.source == "bank"
    assert envelope.payload == {
        "reference": "BG-0123456789AB-A1",
        "attempt": 2,
        "outcome": "rejected",
        "reason": "account closed",
    }
    assert "reason" not in answer_envelope("BG-0123456789AB-A1", 1, "confirmed", None).payload
    with pytest.raises(ValidationError):
        answer_envelope("bg 1", 1, "confirmed", None)

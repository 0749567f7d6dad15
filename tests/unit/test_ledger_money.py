"""The ledger's pure parts: exact minor units, the commit decision, views and contracts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.payments.ledger import Ledger, decide, to_minor
from shared.contracts.ledger import CommitBudgetRequest, CommitBudgetResult, ReleaseBudgetRequest
from shared.contracts.money import Money


def nok(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="NOK")


def ledger(budget: int = 100_000, committed: int = 0, released: int = 0) -> Ledger:
    return Ledger(
        funding_line="UD-PROJECT",
        year=2026,
        currency="NOK",
        budget_minor=budget,
        committed_minor=committed,
        disbursed_minor=0,
        released_minor=released,
    )


@pytest.mark.parametrize(
    ("amount", "minor"),
    [("0.01", 1), ("1", 100), ("150310.00", 15_031_000), ("1.500", 150), ("40000000", 4 * 10**9)],
)
def test_to_minor_is_exact(amount: str, minor: int) -> None:
    assert to_minor(nok(amount)) == minor


@pytest.mark.parametrize("amount", ["0.001", "10.005", "NaN", "Infinity"])
def test_to_minor_refuses_what_it_cannot_store_exactly(amount: str) -> None:
    with pytest.raises(ValueError):
        to_minor(nok(amount))


def test_available_counts_releases_back() -> None:
    book = ledger(budget=100_000, committed=80_000, released=30_000)
    assert book.outstanding_minor == 50_000
    assert book.available_minor == 50_000
    assert book.available == nok("500.00")


def test_decide() -> None:
    book = ledger(budget=100_000, committed=60_000)
    assert decide(book, nok("400.00")) == "commit"
    assert decide(book, nok("400.01")) == "budget_exhausted"
    assert decide(book, Money(amount=Decimal("1"), currency="EUR")) == "currency_mismatch"


def test_view_has_decimal_strings() -> None:
    view = ledger(budget=1_000_000, committed=123_456).view()
    assert view.model_dump(mode="json") == {
        "funding_line": "UD-PROJECT",
        "year": 2026,
        "currency": "NOK",
        "budget": "10000.00",
        "committed": "1234.56",
        "disbursed": "0.00",
        "released": "0.00",
        "available": "8765.44",
    }


def commit_request(**changes: Any) -> CommitBudgetRequest:
    fields: dict[str, Any] = {
        "application_id": uuid4(),
        "funding_line": "UD-PROJECT",
        "year": 2026,
        "amount": nok("100000.00"),
        "budget": nok("40000000.00"),
    }
    return CommitBudgetRequest(**(fields | changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"amount": nok("0")},
        {"amount": nok("-5.00")},
        {"amount": {"amount": "0.005", "currency": "NOK"}},
        {"budget": nok("-1.00")},
        {"budget": nok("1000000000000")},
        {"year": 1999},
        {"funding_line": "ud-project"},
        {"unexpected": True},
    ],
)
def test_commit_request_refuses_bad_input(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        commit_request(**changes)


def test_commit_request_accepts_a_zero_budget() -> None:
    assert commit_request(budget=nok("0")).budget.amount == 0


def test_contracts_round_trip_as_json() -> None:
    request = commit_request()
    assert CommitBudgetRequest.model_validate_json(request.model_dump_json()) == request
    result = CommitBudgetResult(
        application_id=request.application_id,
        funding_line="UD-PROJECT",
        year=2026,
        outcome="refused",
        reason="budget_exhausted",
        amount=nok("100000.00"),
        available=nok("99999.99"),
    )
    assert CommitBudgetResult.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError):
        ReleaseBudgetRequest(application_id=uuid4(), reason="  ")

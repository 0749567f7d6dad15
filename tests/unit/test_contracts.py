"""The application document: every sample is valid as it is; bad input is refused clearly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.contracts.application import ApplicationDocument
from shared.contracts.money import Money
from tests.conftest import load_sample, sample_names


@pytest.mark.parametrize("name", sample_names())
def test_every_sample_is_a_valid_application(name: str) -> None:
    doc = ApplicationDocument.model_validate(load_sample(name))
    assert doc.budget.requested <= doc.budget.total


def test_amounts_are_exact_decimals_with_their_currency() -> None:
    doc = ApplicationDocument.model_validate(load_sample("ko188-cultural-network.json"))
    assert doc.budget.requested == Decimal("150310.00")
    assert Money(amount=doc.budget.requested, currency="EUR").minor_units() == 15_031_000
    assert Money.from_minor(15_031_000, "EUR").amount == Decimal("150310.00")


def errors_at(data: dict[str, object]) -> set[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as info:
        ApplicationDocument.model_validate(data)
    return {tuple(e["loc"]) for e in info.value.errors()}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("applicant", "contact", "phone"), "004798765432"),
        (("applicant", "contact", "phone"), "+47 987 65 432"),
        (("applicant", "contact", "email"), "irina@"),
        (("applicant", "contact", "language"), "de"),
        (("applicant", "country"), "Norway"),
        (("budget", "currency"), "USD"),
        (("budget", "requested"), "12.345"),
        (("budget", "requested"), "-5"),
        (("budget", "total"), 1e400),
        (("funding_type",), "loan"),
        (("title",), "bad\x00title"),
        (("title",), ""),
    ],
)
def test_invalid_fields_are_refused_where_they_are(path: tuple[str, ...], value: object) -> None:
    data = load_sample("ru-school-exchange.json")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert path in errors_at(data)


def test_unknown_fields_are_refused_not_silently_dropped() -> None:
    data = load_sample("nb-ungdom-fotball.json")
    data["fundng_line"] = "UD-PROJECT"
    assert ("fundng_line",) in errors_at(data)


def test_requested_above_total_is_refused() -> None:
    data = load_sample("nb-ungdom-fotball.json")
    data["budget"]["requested"] = str(Decimal(data["budget"]["total"]) + 1)
    assert () in errors_at(data)


def test_first_name_is_the_only_personal_detail_for_sms() -> None:
    doc = ApplicationDocument.model_validate(load_sample("ru-school-exchange.json"))
    assert doc.applicant.contact.first_name == "Ирина"

"""The money rules after the decision: advance, installments, final payment or claim-back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.payments.settlement import add_months, advance, installments, settle
from shared.contracts.money import Money


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


KO188_GRANT = eur("150310.00")
KO188_BUDGET = eur("171645.00")


def test_ko188_advance_is_80_percent() -> None:
    assert advance(KO188_GRANT, Decimal("0.8")) == eur("120248.00")


def test_costs_below_budget_reduce_the_final_payment_in_proportion() -> None:
    s = settle(KO188_GRANT, eur("120248.00"), KO188_BUDGET, eur("140000.00"))
    # 150 310 x 140 000 / 171 645 = 122 598.38 (rounded down); minus the advance.
    assert s.eligible == eur("122598.38")
    assert s.final_payment == eur("2350.38")
    assert s.claim_back == eur("0.00")
    assert s.release == eur("27711.62")


def test_full_costs_pay_the_rest_of_the_grant_and_never_more() -> None:
    for actual in ("171645.00", "250000.00"):
        s = settle(KO188_GRANT, eur("120248.00"), KO188_BUDGET, eur(actual))
        assert s.eligible == KO188_GRANT
        assert s.final_payment == eur("30062.00")
        assert s.release == eur("0.00")


def test_an_advance_larger_than_the_costs_justify_is_claimed_back() -> None:
    s = settle(KO188_GRANT, eur("120248.00"), KO188_BUDGET, eur("100000.00"))
    assert s.eligible == eur("87570.27")
    assert s.final_payment == eur("0.00")
    assert s.claim_back == eur("32677.73")


def test_currencies_are_never_mixed() -> None:
    nok = Money(amount=Decimal("1000.00"), currency="NOK")
    with pytest.raises(ValueError, match="different currencies"):
        settle(KO188_GRANT, eur("120248.00"), KO188_BUDGET, nok)


def test_installments_add_up_to_the_grant_exactly() -> None:
    parts = installments(Money(amount=Decimal("1000000.00"), currency="NOK"), 3)
    assert [p.amount for p in parts] == [
        Decimal("333333.33"),
        Decimal("333333.33"),
        Decimal("333333.34"),
    ]
    assert sum(p.amount for p in parts) == Decimal("1000000.00")


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2027, 1, 1), 12, date(2028, 1, 1)),
        (date(2027, 1, 31), 1, date(2027, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2027, 11, 15), 3, date(2028, 2, 15)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected

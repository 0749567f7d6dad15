"""Pure budget-ledger helpers: exact minor units, the ledger's totals and their views."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.contracts.ledger import LedgerView
from shared.contracts.money import Currency, Money


def to_minor(money: Money) -> int:
    """Integer minor units, refusing what does not convert exactly (Money.minor_units rounds)."""
    if not money.amount.is_finite():
        raise ValueError(f"not a finite amount: {money.amount}")
    cents = money.amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{money.amount} {money.currency} has more than two decimal places")
    return int(cents)


def currency(code: str) -> Currency:
    """A stored currency code, checked (the DB's CHECK allows only these)."""
    if code == "NOK":
        return "NOK"
    if code == "EUR":
        return "EUR"
    raise ValueError(f"unknown currency {code!r}")


@dataclass(frozen=True)
class Ledger:
    """One funding line's budget for one year. `committed` and `released` are cumulative."""

    funding_line: str
    year: int
    currency: Currency
    budget_minor: int
    committed_minor: int
    disbursed_minor: int
    released_minor: int

    @property
    def outstanding_minor(self) -> int:
        """Committed and not given back."""
        return self.committed_minor - self.released_minor

    @property
    def available_minor(self) -> int:
        return self.budget_minor - self.outstanding_minor

    def money(self, minor: int) -> Money:
        return Money.from_minor(minor, self.currency)

    @property
    def available(self) -> Money:
        return self.money(self.available_minor)

    def view(self) -> LedgerView:
        def dec(minor: int) -> Decimal:
            return self.money(minor).amount

        return LedgerView(
            funding_line=self.funding_line,
            year=self.year,
            currency=self.currency,
            budget=dec(self.budget_minor),
            committed=dec(self.committed_minor),
            disbursed=dec(self.disbursed_minor),
            released=dec(self.released_minor),
            available=dec(self.available_minor),
        )


Decision = Literal["commit", "currency_mismatch", "budget_exhausted"]


def decide(ledger: Ledger, amount: Money) -> Decision:
    """Whether `amount` may be committed from `ledger` (call with the ledger row locked)."""
    if amount.currency != ledger.currency:
        return "currency_mismatch"
    if to_minor(amount) > ledger.available_minor:
        return "budget_exhausted"
    return "commit"

"""The money rules after the decision, as pure functions: the advance, core-support
installments, and the settlement of an approved final report."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import ROUND_DOWN, Decimal

from shared.contracts.grant import Settlement
from shared.contracts.money import CENT, Money


def _floor(amount: Decimal) -> Decimal:
    # Computed shares round down to the cent: the funder never pays a fraction too much.
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def advance(grant: Money, share: Decimal) -> Money:
    return Money(amount=_floor(grant.amount * share), currency=grant.currency)


def installments(grant: Money, years: int) -> list[Money]:
    """Equal yearly installments; the last one takes the cents the division leaves."""
    each = _floor(grant.amount / years)
    amounts = [each] * (years - 1) + [grant.amount - each * (years - 1)]
    return [Money(amount=a, currency=grant.currency) for a in amounts]


def settle(grant: Money, advance_paid: Money, approved_total: Money, actual: Money) -> Settlement:
    """Final payment = grant - advance, reduced in proportion when the actual costs are below
    the approved budget, never above the grant; a negative result is a claim-back instead."""
    currencies = {grant.currency, advance_paid.currency, approved_total.currency, actual.currency}
    if len(currencies) != 1:
        raise ValueError(f"amounts in different currencies: {sorted(currencies)}")
    if actual.amount >= approved_total.amount:
        eligible = grant.amount
    else:
        eligible = min(grant.amount, _floor(grant.amount * actual.amount / approved_total.amount))
    balance = eligible - advance_paid.amount

    def money(amount: Decimal) -> Money:
        return Money(amount=amount, currency=grant.currency)

    return Settlement(
        eligible=money(eligible),
        advance=advance_paid,
        final_payment=money(max(balance, Decimal(0))),
        claim_back=money(max(-balance, Decimal(0))),
        release=money(grant.amount - eligible),
    )


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))

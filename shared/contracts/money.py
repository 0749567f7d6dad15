"""Exact money: a Decimal amount with its currency, never a float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Currency = Literal["NOK", "EUR"]

# Two decimal places, positive, at most a billion: amounts in the funder's currencies.
Amount = Annotated[
    Decimal,
    Field(gt=Decimal(0), lt=Decimal(1_000_000_000), max_digits=12, decimal_places=2),
]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: Currency

    def minor_units(self) -> int:
        """Integer minor units (øre, cents): how amounts are stored and summed."""
        return int((self.amount * 100).to_integral_exact())

    @classmethod
    def from_minor(cls, minor: int, currency: Currency) -> Money:
        return cls(amount=(Decimal(minor) / 100).quantize(Decimal("0.01")), currency=currency)

"""Exact money: a Decimal amount with its currency, never a float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Currency = Literal["NOK", "EUR"]
CENT = Decimal("0.01")

# Two decimal places, positive, at most a billion: amounts in the funder's currencies.
Amount = Annotated[
    Decimal,
    Field(gt=Decimal(0), lt=Decimal(1_000_000_000), max_digits=12, decimal_places=2),
]


class Money(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: Currency

    @field_validator("amount")
    @classmethod
    def _two_decimals(cls, value: Decimal) -> Decimal:
        # One written form per amount ("60000.00"), and no fractions of an øre or a cent.
        exact = value.quantize(CENT)
        if exact != value:
            raise ValueError("money has at most two decimals")
        return exact

    def minor_units(self) -> int:
        """Integer minor units (øre, cents): how amounts are stored and summed."""
        return int((self.amount * 100).to_integral_exact())

    @classmethod
    def from_minor(cls, minor: int, currency: Currency) -> Money:
        return cls(amount=(Decimal(minor) / 100).quantize(CENT), currency=currency)

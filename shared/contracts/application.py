"""The application document: the body of `POST /applications` and the payload other systems
publish on the inbound applications topic. Structural validation only; the funder's
eligibility rules are the review service's screening."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.contracts.money import Amount, Currency

Language = Literal["nb", "en", "ru"]
FundingType = Literal["project", "core"]

# NUL bytes are refused everywhere: Postgres text cannot hold them.
_NO_NUL = r"^[^\x00]*$"
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=_NO_NUL)
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=10_000, pattern=_NO_NUL)
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# E.164: a plus, a non-zero country digit, at most 15 digits in all.
E164Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9-]{1,39}$")]


class _Strict(BaseModel):
    # Unknown fields are refused so a producer's typo is an error, not silently lost data.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Contact(_Strict):
    name: ShortText
    email: EmailStr
    phone: E164Phone
    language: Language
    sms_opt_out: bool = False

    @property
    def first_name(self) -> str:
        return self.name.split()[0]


class Applicant(_Strict):
    name: ShortText
    country: CountryCode
    org_number: ShortText
    has_annual_accounts: bool = False
    contact: Contact


class Partner(_Strict):
    name: ShortText
    country: CountryCode
    role: Literal["lead", "partner"] = "partner"


class Period(_Strict):
    start: date
    end: date


class Budget(_Strict):
    currency: Currency
    total: Amount
    requested: Amount


class ApplicationDocument(_Strict):
    external_ref: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_NO_NUL)
    ]
    funding_line: Code
    funding_type: FundingType
    title: ShortText
    category: ShortText
    target_group: ShortText
    applicant: Applicant
    partners: list[Partner] = Field(default_factory=list, max_length=50)
    objective: LongText
    cooperation: LongText
    activities: list[ShortText] = Field(default_factory=list, max_length=50)
    core_years: int | None = Field(default=None, ge=1, le=10)
    period: Period
    budget: Budget

    @model_validator(mode="after")
    def _requested_within_total(self) -> Self:
        # Structural sanity only; the funding line's share limits are screening's business.
        if self.budget.requested > self.budget.total:
            raise ValueError("budget.requested cannot exceed budget.total")
        return self

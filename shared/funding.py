"""The funder's configuration: funding lines, deadlines, board meetings and the advisor roster.

Read from a TOML file that operators edit (`config/funding.toml`, or the file named by the
`GRANTS_FUNDING_CONFIG` environment variable) and checked here, so a mistake stops start-up
with a message naming the file, the field and the problem instead of surfacing later as a
wrong decision. Every number of the domain brief lives in that file, none in code.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.config import REPO_ROOT
from shared.contracts.application import Code, CountryCode, FundingType
from shared.contracts.money import Currency

ENV_VAR = "GRANTS_FUNDING_CONFIG"
DEFAULT_PATH = REPO_ROOT / "config" / "funding.toml"

Decider = Literal["head_of_section", "director", "board"]

# How many `extends` hops are followed before assuming a cycle.
_MAX_EXTENDS = 5


class FundingConfigError(ValueError):
    """The configuration file is missing or invalid. One line per problem:
    `<file>: <field>: <problem>`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# --- value parsers: one clear format each, refused otherwise -------------------------------

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: object) -> timedelta:
    """An ISO-8601 duration with weeks, days, hours, minutes, seconds ("P10D", "PT5S").

    Years and months are refused because their length varies; bare numbers are refused so
    nobody has to guess whether 10 means seconds or days.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f'must be an ISO-8601 duration string such as "P10D" or "PT5S", got {value!r}'
        )
    text = value.strip().upper()
    match = _DURATION.fullmatch(text)
    if match is None or text.endswith("T"):
        raise ValueError(
            f'{value!r} is not an ISO-8601 duration such as "P10D" or "PT5S" '
            "(days, hours, minutes and seconds only)"
        )
    parts = {k: float(v) if k == "seconds" else int(v) for k, v in match.groupdict().items() if v}
    if not parts:
        raise ValueError(f'{value!r} is not an ISO-8601 duration such as "P10D" or "PT5S"')
    result = timedelta(**parts)
    if result <= timedelta(0):
        raise ValueError(f"{value!r}: must be longer than zero")
    return result


def _parse_money(value: object) -> Decimal:
    # TOML floats are binary: "0.1" would not be exact, so money must be a string or integer.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError('write money as a string or a whole number, not a float, e.g. "40000000"')
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not an amount") from None
    else:
        raise ValueError(f"{value!r} is not an amount")
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{value!r}: must be a positive amount")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise ValueError(f"{value!r}: at most two decimal places")
    return amount


def _parse_share(value: object) -> Decimal:
    # A share is a ratio, not money; a TOML float is taken by its written digits (str(0.5)).
    if isinstance(value, bool):
        raise ValueError("must be between 0 and 1")
    try:
        share = Decimal(str(value).strip()) if isinstance(value, int | float | str) else None
    except InvalidOperation:
        share = None
    if share is None or not share.is_finite():
        raise ValueError(f'{value!r} is not a number; write a fraction such as "0.5"')
    if not Decimal(0) <= share <= Decimal(1):
        raise ValueError("must be between 0 and 1")
    return share


Amount = Annotated[Decimal, BeforeValidator(_parse_money)]
Share = Annotated[Decimal, BeforeValidator(_parse_share)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
UserId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,39}$")]


class _Config(BaseModel):
    # Unknown keys are refused: a misspelt setting would otherwise be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- funding lines -------------------------------------------------------------------------


class CrossBorderRule(_Config):
    """Screening rule 1, as data."""

    # Applicant country -> countries a partner must come from. An applicant from a country
    # not listed here cannot apply to the line.
    partner_countries: dict[CountryCode, list[CountryCode]]
    # Each group must be hit by the applicant's or a partner's country (KOLARCTIC: RU and a
    # Nordic country).
    required_groups: list[list[CountryCode]] = Field(default_factory=list)
    # Exactly one lead partner: the applicant, or the single partner marked role "lead".
    require_lead_partner: bool = False

    @field_validator("partner_countries")
    @classmethod
    def _no_empty_partner_sets(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value:
            raise ValueError("must list at least one applicant country")
        for country, partners in value.items():
            if not partners:
                raise ValueError(f"{country}: must list at least one partner country")
        return value

    @field_validator("required_groups")
    @classmethod
    def _no_empty_groups(cls, value: list[list[str]]) -> list[list[str]]:
        for i, group in enumerate(value):
            if not group:
                raise ValueError(f"group {i}: must list at least one country")
        return value


class LineDefaults(_Config):
    """Values every line inherits unless it sets its own; also what screening applies to an
    application naming an unknown line, so the applicant still hears every other problem."""

    min_cooperation_chars: int = Field(default=200, ge=0)
    max_period_months: int = Field(default=36, ge=1)
    cross_border: CrossBorderRule = CrossBorderRule(partner_countries={"NO": ["RU"]})


class CoreYears(_Config):
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not be greater than max ({self.max})")
        return self


_YEAR_KEY = re.compile(r"^\d{4}$")


class FundingLine(_Config):
    code: Code
    owner: str = Field(min_length=1)
    funding_type: FundingType
    currency: Currency
    # "default" plus optional per-year overrides keyed by the year ("2027").
    annual_budget: dict[str, Amount]
    max_per_grant: Amount
    # Core support is capped per year of the grant rather than per grant.
    max_per_grant_is_annual: bool = False
    max_share: Share
    decision_threshold: Amount
    min_cooperation_chars: int = Field(ge=0)
    max_period_months: int = Field(ge=1)
    cross_border: CrossBorderRule
    # Extra rules (screening rule 5); unset means the rule does not apply to the line.
    youth_target_groups: list[str] | None = None
    culture_categories: list[str] | None = None
    requires_annual_accounts: bool = False
    core_years: CoreYears | None = None
    # The payment plan: the share of a project grant paid in advance on acceptance; the rest
    # follows the approved final report. Core support pays one installment a year instead.
    advance_share: Share = Decimal("0.8")

    @field_validator("annual_budget")
    @classmethod
    def _budget_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        if "default" not in value:
            raise ValueError('needs a "default" amount')
        for key in value:
            if key != "default" and not _YEAR_KEY.fullmatch(key):
                raise ValueError(f'{key!r}: keys are "default" or a year such as "2027"')
        return value

    @field_validator("youth_target_groups", "culture_categories")
    @classmethod
    def _non_empty_vocabulary(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not any(v.strip() for v in value):
            raise ValueError("must list at least one value (or be left out)")
        return value

    @model_validator(mode="after")
    def _core_settings_match_type(self) -> Self:
        if self.funding_type == "core" and self.core_years is None:
            raise ValueError("core_years: a core-support line needs core_years = { min, max }")
        if self.funding_type == "project" and self.core_years is not None:
            raise ValueError("core_years: only core-support lines have core_years")
        return self

    def budget_for(self, year: int) -> Decimal:
        """The line's budget for a calendar year: its override if set, else the default."""
        return self.annual_budget.get(str(year), self.annual_budget["default"])

    def decider_for(self, amount: Decimal) -> Decider:
        """Who decides a grant of `amount` (in the line's currency) from this line."""
        if self.funding_type == "core":
            return "board"
        return "head_of_section" if amount <= self.decision_threshold else "director"


# --- deadlines, board, roster --------------------------------------------------------------


class Deadlines(_Config):
    review_reminder: Duration
    review_escalation: Duration
    information_answer: Duration
    agreement_acceptance: Duration
    agreement_reminder: Duration
    payment_confirmation_alert: Duration
    # After the project's end date.
    final_report_due: Duration
    # Before the due date.
    report_reminder_before: Duration
    # After the due date.
    report_overdue_notice: Duration
    report_escalation: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        # A reminder after the deadline it reminds of would never be sent in a useful order.
        pairs = [
            ("review_reminder", "review_escalation"),
            ("agreement_reminder", "agreement_acceptance"),
            ("report_reminder_before", "final_report_due"),
            ("report_overdue_notice", "report_escalation"),
        ]
        problems = [
            f"{early}: must be shorter than {late}"
            for early, late in pairs
            if getattr(self, early) >= getattr(self, late)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self


class Board(_Config):
    meeting_dates: list[date]
    agenda_cutoff: Duration = timedelta(days=7)
    # Tests only: the board "meets" this long after a case is ready; meeting_dates ignored.
    meeting_interval: Duration | None = None

    @field_validator("meeting_dates")
    @classmethod
    def _sorted_unique(cls, value: list[date]) -> list[date]:
        return sorted(set(value))

    def next_meeting(self, ready_on: date) -> date | None:
        """The first meeting a case ready on `ready_on` can go to; None when no meeting
        is scheduled late enough (operators must add dates)."""
        for meeting in self.meeting_dates:
            if ready_on + self.agenda_cutoff <= meeting:
                return meeting
        return None


class Advisor(_Config):
    id: UserId
    name: str = Field(min_length=1)
    lines: list[str] = Field(min_length=1)
    # Open cases the advisor can hold; None means no limit.
    max_open: int | None = Field(default=None, ge=1)


class Roster(_Config):
    head_of_section: UserId
    director: UserId
    advisors: list[Advisor] = Field(min_length=1)


# --- the whole file ------------------------------------------------------------------------

# Keys a line inherits from [defaults] when it does not set them.
_INHERITED = ("min_cooperation_chars", "max_period_months", "cross_border")


class FundingConfig(_Config):
    defaults: LineDefaults = LineDefaults()
    lines: dict[Code, FundingLine] = Field(min_length=1)
    deadlines: Deadlines
    board: Board
    roster: Roster

    @model_validator(mode="before")
    @classmethod
    def _fill_lines(cls, data: Any) -> Any:
        # The table key is the line's code, and [defaults] fills what a line leaves out;
        # done on a copy so the caller's dict is untouched.
        if not isinstance(data, dict) or not isinstance(data.get("lines"), dict):
            return data
        defaults = data.get("defaults")
        defaults = defaults if isinstance(defaults, dict) else {}
        lines: dict[str, Any] = {}
        for code, line in data["lines"].items():
            if isinstance(line, dict):
                line = {"code": code, **line}
                for key in _INHERITED:
                    if key not in line:
                        line[key] = defaults.get(key, LineDefaults.model_fields[key].default)
            lines[code] = line
        return {**data, "lines": lines}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        for code, line in self.lines.items():
            if line.code != code:
                problems.append(f"lines.{code}.code: {line.code!r} differs from the table key")
        seen: set[str] = set()
        for i, advisor in enumerate(self.roster.advisors):
            if advisor.id in seen:
                problems.append(f"roster.advisors[{i}].id: {advisor.id!r} appears twice")
            seen.add(advisor.id)
            for code in advisor.lines:
                if code not in self.lines:
                    problems.append(
                        f"roster.advisors[{i}].lines: unknown funding line {code!r} "
                        f"(configured: {', '.join(self.lines)})"
                    )
        # Every eligible application must get an advisor.
        for code in self.lines:
            if not self.advisors_for(code):
                problems.append(f"lines.{code}: no advisor in roster.advisors covers this line")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def line(self, code: str) -> FundingLine:
        try:
            return self.lines[code]
        except KeyError:
            raise KeyError(
                f"unknown funding line {code!r}; configured: {', '.join(self.lines)}"
            ) from None

    def advisors_for(self, code: str) -> list[Advisor]:
        return [a for a in self.roster.advisors if code in a.lines]


# --- loading -------------------------------------------------------------------------------


def default_config_path() -> Path:
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env) if env else DEFAULT_PATH


def _display(path: Path) -> str:
    # Paths inside the repo are shown as an operator would type them.
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read(path: Path, depth: int = 0) -> dict[str, Any]:
    shown = _display(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise FundingConfigError([f"{shown}: cannot read: {e.strerror or e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise FundingConfigError([f"{shown}: not valid TOML: {e}"]) from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise FundingConfigError([f"{shown}: extends: must be a file path string"])
    if depth >= _MAX_EXTENDS:
        raise FundingConfigError([f"{shown}: extends: chained too deep (a cycle?)"])
    return _deep_merge(_read(path.parent / base, depth + 1), raw)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_funding_config(path: Path | None = None) -> FundingConfig:
    """Read and check the funding configuration; raises FundingConfigError listing every
    problem as `<file>: <field>: <problem>`."""
    path = path or default_config_path()
    raw = _read(path)
    try:
        return FundingConfig.model_validate(raw)
    except ValidationError as e:
        shown = _display(path)
        problems: list[str] = []
        for error in e.errors():
            where = _location(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "missing"
            elif error["type"] == "extra_forbidden":
                message = "unknown setting"
            for line in message.splitlines():
                problems.append(f"{shown}: {where}: {line}" if where else f"{shown}: {line}")
        raise FundingConfigError(problems) from None


@lru_cache(maxsize=1)
def get_funding_config() -> FundingConfig:
    """The configuration for this process, read once (services restart to pick up edits)."""
    return load_funding_config()

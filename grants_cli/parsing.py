"""Turning what the user typed into what the services take: identities (`--as ROLE:USER`),
scores, amounts, application ids, Temporal visibility queries and the files to submit.
Every function raises `BadInput` with a message meant for the user."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import get_args

from shared.auth import Role
from shared.contracts.lifecycle import ApplicationStatus

ROLES: tuple[str, ...] = get_args(Role)
STATUSES: tuple[str, ...] = get_args(ApplicationStatus)
# The order `--scores 5,4,4,3,5` is read in (the review form's order).
SCORE_NAMES: tuple[str, ...] = (
    "cooperation",
    "relevance",
    "feasibility",
    "budget_realism",
    "people_to_people",
)
# A value that may stand in a visibility query: search attributes are codes and user ids, so
# anything else (quotes, spaces, operators) is refused rather than escaped.
_QUERY_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_ORG_NUMBER = re.compile(r"[A-Za-z0-9-]{1,40}")
_EXTERNAL_REF_MAX = 100


class BadInput(ValueError):
    """What the user typed cannot be used; the message says why."""


@dataclass(frozen=True)
class Identity:
    """Who a minted (local development) token speaks for."""

    role: Role
    sub: str
    org: str | None = None
    sys: str | None = None

    def __str__(self) -> str:
        return f"{self.role}:{self.org if self.role == 'applicant' else self.sub}"


def parse_identity(text: str) -> Identity:
    """`ROLE:USER`, e.g. `advisor:kari.nordmann`; for applicants `applicant:ORGNR` (the token
    acts for that organisation)."""
    role, sep, user = text.strip().partition(":")
    if not sep or not user:
        raise BadInput(f"--as takes ROLE:USER (e.g. advisor:kari.nordmann), not {text!r}")
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role == "applicant":
        if not _ORG_NUMBER.fullmatch(user):
            raise BadInput(f"applicant:ORGNR takes an organisation number, not {user!r}")
        return Identity(role="applicant", sub=f"contact-{user}", org=user)
    if len(user) > 100:
        raise BadInput("the user id is longer than 100 characters")
    return Identity(role=role, sub=user)  # type: ignore[arg-type]  # checked against ROLES


def parse_scores(text: str) -> dict[str, int]:
    """Five scores 1-5, either in the form's order (`5,4,4,3,5`) or named
    (`cooperation=5,relevance=4,...`)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) != len(SCORE_NAMES):
        raise BadInput(
            f"--scores takes {len(SCORE_NAMES)} scores ({', '.join(SCORE_NAMES)}), got {len(parts)}"
        )
    scores: dict[str, int] = {}
    for index, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if sep:
            name = name.strip()
            if name not in SCORE_NAMES:
                raise BadInput(f"unknown score {name!r}; one of {', '.join(SCORE_NAMES)}")
        else:
            name, value = SCORE_NAMES[index], part
        if name in scores:
            raise BadInput(f"score {name!r} given twice")
        try:
            score = int(value.strip())
        except ValueError:
            raise BadInput(f"score {name!r} is not a whole number: {value.strip()!r}") from None
        if not 1 <= score <= 5:
            raise BadInput(f"score {name!r} must be 1 to 5, not {score}")
        scores[name] = score
    return scores


def parse_amount(text: str) -> str:
    """A positive amount with at most two decimals, as the decimal string the APIs take."""
    try:
        amount = Decimal(text.strip().replace(" ", "").replace("_", ""))
    except InvalidOperation:
        raise BadInput(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise BadInput(f"the amount must be positive, not {text!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise BadInput(f"the amount has at most two decimals, not {text!r}")
    return str(amount)


def parse_application_id(text: str) -> uuid.UUID:
    """An application id; its workflow id (`application-<id>`) is understood too."""
    raw = text.strip()
    for prefix in ("application-", "review-", "grant-"):
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadInput(f"not an application id: {text!r}") from None


def query_value(name: str, value: str) -> str:
    if not _QUERY_VALUE.fullmatch(value):
        raise BadInput(f"{name} {value!r} is not a code or user id")
    return value


def visibility_query(
    *,
    status: str | None = None,
    line: str | None = None,
    advisor: str | None = None,
    open_only: bool = False,
    extra: str | None = None,
) -> str:
    """The Temporal visibility query over the lifecycle workflows' search attributes."""
    clauses = ['WorkflowType = "ApplicationLifecycle"']
    if status is not None:
        if status not in STATUSES:
            raise BadInput(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        clauses.append(f'ApplicationStatus = "{status}"')
    if line is not None:
        clauses.append(f'FundingLine = "{query_value("funding line", line)}"')
    if advisor is not None:
        clauses.append(f'Advisor = "{query_value("advisor", advisor)}"')
    if open_only:
        clauses.append('ExecutionStatus = "Running"')
    if extra:
        clauses.append(f"({extra})")
    return " AND ".join(clauses)


def collect_files(paths: list[Path]) -> list[Path]:
    """The JSON files to submit: files as given, directories' `*.json` in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise BadInput(f"{path}: no *.json files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise BadInput(f"{path}: no such file or directory")
    return files


def fresh_ref(external_ref: object) -> str:
    """A unique external_ref derived from a sample's, so the same file can be submitted again
    as a new application."""
    base = str(external_ref) if isinstance(external_ref, str) and external_ref else "cli"
    suffix = f"-{uuid.uuid4().hex[:10]}"
    return base[: _EXTERNAL_REF_MAX - len(suffix)] + suffix

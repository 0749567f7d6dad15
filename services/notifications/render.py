"""Rendering a delivery from its template files (Jinja2), in the contact's language, with
amounts, currencies and dates formatted for the locale (Babel).

Layout: templates/<milestone>/<lang>.txt.j2 (subject and plain-text body), <lang>.html.j2
(HTML body, autoescaped) and, for milestones that also go by SMS, <lang>.sms.j2."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("nb", "en", "ru")
LOCALES = {"nb": "nb_NO", "en": "en_GB", "ru": "ru_RU"}


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


class RenderError(ValueError):
    """A delivery that cannot be rendered (missing template or fact): no retry fixes it."""


def _locale(ctx: Context) -> str:
    return LOCALES[ctx["lang"]]


@pass_context
def _money_filter(ctx: Context, value: dict[str, str] | None) -> str:
    if value is None:
        raise RenderError("an amount the template needs is missing")
    # Decimal from the stored string: exact, never through float.
    return format_currency(Decimal(value["amount"]), value["currency"], locale=_locale(ctx))


@pass_context
def _date_filter(ctx: Context, value: str | date | datetime) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        # A moment is shown as the calendar date where the funder is.
        value = value.astimezone(ZoneInfo(ctx["timezone"])).date()
    return format_date(value, format="long", locale=_locale(ctx))


def _one_line(text: str) -> str:
    # Line breaks and runs of spaces go; the locale's no-break spaces (in amounts) stay.
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


class Renderer:
    def __init__(self, directory: Path = TEMPLATE_DIR, timezone: str = "Europe/Oslo") -> None:
        self._timezone = timezone
        self._env = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._env.filters["money"] = _money_filter
        self._env.filters["date"] = _date_filter

    def _vars(
        self, language: str, recipient: dict[str, Any], context: dict[str, Any]
    ) -> dict[str, Any]:
        if language not in LOCALES:
            raise RenderError(f"unsupported language {language!r}")
        return {
            **context,
            "lang": language,
            "timezone": self._timezone,
            "first_name": recipient["first_name"],
            "ref": recipient["ref"],
            "title": recipient["title"],
        }

    def _render(self, name: str, variables: dict[str, Any]) -> str:
        try:
            return self._env.get_template(name).render(variables)
        except RenderError:
            raise
        except Exception as exc:  # a missing template or fact: report which, retrying won't help
            raise RenderError(f"{name}: {type(exc).__name__}: {exc}") from exc

    def email(
        self, template: str, language: str, recipient: dict[str, Any], context: dict[str, Any]
    ) -> EmailContent:
        """Subject, plain-text and HTML body. `recipient`: first_name, ref (the application's
        reference) and title; `context`: the facts stored on the delivery."""
        variables = self._vars(language, recipient, context)
        subject = _one_line(
            self._render(f"{template}/{language}.txt.j2", {**variables, "part": "subject"})
        )
        text = _tidy(self._render(f"{template}/{language}.txt.j2", {**variables, "part": "body"}))
        html = self._render(
            f"{template}/{language}.html.j2", {**variables, "subject": subject}
        ).strip()
        return EmailContent(subject=subject, text=text, html=html + "\n")

    def sms(
        self, template: str, language: str, recipient: dict[str, Any], context: dict[str, Any]
    ) -> str:
        variables = self._vars(language, recipient, context)
        body = self._render(f"{template}/{language}.sms.j2", variables)
        # One line, and the locale's no-break spaces as plain ones: they are outside the GSM-7
        # alphabet and would make every Norwegian or English SMS a 70-character UCS-2 one.
        return _one_line(body.replace("\xa0", " ").replace("\u202f", " "))

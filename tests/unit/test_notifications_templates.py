"""What the applicant reads: every milestone in every language, amounts and dates as the
locale writes them, SMS with the first name and nothing more of the person."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.notifications.milestones import TEMPLATES
from services.notifications.privacy import PersonalDataInSms, check_sms, redact
from services.notifications.render import LANGUAGES, Renderer, RenderError

NBSP = "\xa0"
EUR = {"amount": "150310.00", "currency": "EUR"}
NOK = {"amount": "60000.00", "currency": "NOK"}
REASONS: list[dict[str, Any]] = [
    {
        "code": "no_cross_border_partner",
        "text": {
            "nb": "Søknaden mangler en partner på den andre siden av grensen.",
            "en": "The application has no partner across the border.",
            "ru": "В заявке нет партнёра по другую сторону границы.",
        },
    },
    {
        "code": "amount_over_max",
        "text": {
            "nb": "Beløpet er for høyt.",
            "en": "The amount is too high.",
            "ru": "Сумма велика.",
        },
    },
]
CONTEXTS: dict[str, dict[str, Any]] = {
    "received": {"received_at": "2026-11-22T10:00:00+00:00", "requested": EUR},
    "ineligible": {"reasons": REASONS},
    "information_requested": {
        "question": "Which partner leads the exchange?",
        "answer_by": "2026-12-13T10:00:00+00:00",
    },
    "decision": {"outcome": "approved", "amount": EUR},
    "agreement_offered": {"grant": EUR, "accept_by": "2026-12-20T10:00:00+00:00"},
    "agreement_reminder": {"accept_by": "2026-12-20T10:00:00+00:00"},
    "payment_sent": {"amount": EUR, "kind": "advance", "reference": "ADV-000123"},
    "report_reminder": {"due": "2027-03-01", "year": None, "step": "before"},
    "report_overdue": {"due": "2027-03-01", "year": 2},
    "report_approved": {"year": None, "final_payment": NOK, "claim_back": None},
    "closed": {"paid": NOK, "claimed_back": None},
    "withdrawn": {"reason": "information_not_provided_in_time"},
    "lapsed": {},
}
PERSON = {
    "first_name": "Ирина",
    "full_name": "Ирина Петрова",
    "email": "irina.petrova@example.no",
    "phone": "+4798765432",
}
RECIPIENT = {"first_name": "Ирина", "ref": "RU-EXCHANGE-7", "title": "Школьный обмен"}
CYRILLIC = re.compile("[А-Яа-яЁё]")

renderer = Renderer()
ALL = [(t, lang) for t in TEMPLATES for lang in LANGUAGES]
SMS = [(t, lang) for t in TEMPLATES if "sms" in TEMPLATES[t] for lang in LANGUAGES]


def test_every_milestone_has_a_context_here() -> None:
    assert set(CONTEXTS) == set(TEMPLATES)


@pytest.mark.parametrize(("template", "lang"), ALL, ids=[f"{t}-{lang}" for t, lang in ALL])
def test_every_milestone_renders_an_email_in_every_language(template: str, lang: str) -> None:
    mail = renderer.email(template, lang, RECIPIENT, CONTEXTS[template])
    assert mail.subject and "\n" not in mail.subject
    for part in (mail.subject, mail.text, mail.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
    assert "Ирина" in mail.text and "Ирина" in mail.html
    assert "RU-EXCHANGE-7" in mail.text
    assert f'<html lang="{lang}">' in mail.html
    if lang == "ru":
        assert CYRILLIC.search(mail.subject) and CYRILLIC.search(mail.text.replace("Ирина", ""))
    else:
        assert not CYRILLIC.search(mail.subject.replace("Ирина", ""))


@pytest.mark.parametrize(("template", "lang"), SMS, ids=[f"{t}-{lang}" for t, lang in SMS])
def test_sms_bodies_carry_the_first_name_and_no_other_personal_data(
    template: str, lang: str
) -> None:
    body = renderer.sms(template, lang, RECIPIENT, CONTEXTS[template])
    assert body.startswith("Ирина") or body.startswith(("Hi Ирина", "Hei Ирина"))
    assert "Петрова" not in body
    assert PERSON["email"] not in body and "98765432" not in body
    assert "{{" not in body and "\n" not in body
    check_sms(body, **PERSON)  # the sender's own guard lets it through
    if lang == "ru":
        assert CYRILLIC.search(body.replace("Ирина", ""))


@pytest.mark.parametrize(
    ("lang", "amount", "date"),
    [
        ("nb", f"150{NBSP}310,00{NBSP}€", "22. november 2026"),
        ("en", "€150,310.00", "22 November 2026"),
        ("ru", f"150{NBSP}310,00{NBSP}€", "22 ноября 2026\u202fг."),
    ],
)
def test_amounts_and_dates_are_written_as_the_locale_writes_them(
    lang: str, amount: str, date: str
) -> None:
    mail = renderer.email("received", lang, RECIPIENT, CONTEXTS["received"])
    assert amount in mail.text and amount in mail.html
    assert date in mail.text


def test_norwegian_kroner_are_written_in_norwegian() -> None:
    mail = renderer.email("decision", "nb", RECIPIENT, {"outcome": "approved", "amount": NOK})
    assert f"60{NBSP}000,00{NBSP}kr" in mail.text
    # In an SMS with plain spaces: a no-break space is outside the GSM-7 alphabet.
    sms = renderer.sms("decision", "nb", RECIPIENT, {"outcome": "approved", "amount": NOK})
    assert "60 000,00 kr" in sms


def test_a_moment_is_shown_as_the_date_in_norway() -> None:
    # 23:30 UTC on 13 December is already 14 December in Oslo.
    context = {"question": "?", "answer_by": "2026-12-13T23:30:00+00:00"}
    mail = renderer.email("information_requested", "en", RECIPIENT, context)
    assert "14 December 2026" in mail.text


def test_the_ineligible_message_lists_every_reason_in_the_contacts_language() -> None:
    for lang in LANGUAGES:
        mail = renderer.email("ineligible", lang, RECIPIENT, CONTEXTS["ineligible"])
        for reason in REASONS:
            assert reason["text"][lang] in mail.text
            assert reason["text"][lang] in mail.html


def test_a_rejection_is_not_an_approval() -> None:
    rejected = {"outcome": "rejected", "amount": None}
    mail = renderer.email("decision", "nb", RECIPIENT, rejected)
    assert "innvilget" not in mail.subject and "Vedtak" in mail.subject
    assert "ikke" in renderer.sms("decision", "nb", RECIPIENT, rejected)


def test_html_bodies_escape_what_people_wrote() -> None:
    context = {"question": "<script>alert(1)</script> & more", "answer_by": "2026-12-13"}
    mail = renderer.email("information_requested", "en", RECIPIENT, context)
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<script>alert(1)</script> & more" in mail.text


def test_a_missing_fact_is_a_render_error_not_a_half_message() -> None:
    with pytest.raises(RenderError):
        renderer.email("decision", "en", RECIPIENT, {"outcome": "approved"})
    with pytest.raises(RenderError):
        renderer.email("no_such_milestone", "en", RECIPIENT, {})


@pytest.mark.parametrize(
    "body",
    [
        "Hi Ирина, write to irina.petrova@example.no",
        "Hi Ирина, call +47 987 65 432",
        "Hi Ирина Петрова, your grant",
        "Hi Ирина, or anyone at +4612345678",
    ],
)
def test_the_sms_guard_refuses_personal_data_beyond_the_first_name(body: str) -> None:
    with pytest.raises(PersonalDataInSms):
        check_sms(body, **PERSON)


def test_error_texts_are_redacted_before_they_are_stored_or_logged() -> None:
    text = "550 <irina.petrova@example.no>: no mailbox; To +4798765432 invalid; other a@b.example"
    cleaned = redact(text, PERSON["email"], PERSON["phone"])
    assert "irina" not in cleaned and "98765432" not in cleaned and "a@b.example" not in cleaned
    assert cleaned.startswith("550")

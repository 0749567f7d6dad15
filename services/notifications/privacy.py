"""Keeping personal data out of logs, error texts and SMS bodies."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+\.[A-Za-z]{2,}")
# Phone-like: an optional plus and seven or more digits, possibly spaced.
_PHONE = re.compile(r"\+?\d[\d \-]{6,}\d")
_INTERNATIONAL = re.compile(r"\+\d{7,}")


def redact(text: str, *known: str) -> str:
    """`text` with the given values (a contact's address, number) and anything that looks
    like an e-mail address or a phone number replaced: for error texts stored and logged."""
    for value in sorted((k for k in known if k), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = _EMAIL.sub("[e-mail]", text)
    return _PHONE.sub("[number]", text)


class PersonalDataInSms(ValueError):
    pass


def check_sms(body: str, *, first_name: str, full_name: str, email: str, phone: str) -> None:
    """Refuse an SMS body carrying personal data beyond the first name."""
    if (email and email.lower() in body.lower()) or _EMAIL.search(body):
        raise PersonalDataInSms("SMS body contains an e-mail address")
    # The contact's number however it is spaced (its last eight digits: the national
    # number), or any number written in international form.
    compact = re.sub(r"[\s\-().]", "", body)
    national = re.sub(r"\D", "", phone)[-8:]
    if (national and national in compact) or _INTERNATIONAL.search(compact):
        raise PersonalDataInSms("SMS body contains a phone number")
    words = set(re.findall(r"\w+", body.lower()))
    others = [p for p in re.findall(r"\w+", full_name.lower()) if p != first_name.lower()]
    if any(part in words for part in others if len(part) > 1):
        raise PersonalDataInSms("SMS body contains more of the name than the first name")

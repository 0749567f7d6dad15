"""Sending: retried with growing, jittered waits, given up with the reason after the limit,
e-mail with a deterministic Message-ID, SMS through the Twilio API (and the local gateway
speaking it)."""

from __future__ import annotations

import base64
import importlib.util
import itertools
import random
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from services.notifications.mail import SendError
from services.notifications.render import Renderer
from services.notifications.repository import Claimed
from services.notifications.sender import Sender, backoff_seconds
from services.notifications.sms import TwilioSms
from shared.config import REPO_ROOT, Settings

APP = UUID("0b3c2d1e-0000-4000-8000-000000000002")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_backoff_grows_with_every_attempt_until_the_cap() -> None:
    rng = random.Random(7)
    waits = [backoff_seconds(n, base=1.0, cap=60.0, rng=rng) for n in range(1, 9)]
    # Each wait lies in [ceiling/2, ceiling] of ceiling = 2^(n-1): strictly longer each time.
    assert all(a < b for a, b in itertools.pairwise(waits[:7]))
    assert 0.5 <= waits[0] <= 1.0 and 16 <= waits[5] <= 32
    assert all(w <= 60.0 for w in waits) and waits[7] >= 30.0


def test_backoff_has_jitter() -> None:
    rng = random.Random(11)
    same_attempt = {round(backoff_seconds(4, base=1.0, cap=600.0, rng=rng), 6) for _ in range(50)}
    assert len(same_attempt) > 40
    assert min(same_attempt) >= 4.0 and max(same_attempt) <= 8.0


# --- the sender with doubles for the database and the providers ------------------------------


class Store:
    def __init__(self, *claims: Claimed) -> None:
        self.queue = list(claims)
        self.outcomes: dict[int, tuple[Any, ...]] = {}

    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        assert lease_until > now
        taken, self.queue = self.queue[:limit], self.queue[limit:]
        return taken

    async def mark_sent(self, delivery_id: int, *, now: datetime, provider_id: str) -> None:
        self.outcomes[delivery_id] = ("sent", provider_id)

    async def mark_retry(
        self, delivery_id: int, *, now: datetime, next_attempt_at: datetime, error: str
    ) -> None:
        self.outcomes[delivery_id] = ("retry", next_attempt_at - now, error)

    async def mark_failed(self, delivery_id: int, *, now: datetime, error: str) -> None:
        self.outcomes[delivery_id] = ("failed", error)


class Mailer:
    def __init__(self, fail: SendError | None = None) -> None:
        self.fail = fail
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.fail:
            raise self.fail
        self.sent.append(message)


class Sms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, body: str) -> str:
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"


def claimed(delivery_id: int, channel: str = "email", attempts: int = 1, **extra: Any) -> Claimed:
    fields: dict[str, Any] = {
        "id": delivery_id,
        "application_id": APP,
        "milestone": "decision",
        "template": "decision",
        "channel": channel,
        "language": "ru",
        "attempts": attempts,
        "context": {"outcome": "approved", "amount": {"amount": "60000.00", "currency": "NOK"}},
        "first_name": "Ирина",
        "full_name": "Ирина Петрова",
        "email": "irina.petrova@example.no",
        "phone": "+4798765432",
        "external_ref": "RU-EXCHANGE-7",
        "title": "Школьный обмен",
    }
    return Claimed(**{**fields, **extra})


def sender(store: Store, mailer: Mailer, sms: Sms | None = None, **settings: Any) -> Sender:
    config = Settings(notify_max_attempts=3, notify_retry_base_seconds=2.0, **settings)
    return Sender(
        store, Renderer(), mailer, sms or Sms(), config, clock=lambda: T0, rng=random.Random(1)
    )


async def test_an_email_goes_out_in_the_contacts_language_with_a_deterministic_message_id() -> None:
    store, mailer = Store(claimed(41)), Mailer()
    assert await sender(store, mailer).send_due() == 1
    (message,) = mailer.sent
    expected_id = f"<delivery-41.{APP}@barents-grants.local>"
    assert message["Message-ID"] == expected_id
    assert store.outcomes[41] == ("sent", expected_id)
    assert message["Subject"] == "Ваша заявка RU-EXCHANGE-7 одобрена"
    assert message["Content-Language"] == "ru"
    assert "irina.petrova@example.no" in message["To"]
    assert message["Date"] is not None
    body = message.get_body(("plain",))
    assert body is not None and "60\xa0000,00\xa0NOK" in body.get_content()


async def test_a_failed_send_is_retried_later_with_the_reason() -> None:
    store = Store(claimed(42, attempts=1))
    await sender(store, Mailer(SendError("SMTP server 127.0.0.1:1025: refused"))).send_due()
    outcome, wait, reason = store.outcomes[42]
    assert outcome == "retry"
    assert timedelta(seconds=1) <= wait <= timedelta(seconds=2)
    assert "refused" in reason


async def test_after_the_last_attempt_the_delivery_is_failed_with_the_reason() -> None:
    store = Store(claimed(43, attempts=3))
    await sender(store, Mailer(SendError("SMTP 451: try later"))).send_due()
    assert store.outcomes[43] == ("failed", "SMTP 451: try later")


async def test_a_refusal_no_retry_can_fix_fails_at_once() -> None:
    store = Store(claimed(44, attempts=1))
    await sender(store, Mailer(SendError("SMTP 550: no such user", permanent=True))).send_due()
    assert store.outcomes[44] == ("failed", "SMTP 550: no such user")


async def test_a_delivery_whose_last_attempt_died_mid_send_is_given_up() -> None:
    store, mailer = Store(claimed(45, attempts=4)), Mailer()
    await sender(store, mailer).send_due()
    assert store.outcomes[45][0] == "failed" and not mailer.sent


async def test_error_texts_keep_addresses_out() -> None:
    refusal = SendError("SMTP 550: <irina.petrova@example.no> unknown", permanent=True)
    store = Store(claimed(46))
    await sender(store, Mailer(refusal)).send_due()
    assert "irina" not in store.outcomes[46][1]


async def test_an_sms_goes_to_the_contacts_number_with_the_first_name_only() -> None:
    store, sms = Store(claimed(47, channel="sms")), Sms()
    await sender(store, Mailer(), sms).send_due()
    ((to, body),) = sms.sent
    assert to == "+4798765432"
    assert "Ирина" in body and "Петрова" not in body and "@" not in body
    assert store.outcomes[47] == ("sent", f"SM{1:032d}")


async def test_an_sms_carrying_more_of_the_person_is_refused_not_sent() -> None:
    # A reference naming the person must not leak into an SMS through a template showing it.
    store, sms = Store(claimed(48, channel="sms", external_ref="Петрова")), Sms()
    await sender(store, Mailer(), sms).send_due()
    assert not sms.sent
    assert store.outcomes[48] == (
        "failed",
        "SMS body contains more of the name than the first name",
    )


# --- Twilio's Messages API ---------------------------------------------------------------------


def twilio(handler: Any) -> TwilioSms:
    settings = Settings(sms_base_url="https://api.twilio.test/")
    return TwilioSms(settings, httpx.AsyncClient(transport=httpx.MockTransport(handler)))


async def test_sms_are_created_with_twilios_messages_api() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM123", "status": "queued"})

    assert await twilio(handler).send("+4798765432", "Hei Ola!") == "SM123"
    (request,) = seen
    settings = Settings()
    assert request.method == "POST"
    assert str(request.url) == (
        f"https://api.twilio.test/2010-04-01/Accounts/{settings.sms_account_sid}/Messages.json"
    )
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode())
    assert form == {"To": ["+4798765432"], "From": [settings.sms_from], "Body": ["Hei Ola!"]}
    user, _, password = (
        base64.b64decode(request.headers["authorization"][6:]).decode().partition(":")
    )
    assert (user, password) == (settings.sms_account_sid, "local-sms-token")


async def test_an_invalid_number_is_a_permanent_failure_and_an_outage_is_not() -> None:
    def invalid(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 21211, "message": "Invalid 'To' Phone Number"})

    def outage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="unavailable")

    with pytest.raises(SendError) as refused:
        await twilio(invalid).send("+4798765432", "x")
    assert refused.value.permanent and "21211" in refused.value.reason
    with pytest.raises(SendError) as down:
        await twilio(outage).send("+4798765432", "x")
    assert not down.value.permanent and "503" in down.value.reason


# --- the local gateway speaks the same API -----------------------------------------------------


def gateway() -> TestClient:
    path = REPO_ROOT / "deploy" / "local" / "sms_gateway.py"
    spec = importlib.util.spec_from_file_location("sms_gateway", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sms_gateway"] = module
    spec.loader.exec_module(module)
    return TestClient(module.create_app("AC123", "secret"))


def test_the_local_gateway_answers_like_twilio_and_lists_what_it_received() -> None:
    client = gateway()
    url = "/2010-04-01/Accounts/AC123/Messages.json"
    form = {"To": "+4798765432", "From": "+15005550006", "Body": "Hei Ola!"}
    assert client.post(url, data=form).status_code == 401
    assert client.post(url, data=form, auth=("AC123", "wrong")).status_code == 401
    missing = client.post(url, data={"From": "+15005550006", "Body": "x"}, auth=("AC123", "secret"))
    assert missing.status_code == 400 and missing.json()["code"] == 21604
    created = client.post(url, data=form, auth=("AC123", "secret"))
    assert created.status_code == 201
    message = created.json()
    assert message["status"] == "queued" and message["sid"].startswith("SM")
    assert len(message["sid"]) == 34
    listed = client.get("/messages").json()
    assert [(m["to"], m["body"], m["sid"]) for m in listed] == [
        ("+4798765432", "Hei Ola!", message["sid"])
    ]


async def test_the_twilio_adapter_and_the_local_gateway_understand_each_other() -> None:
    client = gateway()

    def via_gateway(request: httpx.Request) -> httpx.Response:
        answer = client.request(
            request.method, request.url.path, content=request.content, headers=request.headers
        )
        return httpx.Response(answer.status_code, content=answer.content)

    settings = Settings(sms_account_sid="AC123", sms_auth_token="secret")
    adapter = TwilioSms(settings, httpx.AsyncClient(transport=httpx.MockTransport(via_gateway)))
    sid = await adapter.send("+4798765432", "Hei Ola!")
    assert client.get("/messages").json()[0]["sid"] == sid

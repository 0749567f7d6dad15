"""A local stand-in for Twilio's Programmable Messaging API, started by `./dev up`.

It accepts what the notifications service sends to Twilio —
`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded To/From/Body, HTTP basic
auth with the account SID and auth token — answers as Twilio does (201, a message `sid`,
status "queued", Twilio's error JSON on 400/401), and lists what it received at
`GET /messages` (newest last; `?to=+47…` filters). Messages live in memory only.

Run: `python deploy/local/sms_gateway.py` (port GRANTS_SMS_GATEWAY_PORT, default 8025;
credentials GRANTS_SMS_ACCOUNT_SID / GRANTS_SMS_AUTH_TOKEN, as the service uses)."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.config import Settings

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# Twilio allows 1600 characters per message body.
_MAX_BODY = 1600


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _segments(body: str) -> int:
    # GSM-7 fits 160 characters (153 per part); anything else (Cyrillic) is UCS-2: 70 (67).
    if all(ord(c) < 128 for c in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    return 1 if len(body) <= 70 else -(-len(body) // 67)


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def create_app(account_sid: str, auth_token: str) -> FastAPI:
    app = FastAPI(title="Local SMS gateway (Twilio Messages API)", version="1")
    received: list[dict[str, Any]] = []

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json", status_code=201)
    async def create_message(sid: str, request: Request) -> JSONResponse:
        given = _credentials(request)
        if (
            given is None
            or not secrets.compare_digest(given[0], account_sid)
            or not secrets.compare_digest(given[1], auth_token)
        ):
            return _error(401, 20003, "Authenticate")
        if sid != account_sid:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        to, sender, body = form.get("To"), form.get("From"), form.get("Body")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return _error(400, 21211, "Invalid 'To' Phone Number")
        if not sender and not form.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > _MAX_BODY:
            return _error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        message_sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        message = {
            "sid": message_sid,
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "from": sender,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": str(_segments(body)),
            "num_media": "0",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json",
        }
        received.append(message)
        return JSONResponse(message, status_code=201)

    @app.get("/messages")
    async def messages(to: str | None = None) -> list[dict[str, Any]]:
        """Everything received, oldest first."""
        return [m for m in received if to is None or m["to"] == to]

    @app.delete("/messages", status_code=204)
    async def clear() -> None:
        received.clear()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    settings = Settings()
    app = create_app(settings.sms_account_sid, settings.sms_auth_token.get_secret_value())
    # Access logs would print phone numbers: off.
    uvicorn.run(
        app, host="127.0.0.1", port=settings.sms_gateway_port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()

"""SMS through Twilio's Programmable Messaging API:
`POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded To/From/Body,
HTTP basic auth with the account SID and auth token; 201 with the message's `sid`.

`GRANTS_SMS_BASE_URL` chooses the endpoint: https://api.twilio.com in production, the local
gateway (deploy/local/sms_gateway.py, same API) by default."""

from __future__ import annotations

import httpx

from services.notifications.mail import SendError
from shared.config import Settings


class TwilioSms:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.sms_timeout_seconds)

    @property
    def url(self) -> str:
        base = self._settings.sms_base_url.rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self._settings.sms_account_sid}/Messages.json"

    async def send(self, to: str, body: str) -> str:
        """Send one SMS; returns the provider's message sid."""
        s = self._settings
        try:
            response = await self._client.post(
                self.url,
                data={"To": to, "From": s.sms_from, "Body": body},
                auth=(s.sms_account_sid, s.sms_auth_token.get_secret_value()),
            )
        except httpx.HTTPError as exc:
            raise SendError(f"SMS provider unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (200, 201):
            try:
                sid = response.json()["sid"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SendError("SMS provider answered without a message sid") from exc
            return str(sid)
        try:
            error = response.json()
            detail = f"{error.get('code')} {error.get('message')}"
        except ValueError:
            detail = response.text[:200]
        # 400: the request itself is wrong (e.g. an invalid number): retrying cannot help.
        # 401/403 (credentials), 404, 429 and 5xx may heal: retried.
        raise SendError(
            f"SMS provider HTTP {response.status_code}: {detail}",
            permanent=response.status_code == 400,
        )

    async def close(self) -> None:
        await self._client.aclose()

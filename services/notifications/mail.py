"""E-mail over SMTP (aiosmtplib), each message with a deterministic Message-ID."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from uuid import UUID

import aiosmtplib

from services.notifications.render import EmailContent
from shared.config import Settings


class SendError(Exception):
    """A send that did not go through. `permanent`: retrying cannot help (e.g. the server
    refused the recipient for good), so the delivery is marked failed at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def message_id(delivery_id: int, application_id: UUID, domain: str) -> str:
    # The same delivery always has the same Message-ID: should it be sent again after a
    # crash between the server's acceptance and our record of it, mail systems that
    # de-duplicate by Message-ID drop the copy.
    return f"<delivery-{delivery_id}.{application_id}@{domain}>"


def build_message(
    *,
    sender: str,
    to_name: str,
    to_address: str,
    content: EmailContent,
    message_id: str,
    language: str,
    sent_at: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    local, _, domain = to_address.rpartition("@")
    message["To"] = Address(display_name=to_name, username=local, domain=domain)
    message["Subject"] = content.subject
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(sent_at)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    # After the bodies: set_content() drops Content-* headers set before it.
    message["Content-Language"] = language
    return message


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self._settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendError(
                f"SMTP recipient refused ({', '.join(map(str, codes))})",
                permanent=all(500 <= c < 600 for c in codes),
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx: the server will not take this message; 4xx: try again later.
            raise SendError(
                f"SMTP {exc.code}: {exc.message}", permanent=500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(f"SMTP server {s.smtp_host}:{s.smtp_port}: {exc}") from exc

"""The sender loop: claims due deliveries, renders them, sends them, records the outcome.

Never twice: rows are claimed with FOR UPDATE SKIP LOCKED, so two instances never send the
same delivery, and a claimed row is marked `sending` with a lease (`claimed_until`) before
the send. Trade-off: if a process dies after the server accepted a message but before it
recorded `sent`, the lease expires and the delivery is sent again — at most once per lease.
E-mail carries a deterministic Message-ID, so mail systems that de-duplicate drop the copy.

Never lost: a failed send is retried after an exponential backoff with jitter; after
`notify_max_attempts` attempts (or at once, when retrying cannot help) it is marked failed
with the reason, which operators see at GET /deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.notifications.mail import SendError, build_message, message_id
from services.notifications.privacy import PersonalDataInSms, check_sms, redact
from services.notifications.render import Renderer, RenderError
from services.notifications.repository import WAKE_CHANNEL, Claimed
from shared import observability
from shared.config import Settings
from shared.kafka import is_transient

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmsProvider(Protocol):
    async def send(self, to: str, body: str) -> str: ...


class DeliveryStore(Protocol):
    """What the sender needs of the repository (repository.Repository)."""

    async def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]: ...

    async def mark_sent(self, delivery_id: int, *, now: datetime, provider_id: str) -> None: ...

    async def mark_retry(
        self, delivery_id: int, *, now: datetime, next_attempt_at: datetime, error: str
    ) -> None: ...

    async def mark_failed(self, delivery_id: int, *, now: datetime, error: str) -> None: ...


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """How long to wait after the `attempt`-th failed attempt: base * 2^(attempt-1), capped,
    at a random point in its upper half. The jitter spreads out deliveries that failed
    together (an SMTP outage) so they do not all retry at once; the half floor makes each
    wait longer than the one before, until the cap."""
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return ceiling / 2 + rng.random() * ceiling / 2


class Sender:
    def __init__(
        self,
        repo: DeliveryStore,
        renderer: Renderer,
        mailer: Mailer,
        sms: SmsProvider,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._repo = repo
        self._renderer = renderer
        self._mailer = mailer
        self._sms = sms
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def send_due(self) -> int:
        """Claim and send one batch of due deliveries; returns how many were claimed."""
        s = self._settings
        now = self._clock()
        claimed = await self._repo.claim(
            now=now,
            lease_until=now + timedelta(seconds=s.notify_lease_seconds),
            limit=s.notify_batch_size,
        )
        await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, d: Claimed) -> None:
        s = self._settings
        if d.attempts > s.notify_max_attempts:
            # Its last attempt's sender died mid-send: the attempts are used up.
            await self._repo.mark_failed(
                d.id, now=self._clock(), error="gave up: the last attempt did not complete"
            )
            observability.notification(d.channel, "failed")
            self._log(d, "failed", "the last attempt did not complete")
            return
        try:
            provider_id = await self._send(d)
        except (SendError, RenderError, PersonalDataInSms) as exc:
            permanent = not isinstance(exc, SendError) or exc.permanent
            await self._failed(d, redact(str(exc), d.email, d.phone), permanent=permanent)
        except Exception as exc:  # anything else unexpected: retried like a failed send
            reason = redact(f"{type(exc).__name__}: {exc}", d.email, d.phone)
            await self._failed(d, reason, permanent=False)
        else:
            await self._record_sent(d, provider_id)
            observability.notification(d.channel, "sent")
            self._log(d, "sent")

    async def _record_sent(self, d: Claimed, provider_id: str) -> None:
        """The provider has the message: record it, retrying while Postgres is away for as
        long as the lease keeps the delivery ours. Giving up at the first failed UPDATE would
        leave the row `sending`, and the lease's expiry would send it a second time: one
        duplicate per message sent while Postgres restarts."""
        loop = asyncio.get_running_loop()
        # The lease runs from the claim, just before this delivery started; keep a margin.
        deadline = loop.time() + self._settings.notify_lease_seconds * 0.8
        delay = 0.2
        while True:
            try:
                await self._repo.mark_sent(d.id, now=self._clock(), provider_id=provider_id)
                return
            except Exception as exc:
                if not is_transient(exc) or loop.time() + delay > deadline:
                    raise
                log.warning(
                    "delivery %d sent, not yet recorded (%s); retrying in %.1fs",
                    d.id,
                    type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _send(self, d: Claimed) -> str:
        s = self._settings
        recipient = {
            "first_name": d.first_name,
            # Rows recorded before the reference was stored name the application by its id.
            "ref": d.external_ref or str(d.application_id)[:8],
            "title": d.title or "",
        }
        if d.channel == "email":
            content = self._renderer.email(d.template, d.language, recipient, d.context)
            mid = message_id(d.id, d.application_id, s.mail_message_id_domain)
            message = build_message(
                sender=s.mail_from,
                to_name=d.full_name,
                to_address=d.email,
                content=content,
                message_id=mid,
                language=d.language,
                sent_at=self._clock(),
            )
            await asyncio.wait_for(self._mailer.send(message), s.smtp_timeout_seconds + 5)
            return mid
        body = self._renderer.sms(d.template, d.language, recipient, d.context)
        check_sms(
            body, first_name=d.first_name, full_name=d.full_name, email=d.email, phone=d.phone
        )
        return await asyncio.wait_for(self._sms.send(d.phone, body), s.sms_timeout_seconds + 5)

    async def _failed(self, d: Claimed, reason: str, *, permanent: bool) -> None:
        s = self._settings
        now = self._clock()
        if permanent or d.attempts >= s.notify_max_attempts:
            await self._repo.mark_failed(d.id, now=now, error=reason)
            observability.notification(d.channel, "failed")
            self._log(d, "failed", reason)
            return
        delay = backoff_seconds(
            d.attempts, s.notify_retry_base_seconds, s.notify_retry_max_seconds, self._rng
        )
        await self._repo.mark_retry(
            d.id, now=now, next_attempt_at=now + timedelta(seconds=delay), error=reason
        )
        observability.notification(d.channel, "retried")
        self._log(d, f"retry in {delay:.1f}s", reason)

    @staticmethod
    def _log(d: Claimed, outcome: str, reason: str | None = None) -> None:
        # Ids and the milestone only: addresses and numbers never reach the log.
        log.info(
            "delivery %d (application %s, %s, %s, attempt %d): %s%s",
            d.id,
            d.application_id,
            d.milestone,
            d.channel,
            d.attempts,
            outcome,
            f" ({reason})" if reason else "",
        )

    async def run(self, pool: asyncpg.Pool) -> None:
        """Send until cancelled: woken by Postgres NOTIFY when deliveries are recorded (on
        every instance), and by a poll for retries that come due."""
        listener: PoolConnectionProxy | None = None
        while True:
            try:
                if listener is None or listener.is_closed():
                    listener = await pool.acquire()
                    await listener.add_listener(WAKE_CHANNEL, self.wake)
                self._wake.clear()
                while await self.send_due():
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_seconds)
            except asyncio.CancelledError:
                if listener is not None:
                    with contextlib.suppress(Exception):
                        await listener.remove_listener(WAKE_CHANNEL, self.wake)
                        await pool.release(listener)
                raise
            except Exception as exc:
                # Postgres away: nothing is lost (rows stay due), try again shortly.
                log.warning("sender: %s: %s; retrying", type(exc).__name__, exc)
                if listener is not None:
                    with contextlib.suppress(Exception):
                        await pool.release(listener)
                    listener = None
                await asyncio.sleep(1)

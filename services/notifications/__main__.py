"""`python -m services.notifications`: the notifications service, one process."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from services.notifications.api import build_api
from services.notifications.app import register_subscribers
from services.notifications.mail import SmtpMailer
from services.notifications.render import Renderer
from services.notifications.repository import Repository
from services.notifications.sender import Sender
from services.notifications.sms import TwilioSms
from services.notifications.worker import WORKFLOWS, build_activities
from shared.runtime import ServiceContext, ServiceSpec, main


def background(ctx: ServiceContext) -> Sequence[Coroutine[Any, Any, None]]:
    settings = ctx.settings
    sender = Sender(
        Repository(ctx.pool),
        Renderer(timezone=settings.notify_timezone),
        SmtpMailer(settings),
        TwilioSms(settings),
        settings,
    )
    return [sender.run(ctx.pool)]


SPEC = ServiceSpec(
    name="notifications",
    migrations=Path(__file__).parent / "migrations",
    register_subscribers=register_subscribers,
    build_api=build_api,
    workflows=WORKFLOWS,
    build_activities=build_activities,
    background=background,
)

if __name__ == "__main__":
    main(SPEC)

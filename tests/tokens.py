"""Bearer tokens for tests, signed with the stack's (local) secret."""

from __future__ import annotations

from shared.auth import Role, issue_token
from shared.config import Settings


def token(role: Role, sub: str, *, org: str | None = None, sys: str | None = None) -> str:
    return issue_token(Settings(), sub=sub, role=role, org=org, sys=sys)


def bearer(
    role: Role, sub: str, *, org: str | None = None, sys: str | None = None
) -> dict[str, str]:
    return {"authorization": f"Bearer {token(role, sub, org=org, sys=sys)}"}


def kafka_auth(
    role: Role, sub: str, *, org: str | None = None, sys: str = "test-system"
) -> list[tuple[str, bytes]]:
    """The Kafka header a producing system sends with a command event."""
    return [("authorization", f"Bearer {token(role, sub, org=org, sys=sys)}".encode())]


OPERATOR = bearer("operator", "ops.tester")
FINANCE = bearer("finance", "finance.tester")

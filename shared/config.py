"""Settings for every service and for the local stack, from `GRANTS_*` environment variables.

Defaults describe the local native stack started by `./dev up`, so nothing needs setting
for development; production overrides them through the environment.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

SslMode = Literal["disable", "prefer", "require", "verify-ca", "verify-full"]

SERVICE_NAMES: tuple[str, ...] = ("intake", "review", "payments", "notifications")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTS_", env_file=None, extra="ignore")

    state_dir: Path = REPO_ROOT / ".state"

    # Postgres: one database, one schema and one login role per service.
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_database: str = "grants"
    # Local default passwords are "<role>-local"; production sets GRANTS_PG_PASSWORD_<ROLE>.
    pg_password_intake: SecretStr = SecretStr("intake-local")
    pg_password_review: SecretStr = SecretStr("review-local")
    pg_password_payments: SecretStr = SecretStr("payments-local")
    pg_password_notifications: SecretStr = SecretStr("notifications-local")
    pg_pool_min: int = 1
    pg_pool_max: int = 10
    # TLS to Postgres, as libpq's sslmode. "auto": none over loopback (or a Unix socket),
    # where it protects nothing and cost about a fifth of a service's CPU on reads in the
    # bench; libpq's default "prefer" anywhere else. Production across hosts should set
    # "verify-full".
    pg_sslmode: Literal["auto"] | SslMode = "auto"

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # A consumer gives up on a message that keeps failing after this many attempts and
    # dead-letters it, so one poison message never stops a partition.
    kafka_max_attempts: int = Field(default=5, ge=1)
    # Consumers per subscription in one process (partitions handled concurrently).
    kafka_consumer_workers: int = Field(default=3, ge=1)
    kafka_max_message_bytes: int = Field(default=1_048_576, ge=1024)

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # Workflows a worker keeps in memory between their tasks (Temporal's default is 1000). Each
    # sandboxed review or lifecycle waiting for a human holds a few hundred KB, so the default
    # let a service grow past 300 MB under load; an evicted one replays its short history on
    # its next task.
    temporal_workflow_cache: int = Field(default=200, ge=0)
    # The workflow sandbox re-imports each workflow module for every workflow it loads and
    # keeps that copy while the workflow is cached: in the bench it was the largest part of
    # review's busy time and of the services' memory. The services run without it; the
    # tests' workers keep it (Temporal's default runner), so a non-deterministic call in
    # workflow code (the wall clock, random, I/O) still fails there, and the replay of
    # stored histories catches a change of behaviour. GRANTS_TEMPORAL_SANDBOX=true turns it on.
    temporal_sandbox: bool = False
    temporal_ui_port: int = 8233
    # Payload encryption (shared/codec.py): every Temporal payload and failure message is
    # AES-256-GCM encrypted. `temporal_codec_keys` is "id:<base64 of 32 bytes>,id:…", every
    # key that may still be needed to read history; `temporal_codec_key_id` is the one new
    # payloads are encrypted with. DEV ONLY default: this key is public (it is in the
    # repository) and is for the local stack; production sets GRANTS_TEMPORAL_CODEC_KEYS and
    # GRANTS_TEMPORAL_CODEC_KEY_ID from its secret store.
    temporal_codec_keys: SecretStr = SecretStr(
        "dev-local:Y9oXaujiaHFcGfqTV5NJNRJMZbijeutxuF1TMEvORvg="
    )
    temporal_codec_key_id: str = "dev-local"
    # The codec server (deploy/local/codec_server.py) lets the Temporal UI show decrypted
    # payloads; it answers the UI's origins (http://127.0.0.1:<ui port>, http://localhost:<ui
    # port>) and any extra comma-separated origins given here.
    codec_server_port: int = 8090
    codec_server_extra_origins: str = ""

    http_host: str = "127.0.0.1"
    port_intake: int = 8001
    port_review: int = 8002
    port_payments: int = 8003
    port_notifications: int = 8004
    # Largest HTTP request body accepted (HTTP 413 above it).
    http_max_body_bytes: int = Field(default=262_144, ge=1024)

    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)

    # Notifications: e-mail over SMTP. Local default: MailDev started by `./dev up`.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=20.0, gt=0)
    mail_from: str = "Barents Grants <no-reply@barents-grants.local>"
    # The right-hand side of every Message-ID, so mail systems can drop a resent duplicate.
    mail_message_id_domain: str = "barents-grants.local"
    # Notifications: SMS through Twilio's Messages API (or anything speaking it, such as the
    # local gateway deploy/local/sms_gateway.py that `./dev up` starts).
    sms_base_url: str = "http://127.0.0.1:8025"
    sms_account_sid: str = "AC00000000000000000000000000000000"
    sms_auth_token: SecretStr = SecretStr("local-sms-token")
    sms_from: str = "+15005550006"
    sms_timeout_seconds: float = Field(default=20.0, gt=0)
    # Sending: a failed send is retried after base * 2^(attempt-1) seconds (capped, with
    # jitter) and marked failed after `notify_max_attempts` attempts.
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_retry_base_seconds: float = Field(default=5.0, gt=0)
    notify_retry_max_seconds: float = Field(default=900.0, gt=0)
    # A claimed delivery is someone's for this long; a sender that died leaves it retryable.
    notify_lease_seconds: float = Field(default=120.0, gt=0)
    notify_poll_seconds: float = Field(default=1.0, gt=0)
    notify_batch_size: int = Field(default=20, ge=1)
    # Dates in messages are the applicant's calendar dates in the funder's time zone.
    notify_timezone: str = "Europe/Oslo"
    # Local stand-ins started by `./dev up`: MailDev (SMTP + web inbox) and the SMS gateway.
    maildev_smtp_port: int = 1025
    maildev_web_port: int = 1080
    sms_gateway_port: int = 8025

    log_level: str = "INFO"
    # Log lines: one JSON object per line (time, level, service, logger, message,
    # correlation_id and trace ids when known), or plain text for reading by eye.
    log_format: Literal["json", "text"] = "json"

    # OpenTelemetry tracing (shared/observability.py). Off by default: nothing is recorded.
    # `console` prints spans as JSON lines to stdout, `otlp` sends them over OTLP/HTTP to
    # `otlp_endpoint`, `file` appends them as JSON lines to <state_dir>/traces/<service>.jsonl
    # (what the tests read).
    tracing: Literal["off", "console", "otlp", "file"] = "off"
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"

    # Bearer tokens (HS256). The default secret is for the local stack only: production sets
    # GRANTS_JWT_SECRET (and rotates it like any secret).
    jwt_secret: SecretStr = SecretStr("local-development-secret-change-me-in-production")
    jwt_issuer: str = "barents-grants"
    jwt_audience: str = "barents-grants-api"

    def pg_password(self, role: str) -> str:
        secret: SecretStr = getattr(self, f"pg_password_{role}")
        return secret.get_secret_value()

    def http_port(self, service: str) -> int:
        port: int = getattr(self, f"port_{service}")
        return port

    def pg_ssl(self) -> SslMode:
        """The sslmode to connect with (asyncpg's `ssl` argument)."""
        if self.pg_sslmode != "auto":
            return self.pg_sslmode
        return "disable" if _is_local(self.pg_host) else "prefer"

    def pg_dsn(self, role: str) -> str:
        return f"postgresql://{role}@{self.pg_host}:{self.pg_port}/{self.pg_database}"


def _is_local(host: str) -> bool:
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

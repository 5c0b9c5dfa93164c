"""Typed settings, read once from ``AMANAH_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GRAPH_API_VERSION = "v23.0"  # pinned Meta Graph API version for the Send APIs
DEV_SESSION_SECRET = "dev-only-change-me-0123456789abcdef"  # noqa: S105 - refused off loopback


class Settings(BaseSettings):
    """All configuration. Secrets are :class:`SecretStr` so they never print in a repr or a log."""

    model_config = SettingsConfigDict(env_prefix="AMANAH_", env_file=".env", extra="ignore", frozen=True)

    database_url: str = "sqlite:///./amanah.db"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: str = ""  # the bank's own site as customers reach it; defaults to http://host:port
    session_secret: SecretStr = SecretStr(DEV_SESSION_SECRET)  # required off loopback (see bootstrap.build)
    session_max_age_s: int = 30 * 60  # a web session ends after this long without a request
    session_absolute_s: int = 12 * 3600  # ... and this long after login, whatever the activity
    max_message_chars: int = Field(default=2000, ge=1, le=100_000)
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    timezone: str = "Asia/Amman"  # the bank's business day: "today", "last month"
    demo_mode: bool = True  # show the demo customers' credentials on the login page
    knowledge_base: Path | None = None  # defaults to the packaged knowledge/faq.toml
    agreements_dir: Path | None = None  # defaults to the packaged agreements/
    nlu_model: str = "tfidf"  # which classifier adapter to use
    clarify_threshold: float = Field(default=0.45, ge=0.0, le=1.0)

    # Messenger
    messenger_verify_token: SecretStr = SecretStr("")
    messenger_app_secret: SecretStr = SecretStr("")
    # App secret rotation: the previous secret is still accepted (webhooks, signed_request) until then
    messenger_app_secret_previous: SecretStr = SecretStr("")
    messenger_app_secret_previous_until: AwareDatetime | None = None  # empty: until removed
    messenger_page_id: str = ""  # our Page id: a signed_request for another Page is refused
    messenger_page_access_token: SecretStr = SecretStr("")
    messenger_graph_url: str = f"https://graph.facebook.com/{GRAPH_API_VERSION}"

    # WhatsApp Cloud API
    whatsapp_verify_token: SecretStr = SecretStr("")
    whatsapp_app_secret: SecretStr = SecretStr("")
    whatsapp_app_secret_previous: SecretStr = SecretStr("")
    whatsapp_app_secret_previous_until: AwareDatetime | None = None
    whatsapp_access_token: SecretStr = SecretStr("")
    whatsapp_phone_number_id: str = ""
    whatsapp_graph_url: str = f"https://graph.facebook.com/{GRAPH_API_VERSION}"

    # Workers
    run_worker_in_server: bool = True
    worker_poll_interval_s: float = 0.02
    secure_link_ttl_s: int = 600

    # Channel pipeline (inbox worker and outbox sender; see adapters/channels/worker.py)
    messenger_app_id: str = ""  # our Meta app id: an echo from another app means a human took over
    # Handover: the app that receives conversations handed to a person (Meta's Page Inbox by default);
    # empty: no pass_thread_control, the bot only opens a ticket and goes silent in that thread.
    messenger_inbox_app_id: str = Field(default="263902037430900", pattern=r"^[0-9]{0,32}$")
    messenger_typing: bool = True  # send typing_on before each Messenger reply (best effort)
    worker_lease_s: float = Field(default=30.0, gt=0)  # a crashed worker's conversations wait this long
    # The inbox worker writes the events it handles in batches: one transaction per this many events
    # or this many milliseconds, whichever comes first (1: one transaction per event).
    worker_batch_events: int = Field(default=64, ge=1)
    worker_batch_ms: float = Field(default=20.0, ge=0)
    outbox_lease_s: float = Field(default=30.0, gt=0)  # a crashed sender's calls become unconfirmed after
    outbox_echo_wait_s: float = Field(default=5.0, ge=0)  # wait for an echo before re-sending
    outbox_max_inflight: int = Field(default=64, ge=1)
    outbox_poll_interval_s: float = Field(default=0.02, gt=0)  # a sender in its own process polls this often
    # Pacing, per sender process (adapters/channels/pacing.py; README "Pacing"); a rate of 0 turns it off.
    # Per thread (channel, user): this many calls a second, and this many at once after a quiet spell.
    outbox_thread_rate_per_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    outbox_thread_burst: int = Field(default=3, ge=1)
    # Per Page / per WhatsApp number (Meta's ceilings: 300 calls/s per Page; 80 messages/s per number).
    outbox_messenger_rate_per_s: float = Field(default=250.0, ge=0, allow_inf_nan=False)
    outbox_whatsapp_rate_per_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    graph_timeout_s: float = Field(default=10.0, gt=0)
    admin_token: SecretStr = SecretStr("")  # enables /admin/outbox and /admin/agent/* (Bearer <token>)

    # Account linking: hosts (and their subdomains) a Messenger redirect_uri may point to, comma-separated
    link_redirect_hosts: str = "facebook.com,messenger.com"

    @field_validator(
        "messenger_app_secret_previous_until", "whatsapp_app_secret_previous_until", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

"""Operator commands: `amanah purge` forgets what can no longer be used; `amanah serve` refuses a weak
session secret off loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import typer.testing
from sqlalchemy import func, select

from amanah.adapters.privacy.secure_links import LinkPurpose
from amanah.adapters.storage.schema_guard import secure_links
from amanah.adapters.storage.schema_linking import link_grants
from amanah.adapters.storage.schema_web import login_failures, web_sessions
from amanah.app.linking import hash_secret
from amanah.app.web_sessions import WebSession
from amanah.bootstrap import Container, build, check_session_secret
from amanah.domain.conversation import Channel
from amanah.domain.errors import ConfigurationError
from amanah.domain.linking import GrantKind, LinkGrant
from amanah.entrypoints.cli import app
from amanah.settings import DEV_SESSION_SECRET, Settings


def _run(*args: str, **env: str) -> typer.testing.Result:
    return typer.testing.CliRunner().invoke(app, list(args), env={"AMANAH_LOG_LEVEL": "WARNING", **env})


@pytest.fixture
def container(seeded_url: str) -> Iterator[Container]:
    built = build(Settings(database_url=seeded_url, run_worker_in_server=False))
    yield built
    assert built.engine is not None
    built.engine.dispose()


def _count(container: Container, table: object) -> int:
    assert container.engine is not None
    with container.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_purge_forgets_expired_links_secrets_sessions_and_failures(container: Container) -> None:
    """`amanah purge` deletes expired secure links (with their balances), link secrets, ended sessions
    and old failed logins, prints the counts, and keeps everything still usable."""
    assert container.linking is not None and container.web_sessions is not None
    assert container.login_throttle is not None
    now = container.clock.now()
    layla = container.core.customer_by_username("layla").id
    links = container.guard.secure_links
    links.mint(
        customer_id=layla,
        purpose=LinkPurpose.WITHHELD,
        content={"text": "JOD 1,234"},
        now=now - timedelta(hours=2),
        ttl_s=600,
    )
    fresh_link = links.mint(
        customer_id=layla, purpose=LinkPurpose.WITHHELD, content={"text": "x"}, now=now, ttl_s=600
    )
    for name, expires in (("old", now - timedelta(days=2)), ("new", now + timedelta(minutes=10))):
        container.linking.store.add_grant(
            LinkGrant(
                kind=GrantKind.WHATSAPP_TOKEN,
                token_hash=hash_secret(name),
                channel=Channel.WHATSAPP,
                issued_at=expires - timedelta(minutes=15),
                expires_at=expires,
                user_id="15550002222",
            )
        )
    live = container.web_sessions.start(layla)
    container.web_sessions.store.add(
        WebSession(
            "e" * 64, layla, now - timedelta(days=1), now - timedelta(days=1), now - timedelta(hours=12)
        )
    )
    ended = container.web_sessions.start(layla)
    container.web_sessions.end(ended)
    container.login_throttle.store.add("user", "a" * 64, now - timedelta(hours=1))
    container.login_throttle.failed("omar", "192.0.2.1")

    out = _run("purge", AMANAH_DATABASE_URL=container.settings.database_url)
    assert out.exit_code == 0, out.output
    assert (
        "purged 1 expired secure link(s), 1 expired link secret(s), 2 ended web session(s) "
        "and 1 old failed login(s)" in out.output
    )
    assert _count(container, secure_links) == 1
    assert links.redeem(fresh_link, layla, now).link is not None
    assert _count(container, link_grants) == 1
    assert container.linking.store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret("new")) is not None
    assert _count(container, web_sessions) == 1 and container.web_sessions.customer(live) == layla
    assert _count(container, login_failures) == 2


@pytest.mark.parametrize(
    "env",
    [
        {"AMANAH_HOST": "0.0.0.0", "AMANAH_SESSION_SECRET": DEV_SESSION_SECRET},  # noqa: S104
        {"AMANAH_HOST": "10.1.2.3", "AMANAH_SESSION_SECRET": "short-secret"},
        {"AMANAH_HOST": "127.0.0.1", "AMANAH_DEMO_MODE": "false"},
    ],
)
def test_serve_refuses_a_weak_session_secret_off_loopback(env: dict[str, str]) -> None:
    """`amanah serve` stops with a clear message naming AMANAH_SESSION_SECRET, not a traceback."""
    out = _run("serve", **{"AMANAH_DATABASE_URL": "sqlite://", "AMANAH_SESSION_SECRET": "", **env})
    assert out.exit_code == 2
    assert "cannot start: AMANAH_SESSION_SECRET must be set" in out.output
    assert "Traceback" not in out.output


STRONG = "x" * 32


@pytest.mark.parametrize(
    ("host", "demo", "secret"),
    [
        ("0.0.0.0", True, DEV_SESSION_SECRET),  # noqa: S104
        ("192.0.2.10", True, "s" * 31),
        ("bank.example", False, DEV_SESSION_SECRET),
        ("127.0.0.1", False, DEV_SESSION_SECRET),
        ("::1", False, "short"),
    ],
)
def test_build_refuses_a_default_or_short_secret_unless_a_loopback_demo(
    host: str, demo: bool, secret: str
) -> None:
    """Anyone knowing the secret could forge cookies and link states: build() stops with a clear error."""
    settings = Settings(database_url="sqlite://", host=host, demo_mode=demo, session_secret=secret)
    with pytest.raises(ConfigurationError, match="AMANAH_SESSION_SECRET"):
        build(settings)


@pytest.mark.parametrize(
    ("host", "demo", "secret"),
    [
        ("127.0.0.1", True, DEV_SESSION_SECRET),
        ("localhost", True, DEV_SESSION_SECRET),
        ("::1", True, "short"),
        ("[::1]", True, DEV_SESSION_SECRET),
        ("0.0.0.0", False, STRONG),  # noqa: S104
        ("bank.example", True, "é" * 16),  # 32 bytes
    ],
)
def test_a_strong_secret_or_a_loopback_demo_is_accepted(host: str, demo: bool, secret: str) -> None:
    """A secret of 32+ bytes works anywhere; the development secret only for a demo on loopback."""
    check_session_secret(Settings(host=host, demo_mode=demo, session_secret=secret))

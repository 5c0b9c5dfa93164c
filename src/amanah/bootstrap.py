"""The composition root: the one place that wires adapters to ports.

``build(settings)`` returns a :class:`Container` whose members every entrypoint uses. Tests build
theirs from in-memory fakes with :func:`build_in_memory`. Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from amanah.app.assistant import Assistant, IntentHandler, LinkUrlFor
from amanah.app.ports import (
    Authenticator,
    Classifier,
    Clock,
    ConversationStore,
    CoreBanking,
    KnowledgeBase,
    LinkStore,
)
from amanah.domain.errors import ConfigurationError
from amanah.domain.intents import Intent
from amanah.settings import DEV_SESSION_SECRET, Settings

if TYPE_CHECKING:
    from fastapi import APIRouter
    from fastapi.templating import Jinja2Templates
    from sqlalchemy.engine import Engine

    from amanah.adapters.channels.worker import ChannelRuntime
    from amanah.adapters.privacy.guard import AgreementGuard
    from amanah.app.linking import LinkingService
    from amanah.app.web_sessions import LoginThrottle, WebSessions


@dataclass(frozen=True, slots=True)
class DemoCredential:
    username: str
    password: str
    note: str


RouterFactory = Callable[["Container", "Jinja2Templates"], "APIRouter"]


@dataclass
class Container:
    settings: Settings
    core: CoreBanking
    auth: Authenticator
    conversations: ConversationStore
    knowledge: KnowledgeBase
    classifier: Classifier
    clock: Clock
    assistant: Assistant
    guard: AgreementGuard  # the egress guard: agreements, secure links, disclosure ledger
    engine: Engine | None = None
    demo_credentials: Sequence[DemoCredential] = ()
    routers: list[RouterFactory] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    linking: LinkingService | None = None  # Messenger/WhatsApp account linking and consent
    channels: ChannelRuntime | None = None  # Messenger/WhatsApp webhooks, inbox, outbox (see worker.py)
    web_sessions: WebSessions | None = None  # server-side sessions of the bank's site (see webchat.py)
    login_throttle: LoginThrottle | None = None  # failed-login counting for POST /login


def _knowledge(settings: Settings) -> KnowledgeBase:
    from amanah.adapters.nlu.knowledge import TomlKnowledgeBase

    if settings.knowledge_base is not None:
        return TomlKnowledgeBase.from_path(settings.knowledge_base)
    return TomlKnowledgeBase.default()


def _classifier(settings: Settings, knowledge: KnowledgeBase) -> Classifier:
    from amanah.adapters.nlu.tfidf import TfidfClassifier

    return TfidfClassifier.load_default(knowledge)


def _demo_credentials(anchor: date) -> Sequence[DemoCredential]:
    from amanah.adapters.core.demo import demo_bank

    return [
        DemoCredential(
            c.username, c.password, f"{c.display_name} ({'العربية' if c.language == 'ar' else 'English'})"
        )
        for c in demo_bank(anchor).customers
    ]


def _assistant(
    settings: Settings,
    core: CoreBanking,
    conversations: ConversationStore,
    classifier: Classifier,
    knowledge: KnowledgeBase,
    clock: Clock,
    *,
    link_url_for: LinkUrlFor | None = None,
    handlers: dict[Intent, IntentHandler] | None = None,
) -> Assistant:
    from amanah.adapters.privacy.screen import DetectorScreen

    return Assistant(
        core=core,
        conversations=conversations,
        classifier=classifier,
        knowledge=knowledge,
        screen=DetectorScreen(),
        clock=clock,
        clarify_threshold=settings.clarify_threshold,
        max_message_chars=settings.max_message_chars,
        link_url_for=link_url_for,
        handlers=handlers,
    )


def _guard(settings: Settings, clock: Clock, engine: Engine | None) -> AgreementGuard:
    """The egress guard. Loads and validates the agreement files: a broken one raises ConfigurationError."""
    from amanah.adapters.privacy.agreements import load_agreements
    from amanah.adapters.privacy.guard import AgreementGuard
    from amanah.adapters.privacy.ledger import InMemoryDisclosureLedger, SqlDisclosureLedger
    from amanah.adapters.privacy.secure_links import InMemorySecureLinks, SqlSecureLinks

    agreements = load_agreements(settings.agreements_dir)
    if engine is None:
        links: InMemorySecureLinks | SqlSecureLinks = InMemorySecureLinks()
        ledger: InMemoryDisclosureLedger | SqlDisclosureLedger = InMemoryDisclosureLedger()
    else:
        links, ledger = SqlSecureLinks(engine), SqlDisclosureLedger(engine)
    return AgreementGuard(
        agreements, links, ledger, settings.base_url, clock, ttl_s=settings.secure_link_ttl_s
    )


def _privacy_report(guard: AgreementGuard) -> IntentHandler:
    from amanah.adapters.privacy.report import privacy_report_handler

    return privacy_report_handler(guard)


def _linking(settings: Settings, store: LinkStore, clock: Clock) -> LinkingService:
    from amanah.adapters.privacy.agreements import load_agreements
    from amanah.app.linking import LinkingService

    return LinkingService(
        store,
        load_agreements(settings.agreements_dir),
        clock,
        base_url=settings.base_url,
        secret=settings.session_secret.get_secret_value(),
        redirect_hosts=settings.link_redirect_hosts.split(","),
    )


def _channels(settings: Settings, engine: Engine | None, clock: Clock) -> ChannelRuntime:
    """Messenger/WhatsApp adapters, Graph endpoints, inbox and outbox (in-memory SQLite without an engine)."""
    from amanah.adapters.channels.worker import build_runtime

    if engine is None:
        from amanah.adapters.storage.db import make_engine
        from amanah.adapters.storage.schema import metadata
        from amanah.adapters.storage.schema_channels import CHANNEL_TABLES

        engine = make_engine("sqlite://")
        metadata.create_all(engine, tables=list(CHANNEL_TABLES))
    return build_runtime(settings, engine, clock)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
MIN_SESSION_SECRET_BYTES = 32


def check_session_secret(settings: Settings) -> None:
    """Refuse a default or short session secret, except for a demo on a loopback address.

    The secret signs session cookies and Messenger link states: anyone who knows it could forge them.
    """
    secret = settings.session_secret.get_secret_value()
    weak = secret == DEV_SESSION_SECRET or len(secret.encode("utf-8")) < MIN_SESSION_SECRET_BYTES
    if not weak:
        return
    if settings.demo_mode and settings.host.strip().strip("[]").lower() in LOOPBACK_HOSTS:
        return
    raise ConfigurationError(
        "AMANAH_SESSION_SECRET must be set to a random secret of at least "
        f"{MIN_SESSION_SECRET_BYTES} bytes (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`); "
        "the built-in development secret is accepted only in demo mode on a loopback address"
    )


def _web(settings: Settings, clock: Clock, engine: Engine | None) -> tuple[WebSessions, LoginThrottle]:
    """Server-side web sessions and login throttling (in the database when there is one)."""
    from amanah.app.web_sessions import LoginFailureStore, LoginThrottle, WebSessions, WebSessionStore

    sessions: WebSessionStore
    failures: LoginFailureStore
    if engine is None:
        from amanah.adapters.storage.memory_web import InMemoryLoginFailureStore, InMemoryWebSessionStore

        sessions, failures = InMemoryWebSessionStore(), InMemoryLoginFailureStore()
    else:
        from amanah.adapters.storage.sql_web import SqlLoginFailureStore, SqlWebSessionStore

        sessions, failures = SqlWebSessionStore(engine), SqlLoginFailureStore(engine)
    return (
        WebSessions(
            sessions, clock, idle_s=settings.session_max_age_s, absolute_s=settings.session_absolute_s
        ),
        LoginThrottle(failures, clock, secret=settings.session_secret.get_secret_value()),
    )


def _assemble(
    settings: Settings,
    clock: Clock,
    *,
    core: CoreBanking,
    auth: Authenticator,
    conversations: ConversationStore,
    link_store: LinkStore,
    engine: Engine | None,
) -> Container:
    """Everything above storage is wired the same way whatever the storage: this is that wiring."""
    from amanah.entrypoints.web import agents, link, secure, webhooks

    guard = _guard(settings, clock, engine)
    linking = _linking(settings, link_store, clock)
    web_sessions, login_throttle = _web(settings, clock, engine)
    knowledge = _knowledge(settings)
    classifier = _classifier(settings, knowledge)
    return Container(
        settings=settings,
        core=core,
        auth=auth,
        conversations=conversations,
        knowledge=knowledge,
        classifier=classifier,
        clock=clock,
        assistant=_assistant(
            settings,
            core,
            conversations,
            classifier,
            knowledge,
            clock,
            link_url_for=linking.link_url_for,
            handlers={Intent.UNLINK: linking.handle_unlink, Intent.PRIVACY_REPORT: _privacy_report(guard)},
        ),
        guard=guard,
        engine=engine,
        demo_credentials=_demo_credentials(clock.today()) if settings.demo_mode else (),
        routers=[link.router, secure.router, webhooks.router, agents.router],
        linking=linking,
        web_sessions=web_sessions,
        login_throttle=login_throttle,
        channels=_channels(settings, engine, clock),
    )


def build(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    """Wire the production adapters: SQL storage, the built-in core, the packaged NLU and KB."""
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.storage.db import make_engine
    from amanah.adapters.storage.sql_conversations import SqlConversationStore
    from amanah.adapters.storage.sql_core import SqlAuthenticator, SqlCoreBanking
    from amanah.adapters.storage.sql_linking import SqlLinkStore

    settings = settings or Settings()
    check_session_secret(settings)
    clock = clock or SystemClock(settings.timezone)
    engine = make_engine(settings.database_url)
    return _assemble(
        settings,
        clock,
        core=SqlCoreBanking(engine, now=clock.now),
        auth=SqlAuthenticator(engine),
        conversations=SqlConversationStore(engine, now=clock.now),
        link_store=SqlLinkStore(engine),
        engine=engine,
    )


def build_in_memory(
    settings: Settings | None = None, *, clock: Clock | None = None, anchor: date | None = None
) -> Container:
    """A container on in-memory fakes, seeded with the demo bank: for unit tests and quick demos."""
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.core.demo import demo_bank, load_demo_in_memory
    from amanah.adapters.storage.memory import (
        InMemoryAuthenticator,
        InMemoryConversationStore,
        InMemoryCoreBanking,
    )
    from amanah.adapters.storage.memory_linking import InMemoryLinkStore

    settings = settings or Settings(database_url="sqlite://")
    clock = clock or SystemClock(settings.timezone)
    core = InMemoryCoreBanking()
    auth = InMemoryAuthenticator(core)
    load_demo_in_memory(demo_bank(anchor or clock.today()), core, auth)
    return _assemble(
        settings,
        clock,
        core=core,
        auth=auth,
        conversations=InMemoryConversationStore(),
        link_store=InMemoryLinkStore(),
        engine=None,
    )

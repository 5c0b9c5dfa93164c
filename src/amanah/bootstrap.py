"""The composition root: the one place that wires adapters to ports.

``build(settings)`` returns a :class:`Container` whose members every entrypoint uses. Tests build
theirs from in-memory fakes with :func:`build_in_memory`. Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from amanah.app.assistant import Assistant
from amanah.app.ports import Authenticator, Classifier, Clock, ConversationStore, CoreBanking, KnowledgeBase
from amanah.settings import Settings

if TYPE_CHECKING:
    from fastapi import APIRouter
    from fastapi.templating import Jinja2Templates
    from sqlalchemy.engine import Engine


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
    engine: Engine | None = None
    demo_credentials: Sequence[DemoCredential] = ()
    routers: list[RouterFactory] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


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
        DemoCredential(c.username, c.password, f"{c.display_name} ({'العربية' if c.language == 'ar' else 'English'})")
        for c in demo_bank(anchor).customers
    ]


def _assistant(
    settings: Settings,
    core: CoreBanking,
    conversations: ConversationStore,
    classifier: Classifier,
    knowledge: KnowledgeBase,
    clock: Clock,
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
    )


def build(settings: Settings | None = None, *, clock: Clock | None = None) -> Container:
    """Wire the production adapters: SQL storage, the built-in core, the packaged NLU and KB."""
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.storage.db import make_engine
    from amanah.adapters.storage.sql_conversations import SqlConversationStore
    from amanah.adapters.storage.sql_core import SqlAuthenticator, SqlCoreBanking

    settings = settings or Settings()
    clock = clock or SystemClock(settings.timezone)
    engine = make_engine(settings.database_url)
    core = SqlCoreBanking(engine, now=clock.now)
    conversations = SqlConversationStore(engine, now=clock.now)
    knowledge = _knowledge(settings)
    classifier = _classifier(settings, knowledge)
    container = Container(
        settings=settings,
        core=core,
        auth=SqlAuthenticator(engine),
        conversations=conversations,
        knowledge=knowledge,
        classifier=classifier,
        clock=clock,
        assistant=_assistant(settings, core, conversations, classifier, knowledge, clock),
        engine=engine,
        demo_credentials=_demo_credentials(clock.today()),
    )
    return container


def build_in_memory(settings: Settings | None = None, *, clock: Clock | None = None, anchor: date | None = None) -> Container:
    """A container on in-memory fakes, seeded with the demo bank: for unit tests and quick demos."""
    from amanah.adapters.clock import SystemClock
    from amanah.adapters.core.demo import demo_bank, load_demo_in_memory
    from amanah.adapters.storage.memory import (
        InMemoryAuthenticator,
        InMemoryConversationStore,
        InMemoryCoreBanking,
    )

    settings = settings or Settings(database_url="sqlite://")
    clock = clock or SystemClock(settings.timezone)
    core = InMemoryCoreBanking()
    auth = InMemoryAuthenticator(core)
    load_demo_in_memory(demo_bank(anchor or clock.today()), core, auth)
    conversations = InMemoryConversationStore()
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
        assistant=_assistant(settings, core, conversations, classifier, knowledge, clock),
        demo_credentials=_demo_credentials(clock.today()),
    )

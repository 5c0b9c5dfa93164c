"""The composition root: the one place that wires adapters to ports.

``build(settings)`` returns a :class:`Container` whose members every entrypoint uses. Tests build
their own container from in-memory fakes with :func:`build_in_memory`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amanah.app.ports import Authenticator, ConversationStore, CoreBanking, KnowledgeBase
from amanah.settings import Settings


@dataclass
class Container:
    settings: Settings
    core: CoreBanking
    auth: Authenticator
    conversations: ConversationStore
    knowledge: KnowledgeBase
    # assistant: Assistant  (added by the lead once app/assistant.py lands)

"""The ``LinkStore`` port on Python dictionaries, for unit tests. Same rules as ``sql_linking.py``."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from amanah.adapters.storage.records import require_aware
from amanah.domain.conversation import Channel
from amanah.domain.linking import (
    LINKABLE_CHANNELS,
    Binding,
    ConsentMethod,
    ConsentRecord,
    GrantKind,
    LinkGrant,
    WithdrawalMethod,
)


class InMemoryLinkStore:
    """Bindings, consent records (kept for ever) and one-time grants. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._consents: dict[int, ConsentRecord] = {}
        self._bindings: dict[tuple[Channel, str], Binding] = {}
        self._grants: dict[tuple[GrantKind, str], LinkGrant] = {}

    def binding(self, channel: Channel, user_id: str) -> Binding | None:
        with self._lock:
            return self._bindings.get((Channel(channel), user_id))

    def bindings_of(self, customer_id: int) -> Sequence[Binding]:
        with self._lock:
            found = [b for b in self._bindings.values() if b.customer_id == customer_id]
        return sorted(found, key=lambda b: b.consent_id)

    def bind(
        self,
        *,
        channel: Channel,
        user_id: str,
        customer_id: int,
        agreement_id: str,
        agreement_version: str,
        method: ConsentMethod,
        given_at: datetime,
        at: datetime,
    ) -> Binding:
        channel = Channel(channel)
        if channel not in LINKABLE_CHANNELS:
            raise ValueError(f"channel {channel.value!r} cannot be linked")
        given_at = require_aware(given_at, "given_at")
        at = require_aware(at, "at")
        with self._lock:
            self._withdraw((channel, user_id), WithdrawalMethod.RELINKED, at)
            consent = ConsentRecord(
                id=len(self._consents) + 1,
                customer_id=customer_id,
                channel=channel,
                user_id=user_id,
                agreement_id=agreement_id,
                agreement_version=agreement_version,
                method=ConsentMethod(method),
                given_at=given_at,
            )
            self._consents[consent.id] = consent
            binding = Binding(
                channel=channel,
                user_id=user_id,
                customer_id=customer_id,
                consent_id=consent.id,
                linked_at=at,
                agreement_id=agreement_id,
                agreement_version=agreement_version,
                method=consent.method,
            )
            self._bindings[(channel, user_id)] = binding
            return binding

    def _withdraw(self, key: tuple[Channel, str], how: WithdrawalMethod, at: datetime) -> Binding | None:
        binding = self._bindings.pop(key, None)
        if binding is not None:
            consent = self._consents[binding.consent_id]
            self._consents[consent.id] = replace(consent, withdrawn_at=at, withdrawn_how=how)
        return binding

    def unbind(self, channel: Channel, user_id: str, how: WithdrawalMethod, at: datetime) -> Binding | None:
        at = require_aware(at, "at")
        with self._lock:
            return self._withdraw((Channel(channel), user_id), WithdrawalMethod(how), at)

    def unbind_consent(
        self, consent_id: int, customer_id: int, how: WithdrawalMethod, at: datetime
    ) -> Binding | None:
        at = require_aware(at, "at")
        with self._lock:
            for key, binding in self._bindings.items():
                if binding.consent_id == consent_id and binding.customer_id == customer_id:
                    return self._withdraw(key, WithdrawalMethod(how), at)
            return None

    def consents(self, customer_id: int) -> Sequence[ConsentRecord]:
        with self._lock:
            found = [c for c in self._consents.values() if c.customer_id == customer_id]
        return sorted(found, key=lambda c: c.id, reverse=True)

    def add_grant(self, grant: LinkGrant) -> None:
        require_aware(grant.issued_at, "issued_at")
        require_aware(grant.expires_at, "expires_at")
        with self._lock:
            key = (grant.kind, grant.token_hash)
            if key in self._grants:
                raise ValueError("a grant with this hash already exists")
            self._grants[key] = grant

    def grant(self, kind: GrantKind, token_hash: str) -> LinkGrant | None:
        with self._lock:
            return self._grants.get((GrantKind(kind), token_hash))

    def redeem_grant(self, kind: GrantKind, token_hash: str, at: datetime) -> LinkGrant | None:
        at = require_aware(at, "at")
        with self._lock:
            grant = self._grants.get((GrantKind(kind), token_hash))
            if grant is None or not grant.usable(at):
                return None
            used = replace(grant, used_at=at)
            self._grants[(grant.kind, token_hash)] = used
            return used

    def purge_grants(self, before: datetime) -> int:
        before = require_aware(before, "before")
        with self._lock:
            stale = [k for k, g in self._grants.items() if g.expires_at < before]
            for key in stale:
                del self._grants[key]
            return len(stale)

"""The ``LinkStore`` port on Amanah's database (tables in ``schema_linking.py``).

Rules (shared with ``memory_linking.InMemoryLinkStore``; the contract tests hold both to them):

* ``bind`` records the consent and creates the binding in one transaction, serialised per
  (channel, user_id); an existing binding of that user is removed and its consent withdrawn as
  ``relinked`` first.
* ``unbind`` deletes the binding and withdraws its consent in one transaction; ``unbind_consent`` does
  the same only if the binding is still the one made under that consent, by that customer. Consent records are
  never deleted, and the database refuses any other change to them.
* ``redeem_grant`` marks a grant used with a single conditional ``UPDATE``: of two concurrent
  redemptions of the same secret, exactly one succeeds.
* Timestamps are timezone-aware UTC; naive ones are refused with ``ValueError``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, select

from amanah.adapters.storage.db import advisory_lock, write_engine
from amanah.adapters.storage.records import require_aware
from amanah.adapters.storage.schema_linking import channel_bindings, channel_consents, link_grants
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

_BINDING_COLUMNS = (
    channel_bindings.c.channel,
    channel_bindings.c.user_id,
    channel_bindings.c.customer_id,
    channel_bindings.c.consent_id,
    channel_bindings.c.linked_at,
    channel_consents.c.agreement_id,
    channel_consents.c.agreement_version,
    channel_consents.c.method,
)


def _binding(row: Any) -> Binding:  # a row of _BINDING_COLUMNS
    return Binding(
        channel=Channel(row.channel),
        user_id=row.user_id,
        customer_id=row.customer_id,
        consent_id=row.consent_id,
        linked_at=row.linked_at,
        agreement_id=row.agreement_id,
        agreement_version=row.agreement_version,
        method=ConsentMethod(row.method),
    )


def _consent(row: Row[Any]) -> ConsentRecord:
    return ConsentRecord(
        id=row.id,
        customer_id=row.customer_id,
        channel=Channel(row.channel),
        user_id=row.user_id,
        agreement_id=row.agreement_id,
        agreement_version=row.agreement_version,
        method=ConsentMethod(row.method),
        given_at=row.given_at,
        withdrawn_at=row.withdrawn_at,
        withdrawn_how=WithdrawalMethod(row.withdrawn_how) if row.withdrawn_how else None,
    )


def _grant(row: Row[Any]) -> LinkGrant:
    return LinkGrant(
        kind=GrantKind(row.kind),
        token_hash=row.token_hash,
        channel=Channel(row.channel),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        customer_id=row.customer_id,
        user_id=row.user_id,
        context_hash=row.context_hash,
        agreement_id=row.agreement_id,
        agreement_version=row.agreement_version,
        used_at=row.used_at,
    )


def _joined() -> Any:
    return channel_bindings.join(channel_consents, channel_consents.c.id == channel_bindings.c.consent_id)


class SqlLinkStore:
    """The ``LinkStore`` port on ``channel_consents``, ``channel_bindings`` and ``link_grants``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)

    def binding(self, channel: Channel, user_id: str) -> Binding | None:
        with self._engine.connect() as conn:
            row = conn.execute(_binding_of(), {"channel": Channel(channel).value, "user_id": user_id}).first()
        return _binding(row) if row is not None else None

    def bindings_of(self, customer_id: int) -> Sequence[Binding]:
        stmt = (
            select(*_BINDING_COLUMNS)
            .select_from(_joined())
            .where(channel_bindings.c.customer_id == customer_id)
            .order_by(channel_bindings.c.consent_id)
        )
        with self._engine.connect() as conn:
            return [_binding(r) for r in conn.execute(stmt).all()]

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
        method = ConsentMethod(method)
        given_at = require_aware(given_at, "given_at")
        at = require_aware(at, "at")
        with self._writer.begin() as conn:
            advisory_lock(conn, f"amanah:link:{channel.value}:{user_id}")
            self._withdraw(conn, channel, user_id, WithdrawalMethod.RELINKED, at)
            consent_id = conn.execute(
                channel_consents.insert()
                .values(
                    customer_id=customer_id,
                    channel=channel.value,
                    user_id=user_id,
                    agreement_id=agreement_id,
                    agreement_version=agreement_version,
                    method=method.value,
                    given_at=given_at,
                )
                .returning(channel_consents.c.id)
            ).scalar_one()
            conn.execute(
                channel_bindings.insert().values(
                    channel=channel.value,
                    user_id=user_id,
                    customer_id=customer_id,
                    consent_id=consent_id,
                    linked_at=at,
                )
            )
        return Binding(
            channel=channel,
            user_id=user_id,
            customer_id=customer_id,
            consent_id=int(consent_id),
            linked_at=at,
            agreement_id=agreement_id,
            agreement_version=agreement_version,
            method=method,
        )

    @staticmethod
    def _withdraw(
        conn: Connection,
        channel: Channel,
        user_id: str,
        how: WithdrawalMethod,
        at: datetime,
        *,
        consent_id: int | None = None,
    ) -> Binding | None:
        """Remove (channel, user_id)'s binding, only if it was made under ``consent_id`` when given."""
        row = conn.execute(
            select(*_BINDING_COLUMNS)
            .select_from(_joined())
            .where(channel_bindings.c.channel == channel.value, channel_bindings.c.user_id == user_id)
        ).first()
        if row is None or (consent_id is not None and row.consent_id != consent_id):
            return None
        deleted = conn.execute(
            channel_bindings.delete().where(channel_bindings.c.consent_id == row.consent_id)
        ).rowcount
        if deleted != 1:  # someone else withdrew it between our read and delete
            return None
        conn.execute(
            channel_consents.update()
            .where(channel_consents.c.id == row.consent_id, channel_consents.c.withdrawn_at.is_(None))
            .values(withdrawn_at=at, withdrawn_how=how.value)
        )
        return _binding(row)

    def unbind(self, channel: Channel, user_id: str, how: WithdrawalMethod, at: datetime) -> Binding | None:
        channel = Channel(channel)
        how = WithdrawalMethod(how)
        at = require_aware(at, "at")
        with self._writer.begin() as conn:
            advisory_lock(conn, f"amanah:link:{channel.value}:{user_id}")
            return self._withdraw(conn, channel, user_id, how, at)

    def unbind_consent(
        self, consent_id: int, customer_id: int, how: WithdrawalMethod, at: datetime
    ) -> Binding | None:
        how = WithdrawalMethod(how)
        at = require_aware(at, "at")
        with self._engine.connect() as conn:
            found = conn.execute(
                select(channel_bindings.c.channel, channel_bindings.c.user_id).where(
                    channel_bindings.c.consent_id == consent_id,
                    channel_bindings.c.customer_id == customer_id,
                )
            ).first()
        if found is None:
            return None
        channel = Channel(found.channel)
        with self._writer.begin() as conn:
            advisory_lock(conn, f"amanah:link:{channel.value}:{found.user_id}")
            return self._withdraw(conn, channel, found.user_id, how, at, consent_id=consent_id)

    def consents(self, customer_id: int) -> Sequence[ConsentRecord]:
        stmt = (
            select(channel_consents)
            .where(channel_consents.c.customer_id == customer_id)
            .order_by(channel_consents.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [_consent(r) for r in conn.execute(stmt).all()]

    def add_grant(self, grant: LinkGrant) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                link_grants.insert().values(
                    kind=GrantKind(grant.kind).value,
                    token_hash=grant.token_hash,
                    channel=Channel(grant.channel).value,
                    customer_id=grant.customer_id,
                    user_id=grant.user_id,
                    context_hash=grant.context_hash,
                    agreement_id=grant.agreement_id,
                    agreement_version=grant.agreement_version,
                    issued_at=require_aware(grant.issued_at, "issued_at"),
                    expires_at=require_aware(grant.expires_at, "expires_at"),
                    used_at=require_aware(grant.used_at, "used_at") if grant.used_at else None,
                )
            )

    def grant(self, kind: GrantKind, token_hash: str) -> LinkGrant | None:
        stmt = select(link_grants).where(
            link_grants.c.kind == GrantKind(kind).value, link_grants.c.token_hash == token_hash
        )
        with self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _grant(row) if row is not None else None

    def redeem_grant(self, kind: GrantKind, token_hash: str, at: datetime) -> LinkGrant | None:
        at = require_aware(at, "at")
        stmt = (
            link_grants.update()
            .where(
                link_grants.c.kind == GrantKind(kind).value,
                link_grants.c.token_hash == token_hash,
                link_grants.c.used_at.is_(None),
                link_grants.c.expires_at > at,
            )
            .values(used_at=at)
            .returning(*link_grants.c)
        )
        with self._writer.begin() as conn:
            row = conn.execute(stmt).first()
        return _grant(row) if row is not None else None

    def purge_grants(self, before: datetime) -> int:
        before = require_aware(before, "before")
        with self._writer.begin() as conn:
            return int(conn.execute(link_grants.delete().where(link_grants.c.expires_at < before)).rowcount)


@functools.cache
def _binding_of() -> Any:
    """The binding of one (channel, user), built once (values bound at execution)."""
    return (
        select(*_BINDING_COLUMNS)
        .select_from(_joined())
        .where(
            channel_bindings.c.channel == bindparam("channel"),
            channel_bindings.c.user_id == bindparam("user_id"),
        )
    )

"""The disclosure ledger: one hash-chained record per message sent to a third-party platform.

A record says *what kind* of data left, never the data: time, channel, customer, platform user,
``{category: treatment}``, the agreement (id and version) it was sent under, and the SHA-256 of the
exact bytes sent. Each record's ``hash`` is the SHA-256 of its canonical fields, which include the
previous record's hash (``prev_hash``; the first record chains to :data:`GENESIS`). ``seq`` numbers
the records but is not hashed: the order *is* the chain, so moving a record breaks a link.

:func:`verify_chain` walks the chain and reports, as values, every record that was changed, deleted,
inserted or reordered. A plain hash chain cannot notice records cut off the *end*, nor a forged
record appended with a correct hash by someone who can write the table: record the head
(``amanah audit verify`` prints it) somewhere outside the application's reach and pass it back as an
:class:`Anchor` to check that history up to it is intact.

Appends are serialised: on PostgreSQL with a transaction-scoped advisory lock, on SQLite by the
database's single write lock (callers write through :func:`~amanah.adapters.storage.db.write_engine`).
``seq`` is the primary key, so two racing writers can never fork the chain: one of them fails.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, RowMapping, select

from amanah.adapters.storage.db import advisory_lock, write_engine
from amanah.adapters.storage.schema_guard import disclosures
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel

GENESIS = "0" * 64
"""``prev_hash`` of the first record."""

LOCK_NAME = "disclosures"

__all__ = [
    "GENESIS",
    "Anchor",
    "CategoryUse",
    "ChannelReport",
    "Disclosure",
    "DisclosureLedger",
    "InMemoryDisclosureLedger",
    "LedgerRecord",
    "PrivacyReport",
    "Problem",
    "ProblemKind",
    "SqlDisclosureLedger",
    "build_report",
    "chain_hash",
    "verify_chain",
]


# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What is about to be recorded: one message sent to one platform user."""

    at: datetime
    channel: Channel
    customer_id: int | None
    user_id: str
    categories: Mapping[DataCategory, Treatment]
    agreement_id: str
    agreement_version: str
    body_sha256: str


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One stored record. ``categories`` maps category names to treatment names, as stored."""

    seq: int
    at: datetime
    channel: str
    customer_id: int | None
    user_id: str
    categories: Mapping[str, str]
    agreement_id: str
    agreement_version: str
    body_sha256: str
    prev_hash: str
    hash: str

    def canonical(self) -> bytes:
        """The bytes ``hash`` covers: every field but ``seq`` and ``hash``, key-sorted JSON."""
        return _canonical(
            at=self.at,
            channel=self.channel,
            customer_id=self.customer_id,
            user_id=self.user_id,
            categories=self.categories,
            agreement_id=self.agreement_id,
            agreement_version=self.agreement_version,
            body_sha256=self.body_sha256,
            prev_hash=self.prev_hash,
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "channel": self.channel,
            "customer_id": self.customer_id,
            "user_id": self.user_id,
            "categories": dict(sorted(self.categories.items())),
            "agreement_id": self.agreement_id,
            "agreement_version": self.agreement_version,
            "body_sha256": self.body_sha256,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("ledger timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(
    *,
    at: datetime,
    channel: str,
    customer_id: int | None,
    user_id: str,
    categories: Mapping[str, str],
    agreement_id: str,
    agreement_version: str,
    body_sha256: str,
    prev_hash: str,
) -> bytes:
    doc = {
        "at": _iso(at),
        "channel": channel,
        "customer_id": customer_id,
        "user_id": user_id,
        "categories": {str(k): str(v) for k, v in categories.items()},
        "agreement_id": agreement_id,
        "agreement_version": agreement_version,
        "body_sha256": body_sha256,
        "prev_hash": prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(disclosure: Disclosure, prev_hash: str) -> str:
    """The hash a record of ``disclosure`` gets when appended after a record hashed ``prev_hash``."""
    return hashlib.sha256(
        _canonical(
            at=disclosure.at,
            channel=disclosure.channel.value,
            customer_id=disclosure.customer_id,
            user_id=disclosure.user_id,
            categories=_category_names(disclosure.categories),
            agreement_id=disclosure.agreement_id,
            agreement_version=disclosure.agreement_version,
            body_sha256=disclosure.body_sha256,
            prev_hash=prev_hash,
        )
    ).hexdigest()


def _category_names(categories: Mapping[DataCategory, Treatment]) -> dict[str, str]:
    return {DataCategory(c).value: Treatment(t).value for c, t in sorted(categories.items())}


def _record(disclosure: Disclosure, seq: int, prev_hash: str) -> LedgerRecord:
    return LedgerRecord(
        seq=seq,
        at=disclosure.at.astimezone(UTC),
        channel=disclosure.channel.value,
        customer_id=disclosure.customer_id,
        user_id=disclosure.user_id,
        categories=MappingProxyType(_category_names(disclosure.categories)),
        agreement_id=disclosure.agreement_id,
        agreement_version=disclosure.agreement_version,
        body_sha256=disclosure.body_sha256,
        prev_hash=prev_hash,
        hash=chain_hash(disclosure, prev_hash),
    )


# --- verification ---------------------------------------------------------------------------------


class ProblemKind(StrEnum):
    CHANGED = "changed"  # a record's content no longer matches its hash
    DELETED = "deleted"  # records are missing from the chain (or one was replaced wholesale)
    INSERTED = "inserted"  # a record is not part of the chain
    REORDERED = "reordered"  # records are not in chain order
    ANCHOR = "anchor"  # the chain no longer contains a head recorded earlier


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    seq: int  # the record the problem is seen at (0 when it concerns the start of the ledger)
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "seq": self.seq, "message": self.message}


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head recorded earlier: record ``seq`` had hash ``hash``. Parse ``"SEQ:HASH"`` with :meth:`parse`."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, sep, digest = text.strip().partition(":")
        digest = digest.strip().lower()
        if (
            not sep
            or not seq.strip().isdigit()
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise ValueError(
                "an anchor is SEQ:HASH, e.g. 42:3f2a… (the 64 hex digits printed by `audit verify`)"
            )
        return cls(int(seq), digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def verify_chain(records: Iterable[LedgerRecord], anchor: Anchor | None = None) -> list[Problem]:
    """Every problem in ``records`` (any order; sorted by ``seq`` here). An empty list: intact.

    1. Content: each record's hash must be the hash of its own fields (else *changed*).
    2. Chain: starting from :data:`GENESIS`, each record must link to the hash of the one before.
       The chain is walked by links, not by ``seq``; then
       * a record no walk reaches (a second child of some record, with none of its own) was *inserted*;
       * a walk that starts from an unknown hash means records before it are missing: *deleted*
         (or the record before was replaced and re-hashed, which looks the same);
       * records the walk visits in a different order than their ``seq`` were *reordered*.
    3. Anchor: the record at ``anchor.seq`` must still exist with ``anchor.hash``.
    """
    ordered = sorted(records, key=lambda r: r.seq)
    problems: list[Problem] = []
    for r in ordered:
        if r.computed_hash() != r.hash:
            problems.append(
                Problem(
                    ProblemKind.CHANGED,
                    r.seq,
                    f"record #{r.seq} was changed: its content does not match its hash",
                )
            )

    children: dict[str, list[LedgerRecord]] = {}
    for r in ordered:
        children.setdefault(r.prev_hash, []).append(r)
    known = {r.hash for r in ordered}
    referenced = {r.prev_hash for r in ordered}

    def walk(start: LedgerRecord, visited: set[int]) -> list[LedgerRecord]:
        path: list[LedgerRecord] = []
        current: LedgerRecord | None = start
        while current is not None and current.seq not in visited:
            visited.add(current.seq)
            path.append(current)
            kids = [k for k in children.get(current.hash, ()) if k.seq not in visited]
            # On a fork, follow the child that others chain to (the genuine one), then the lowest seq.
            kids.sort(key=lambda k: (k.hash not in referenced, k.seq))
            current = kids[0] if kids else None
        return path

    visited: set[int] = set()
    segments: list[list[LedgerRecord]] = []
    starts = [r for r in ordered if r.prev_hash == GENESIS or r.prev_hash not in known]
    genesis_starts = [r for r in starts if r.prev_hash == GENESIS]
    starts = genesis_starts[:1] + [r for r in starts if r not in genesis_starts[:1]]
    for start in starts:
        if start.seq not in visited:
            segments.append(walk(start, visited))

    previous_end: LedgerRecord | None = None
    for segment in segments:
        head = segment[0]
        if head.prev_hash == GENESIS and previous_end is None:
            pass  # the genuine start of the ledger
        elif head.prev_hash == GENESIS:
            problems.append(
                Problem(
                    ProblemKind.INSERTED,
                    head.seq,
                    f"record #{head.seq} starts a second chain: it was inserted",
                )
            )
        else:
            problems.append(_missing_before(head, ordered))
        previous_end = segment[-1]

    for r in ordered:
        if r.seq not in visited:
            problems.append(
                Problem(
                    ProblemKind.INSERTED,
                    r.seq,
                    f"record #{r.seq} is not part of the chain (no later record links to it): it was inserted",
                )
            )

    walked = [r for segment in segments for r in segment]
    expected = sorted(walked, key=lambda r: r.seq)
    for in_chain, by_seq in zip(walked, expected, strict=True):
        if in_chain.seq != by_seq.seq:
            problems.append(
                Problem(
                    ProblemKind.REORDERED,
                    in_chain.seq,
                    f"record #{in_chain.seq} is out of order: the chain puts it where #{by_seq.seq} is",
                )
            )

    if anchor is not None:
        at = next((r for r in ordered if r.seq == anchor.seq), None)
        if at is None:
            last = ordered[-1].seq if ordered else 0
            problems.append(
                Problem(
                    ProblemKind.ANCHOR,
                    anchor.seq,
                    f"the anchored record #{anchor.seq} is gone (the ledger ends at #{last}): records were deleted",
                )
            )
        elif at.hash != anchor.hash:
            problems.append(
                Problem(
                    ProblemKind.ANCHOR,
                    anchor.seq,
                    f"record #{anchor.seq} no longer has the anchored hash: history up to it was rewritten",
                )
            )
    problems.sort(key=lambda p: (p.seq, p.kind.value))
    return problems


def _missing_before(head: LedgerRecord, ordered: Sequence[LedgerRecord]) -> Problem:
    earlier = [r.seq for r in ordered if r.seq < head.seq]
    before = max(earlier) if earlier else 0
    if head.seq - before > 1:
        first, last = before + 1, head.seq - 1
        which = f"#{first}" if first == last else f"#{first}–#{last}"
        return Problem(ProblemKind.DELETED, head.seq, f"record(s) {which} are missing: deleted")
    if before == 0:
        return Problem(
            ProblemKind.DELETED,
            head.seq,
            f"the records before #{head.seq} are missing: deleted (and renumbered)",
        )
    return Problem(
        ProblemKind.DELETED,
        head.seq,
        f"record #{head.seq} does not link to #{before}: a record between them was deleted "
        f"(and the rest renumbered), or #{before} was replaced",
    )


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryUse:
    """How often one category reached one platform under one treatment."""

    category: DataCategory
    treatment: Treatment
    count: int
    first_at: datetime
    last_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "treatment": self.treatment.value,
            "count": self.count,
            "first_at": _iso(self.first_at),
            "last_at": _iso(self.last_at),
        }


@dataclass(frozen=True, slots=True)
class ChannelReport:
    channel: Channel
    messages: int
    first_at: datetime
    last_at: datetime
    agreements: tuple[str, ...]  # "id@version" of every agreement messages were sent under
    uses: tuple[CategoryUse, ...]  # every category but ``public``, by category then treatment

    @property
    def received(self) -> tuple[CategoryUse, ...]:
        """What the platform could read (shown in clear or masked)."""
        return tuple(u for u in self.uses if u.treatment.reveals)

    @property
    def withheld(self) -> tuple[CategoryUse, ...]:
        """What was kept off the platform (a secure link instead, or nothing)."""
        return tuple(u for u in self.uses if not u.treatment.reveals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel.value,
            "messages": self.messages,
            "first_at": _iso(self.first_at),
            "last_at": _iso(self.last_at),
            "agreements": list(self.agreements),
            "received": [u.to_dict() for u in self.received],
            "withheld": [u.to_dict() for u in self.withheld],
        }


@dataclass(frozen=True, slots=True)
class PrivacyReport:
    """What each third-party platform received about one customer, from the ledger."""

    customer_id: int
    channel: Channel | None  # the filter asked for, if any
    channels: tuple[ChannelReport, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "channel": self.channel.value if self.channel else None,
            "channels": [c.to_dict() for c in self.channels],
        }


def build_report(
    customer_id: int, records: Iterable[LedgerRecord], channel: Channel | None = None
) -> PrivacyReport:
    """Aggregate ``records`` (of any customers) into ``customer_id``'s report, optionally for one channel."""
    per_channel: dict[str, list[LedgerRecord]] = {}
    for r in records:
        if r.customer_id != customer_id or (channel is not None and r.channel != channel.value):
            continue
        per_channel.setdefault(r.channel, []).append(r)
    reports: list[ChannelReport] = []
    for name in sorted(per_channel):
        rows = sorted(per_channel[name], key=lambda r: r.seq)
        uses: dict[tuple[DataCategory, Treatment], list[datetime]] = {}
        for r in rows:
            for cat_name, treat_name in r.categories.items():
                try:
                    cat, treat = DataCategory(cat_name), Treatment(treat_name)
                except ValueError:
                    continue  # a category retired from the taxonomy: still in the chain, not in the report
                if cat is DataCategory.PUBLIC:
                    continue
                uses.setdefault((cat, treat), []).append(r.at)
        order = {c: i for i, c in enumerate(DataCategory)}
        reports.append(
            ChannelReport(
                channel=Channel(name),
                messages=len(rows),
                first_at=min(r.at for r in rows),
                last_at=max(r.at for r in rows),
                agreements=tuple(dict.fromkeys(f"{r.agreement_id}@{r.agreement_version}" for r in rows)),
                uses=tuple(
                    CategoryUse(cat, treat, len(times), min(times), max(times))
                    for (cat, treat), times in sorted(
                        uses.items(), key=lambda kv: (order[kv[0][0]], kv[0][1].value)
                    )
                ),
            )
        )
    return PrivacyReport(customer_id, channel, tuple(reports))


# --- stores ---------------------------------------------------------------------------------------


class DisclosureLedger(Protocol):
    def append(self, conn: Any, disclosure: Disclosure) -> LedgerRecord:
        """Append one record inside the caller's transaction ``conn`` (``None``: a transaction of its own)."""
        ...

    def lock(self, conn: Any) -> None:
        """Take the append lock at the start of ``conn``'s transaction (before any row lock)."""
        ...

    def records(
        self, customer_id: int | None = None, channel: Channel | None = None
    ) -> Sequence[LedgerRecord]:
        """Stored records in ``seq`` order, optionally only one customer's / one channel's."""
        ...

    def head(self) -> LedgerRecord | None: ...

    def verify(self, anchor: Anchor | None = None) -> list[Problem]: ...

    def report(self, customer_id: int, channel: Channel | None = None) -> PrivacyReport: ...


class InMemoryDisclosureLedger:
    """The ledger in a list, for unit tests and :func:`~amanah.bootstrap.build_in_memory`.

    ``rows`` is exposed on purpose: tests tamper with it to check :meth:`verify`.
    """

    def __init__(self) -> None:
        self.rows: list[LedgerRecord] = []
        self._lock = threading.Lock()

    def lock(self, conn: Any) -> None:
        """Nothing to take: appends are serialised by the list's own lock."""

    def append(self, conn: Any, disclosure: Disclosure) -> LedgerRecord:
        with self._lock:
            last = max(self.rows, key=lambda r: r.seq) if self.rows else None
            record = _record(disclosure, last.seq + 1 if last else 1, last.hash if last else GENESIS)
            self.rows.append(record)
            return record

    def records(
        self, customer_id: int | None = None, channel: Channel | None = None
    ) -> Sequence[LedgerRecord]:
        return [
            r
            for r in sorted(self.rows, key=lambda r: r.seq)
            if (customer_id is None or r.customer_id == customer_id)
            and (channel is None or r.channel == channel.value)
        ]

    def head(self) -> LedgerRecord | None:
        return max(self.rows, key=lambda r: r.seq) if self.rows else None

    def verify(self, anchor: Anchor | None = None) -> list[Problem]:
        return verify_chain(self.rows, anchor)

    def report(self, customer_id: int, channel: Channel | None = None) -> PrivacyReport:
        return build_report(customer_id, self.records(customer_id, channel), channel)


# Built once: statements built per call cost SQLAlchemy a cache-key walk on every append.
_HEAD = select(disclosures.c.seq, disclosures.c.hash).order_by(disclosures.c.seq.desc()).limit(1)
_INSERT = disclosures.insert()
_HEAD_KEY = "amanah_ledger_head"  # Connection.info: (transaction, seq, hash) of the last append in it


class SqlDisclosureLedger:
    """The ledger in the ``disclosures`` table (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, conn: Connection | None, disclosure: Disclosure) -> LedgerRecord:
        """Append in ``conn``'s transaction; on SQLite that transaction must come from ``write_engine``."""
        if conn is None:
            with write_engine(self.engine).begin() as own:
                return self._append(own, disclosure)
        return self._append(conn, disclosure)

    @staticmethod
    def lock(conn: Connection) -> None:
        """Take the ledger's append lock now, at the start of a transaction that will append.

        A transaction that appends after taking row locks could deadlock with another doing the same
        in the other order (PostgreSQL; on SQLite the write lock is already held from ``BEGIN``).
        Taken first, it makes such transactions queue instead. Held until the transaction ends.
        """
        advisory_lock(conn, LOCK_NAME)

    @staticmethod
    def _append(conn: Connection, disclosure: Disclosure) -> LedgerRecord:
        # The head is read once per transaction: the lock taken here (SQLite: the write lock) is held
        # until the transaction ends, so no one else can append in between; a batch of replies then
        # costs one read, not one per record.
        transaction = conn.get_transaction()
        cached = conn.info.get(_HEAD_KEY) if transaction is not None else None
        if cached is not None and cached[0] is transaction:
            seq, prev = cached[1], cached[2]
        else:
            advisory_lock(conn, LOCK_NAME)
            last = conn.execute(_HEAD).first()
            seq, prev = (int(last.seq), str(last.hash)) if last else (0, GENESIS)
        record = _record(disclosure, seq + 1, prev)
        conn.execute(
            _INSERT,
            {
                "seq": record.seq,
                "at": record.at,
                "channel": record.channel,
                "customer_id": record.customer_id,
                "user_id": record.user_id,
                "categories": dict(record.categories),
                "agreement_id": record.agreement_id,
                "agreement_version": record.agreement_version,
                "body_sha256": record.body_sha256,
                "prev_hash": record.prev_hash,
                "hash": record.hash,
            },
        )
        if transaction is not None:  # a commit-as-you-go connection has none yet: no cache
            conn.info[_HEAD_KEY] = (transaction, record.seq, record.hash)  # only once it is written
        return record

    def records(
        self, customer_id: int | None = None, channel: Channel | None = None
    ) -> Sequence[LedgerRecord]:
        query = select(disclosures).order_by(disclosures.c.seq)
        if customer_id is not None:
            query = query.where(disclosures.c.customer_id == customer_id)
        if channel is not None:
            query = query.where(disclosures.c.channel == channel.value)
        with self.engine.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).mappings()]

    def head(self) -> LedgerRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(disclosures).order_by(disclosures.c.seq.desc()).limit(1))
                .mappings()
                .first()
            )
        return _from_row(row) if row is not None else None

    def verify(self, anchor: Anchor | None = None) -> list[Problem]:
        return verify_chain(self.records(), anchor)

    def report(self, customer_id: int, channel: Channel | None = None) -> PrivacyReport:
        return build_report(customer_id, self.records(customer_id, channel), channel)


def _from_row(row: RowMapping) -> LedgerRecord:
    categories = row["categories"]
    if isinstance(categories, str):  # a JSON column read back as text by a foreign tool
        categories = json.loads(categories)
    return LedgerRecord(
        seq=int(row["seq"]),
        at=row["at"],
        channel=str(row["channel"]),
        customer_id=int(row["customer_id"]) if row["customer_id"] is not None else None,
        user_id=str(row["user_id"]),
        categories=MappingProxyType({str(k): str(v) for k, v in dict(categories or {}).items()}),
        agreement_id=str(row["agreement_id"]),
        agreement_version=str(row["agreement_version"]),
        body_sha256=str(row["body_sha256"]),
        prev_hash=str(row["prev_hash"]),
        hash=str(row["hash"]),
    )

"""Password hashing (scrypt, per-user salt) and the SQL authenticator's storage."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from amanah.adapters.storage.passwords import hash_password, needs_rehash, verify_password
from amanah.adapters.storage.schema import customers
from amanah.adapters.storage.sql_core import SqlAuthenticator

FAST = 2**10  # low scrypt cost keeps these tests quick; the format is the same


def test_hash_format_and_no_plaintext() -> None:
    """A hash reads scrypt$n$r$p$salt$key and does not contain the password."""
    encoded = hash_password("correct horse", n=FAST)
    prefix, n, r, p, salt, key = encoded.split("$")
    assert (prefix, n, r, p) == ("scrypt", str(FAST), "8", "1")
    assert salt and key and "correct horse" not in encoded
    assert len(encoded) <= 255


def test_hashes_are_salted() -> None:
    """The same password hashes differently each time, and both hashes verify."""
    a, b = hash_password("same", n=FAST), hash_password("same", n=FAST)
    assert a != b
    assert verify_password("same", a) and verify_password("same", b)


def test_verify_rejects_wrong_passwords() -> None:
    """A different, truncated or differently-cased password does not verify."""
    encoded = hash_password("Sesame-1", n=FAST)
    assert verify_password("Sesame-1", encoded)
    for wrong in ("sesame-1", "Sesame-", "Sesame-1 ", ""):
        assert not verify_password(wrong, encoded)


def test_unicode_passwords_work() -> None:
    """Arabic passwords hash and verify like any other."""
    encoded = hash_password("كلمة-سر-٢٠٢٦", n=FAST)
    assert verify_password("كلمة-سر-٢٠٢٦", encoded)
    assert not verify_password("كلمة-سر-2026", encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain",
        "bcrypt$16384$8$1$c2FsdA$a2V5",
        "scrypt$16384$8$1$c2FsdA$a2V5",  # key too short
        "scrypt$3$8$1$c2FsdA$" + "A" * 43,  # n not a power of two
        "scrypt$1099511627776$8$1$c2FsdA$" + "A" * 43,  # absurd cost
        "scrypt$x$8$1$c2FsdA$" + "A" * 43,
    ],
)
def test_verify_rejects_malformed_hashes(encoded: str) -> None:
    """A malformed or foreign hash never verifies and never raises."""
    assert verify_password("anything", encoded) is False


def test_oversized_passwords_are_refused() -> None:
    """Passwords over 1024 characters are refused before any hashing work."""
    with pytest.raises(ValueError):
        hash_password("x" * 1025, n=FAST)
    assert verify_password("x" * 1025, hash_password("x", n=FAST)) is False


def test_needs_rehash_flags_weaker_parameters() -> None:
    """Hashes made with a lower cost than today's default are flagged for rehashing."""
    assert needs_rehash(hash_password("p", n=FAST))
    assert not needs_rehash(hash_password("p"))
    assert needs_rehash("garbage")


def test_sql_authenticator_uses_the_stored_hash(seeded_engine: Engine) -> None:
    """Changing the stored hash changes which password works; the username is case-insensitive."""
    auth = SqlAuthenticator(seeded_engine)
    assert auth.authenticate("SARA", "demo-sara-2026") is not None
    with seeded_engine.begin() as conn:
        conn.execute(
            customers.update()
            .where(customers.c.username == "sara")
            .values(password_hash=hash_password("new-secret", n=FAST))
        )
        stored = conn.execute(
            select(customers.c.password_hash).where(customers.c.username == "sara")
        ).scalar()
    assert stored is not None and "new-secret" not in stored
    assert auth.authenticate("sara", "demo-sara-2026") is None
    customer = auth.authenticate("sara", "new-secret")
    assert customer is not None and customer.display_name == "Sara Khalil"

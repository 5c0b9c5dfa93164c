"""Password hashing for the built-in core bank: scrypt from the standard library, per-user salt.

Stored format (ASCII, at most 255 characters)::

    scrypt$<n>$<r>$<p>$<salt, base64url without padding>$<key, base64url without padding>

for example ``scrypt$16384$8$1$kK3v...$Zt9Q...``. The cost parameters travel with each hash, so they
can be raised later without invalidating existing hashes (see :func:`needs_rehash`). The salt is 16
random bytes, the key 32 bytes. Verification recomputes the key and compares it in constant time.
The password itself is never stored or logged.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

DEFAULT_N = 2**14  # CPU/memory cost: about 16 MiB and a few tens of milliseconds per hash
DEFAULT_R = 8
DEFAULT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAX_PASSWORD_CHARS = 1024  # longer input is refused before hashing: no hashing-cost amplification
_MAX_N = 2**20
_PREFIX = "scrypt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 1024 * 1024, dklen=_KEY_BYTES
    )


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """Hash ``password`` with a fresh random salt; returns the encoded string described above."""
    if not password or len(password) > _MAX_PASSWORD_CHARS:
        raise ValueError("password must be 1 to 1024 characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"{_PREFIX}${n}${r}${p}${_b64(salt)}${_b64(_derive(password, salt, n, r, p))}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False for a wrong password or a malformed hash."""
    if not password or len(password) > _MAX_PASSWORD_CHARS:
        return False
    try:
        prefix, n_s, r_s, p_s, salt_s, key_s = encoded.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt, expected = _unb64(salt_s), _unb64(key_s)
    except (ValueError, TypeError):
        return False
    if prefix != _PREFIX or not (2 <= n <= _MAX_N) or n & (n - 1) or not (1 <= r <= 32) or not (1 <= p <= 16):
        return False
    if len(expected) != _KEY_BYTES or not salt:
        return False
    return hmac.compare_digest(_derive(password, salt, n, r, p), expected)


def needs_rehash(encoded: str) -> bool:
    """True when ``encoded`` was made with weaker parameters than today's defaults."""
    try:
        prefix, n_s, r_s, p_s, *_ = encoded.split("$")
        return prefix != _PREFIX or (int(n_s), int(r_s), int(p_s)) < (DEFAULT_N, DEFAULT_R, DEFAULT_P)
    except ValueError:
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the username is unknown, so a miss costs as much as a hit."""
    return hash_password(secrets.token_urlsafe(16))

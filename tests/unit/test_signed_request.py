"""Conformance E6 of docs/messenger-platform.md §10: the Messenger Extensions signed_request verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amanah.adapters.channels import meta
from amanah.adapters.channels.meta import SecretMatch, SignedRequestError, verify_signed_request

SECRET = "test-app-secret-not-real"
# §2.9 test vector, exactly as given (composed; secret test-app-secret-not-real)
VECTOR = (
    "9oMF-enrIYfMxLtv6P6f6rBEJ9p5tbafFd1CsXWs7jU.eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsImlzc3VlZF9hdCI6MTc2N"
    "zIyNTYwMCwicGFnZV9pZCI6IjEwMDAwMDAwMDAwMDAwMDEiLCJwc2lkIjoiMjAwMDAwMDAwMDAwMDAwMiIsInRocmVhZF90eXBlIjo"
    "iVVNFUl9UT19QQUdFIiwidGlkIjoiMjAwMDAwMDAwMDAwMDAwMiJ9"
)
VECTOR_PAYLOAD = {
    "algorithm": "HMAC-SHA256",
    "issued_at": 1767225600,
    "page_id": "1000000000000001",
    "psid": "2000000000000002",
    "thread_type": "USER_TO_PAGE",
    "tid": "2000000000000002",
}
ISSUED = datetime.fromtimestamp(1767225600, UTC)
NEAR = ISSUED + timedelta(seconds=30)
PAGE = "1000000000000001"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _sign_raw(payload_b64: str, secret: str = SECRET) -> str:
    return _b64(hmac.new(secret.encode(), payload_b64.encode(), hashlib.sha256).digest()) + "." + payload_b64


def _signed(secret: str = SECRET, **changes: Any) -> str:
    return meta.sign_request({**VECTOR_PAYLOAD, **changes}, secret)


def _reason(signed_request: object, **kwargs: Any) -> str:
    kwargs.setdefault("now", NEAR)
    with pytest.raises(SignedRequestError) as caught:
        verify_signed_request(signed_request, kwargs.pop("secrets", SECRET), **kwargs)
    return caught.value.reason


def test_e6_spec_vector_is_accepted_near_its_issued_at() -> None:
    """E6: §2.9's vector verifies at a time near issued_at and gives its payload, for our Page."""
    context = verify_signed_request(VECTOR, SECRET, now=NEAR, page_id=PAGE)
    assert (context.psid, context.page_id, context.thread_type, context.tid) == (
        "2000000000000002",
        PAGE,
        "USER_TO_PAGE",
        "2000000000000002",
    )
    assert context.issued_at == ISSUED and context.secret is SecretMatch.CURRENT


def test_e6_sign_request_reproduces_the_spec_vector() -> None:
    """The test helper signs exactly as Meta does: it reproduces §2.9's vector byte for byte."""
    assert meta.sign_request(VECTOR_PAYLOAD, SECRET) == VECTOR


def test_e6_tampered_spec_vector_payload_is_rejected() -> None:
    """E6: the vector's MAC with a payload naming another PSID does not verify."""
    mac, payload = VECTOR.split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["psid"] = "2000000000000099"
    assert _reason(mac + "." + _b64(json.dumps(doc, separators=(",", ":")).encode())) == "bad_signature"


def test_e6_tampered_spec_vector_mac_is_rejected() -> None:
    """E6: one character of the vector's MAC changed does not verify."""
    flipped = ("A" if VECTOR[0] != "A" else "B") + VECTOR[1:]
    assert _reason(flipped) == "bad_signature"


def test_e6_spec_vector_is_rejected_with_another_secret() -> None:
    """E6: the vector does not verify under any other app secret."""
    assert _reason(VECTOR, secrets="another-app-secret") == "bad_signature"


def test_e6_stale_spec_vector_is_rejected() -> None:
    """E6: the vector is refused once issued_at is more than 5 minutes old (300 s is still fine)."""
    assert verify_signed_request(VECTOR, SECRET, now=ISSUED + timedelta(seconds=300)).psid
    assert _reason(VECTOR, now=ISSUED + timedelta(seconds=301)) == "stale"
    assert _reason(VECTOR, now=ISSUED + timedelta(days=1)) == "stale"


def test_e6_future_issued_at_is_rejected_beyond_the_clock_skew() -> None:
    """E6: issued_at up to 60 s in our future is clock skew; further ahead is refused."""
    assert verify_signed_request(VECTOR, SECRET, now=ISSUED - timedelta(seconds=60)).psid
    assert _reason(VECTOR, now=ISSUED - timedelta(seconds=61)) == "future"


def test_e6_max_age_and_skew_are_parameters() -> None:
    """A caller may choose a shorter age or skew allowance."""
    assert _reason(VECTOR, max_age_s=10) == "stale"
    assert _reason(VECTOR, now=ISSUED - timedelta(seconds=5), max_skew_s=0) == "future"


def test_e6_base64url_with_or_without_padding_is_accepted() -> None:
    """E6: padded base64url (MAC part, or both parts when the signer padded) verifies like unpadded."""
    mac, payload = VECTOR.split(".")
    padded_mac = mac + "=" * (-len(mac) % 4)
    assert padded_mac != mac
    assert verify_signed_request(padded_mac + "." + payload, SECRET, now=NEAR).psid == "2000000000000002"
    body = json.dumps({**VECTOR_PAYLOAD, "psid": "20000000000000021"}, separators=(",", ":")).encode()
    padded_payload = base64.urlsafe_b64encode(body).decode()
    assert padded_payload.endswith("=")
    assert verify_signed_request(_sign_raw(padded_payload), SECRET, now=NEAR).psid == "20000000000000021"


def test_e6_page_id_must_match_when_configured() -> None:
    """E6: with a configured Page id, a signed_request for another Page (or none) is refused."""
    assert _reason(_signed(page_id="1000000000000099"), page_id=PAGE) == "wrong_page"
    assert _reason(_signed(page_id=None), page_id=PAGE) == "wrong_page"
    assert verify_signed_request(_signed(page_id="1000000000000099"), SECRET, now=NEAR).psid


@pytest.mark.parametrize("algorithm", ["HMAC-SHA1", "hmac-sha256", "none", None, 1])
def test_e6_other_algorithms_are_rejected(algorithm: object) -> None:
    """E6: a correctly signed payload that does not say algorithm HMAC-SHA256 is refused."""
    assert _reason(_signed(algorithm=algorithm)) == "algorithm"


@pytest.mark.parametrize(
    "value",
    [
        None,
        123,
        b"abc.def",
        "",
        "no-dot-at-all",
        "a.b.c",
        ".",
        VECTOR.split(".")[0] + ".",
        "." + VECTOR.split(".")[1],
        "é" + VECTOR,
        VECTOR.replace("-", "+"),
        VECTOR + "x",
        "AAAA." + VECTOR.split(".")[1],
        "x" * 5000 + "." + "y",
        VECTOR.split(".")[0] + ".%7B%7D",
    ],
)
def test_e6_malformed_input_is_a_clear_error(value: object) -> None:
    """E6: malformed input raises SignedRequestError('malformed') (status 400), never another exception."""
    assert _reason(value) == "malformed"
    with pytest.raises(SignedRequestError) as caught:
        verify_signed_request(value, SECRET, now=NEAR)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "payload_b64",
    [
        _b64(b"not json"),
        _b64(b"[1,2,3]"),
        _b64(b"\xff\xfe"),
        _b64(json.dumps({"algorithm": "HMAC-SHA256", "psid": "2000000000000002"}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "issued_at": "soon"}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "issued_at": True}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "issued_at": 1767225600.5}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "psid": ""}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "psid": "2000 0002"}).encode()),
        _b64(json.dumps({**VECTOR_PAYLOAD, "psid": ["2000000000000002"]}).encode()),
    ],
    ids=[
        "text",
        "array",
        "not-utf8",
        "no-issued-at",
        "issued-at-text",
        "issued-at-bool",
        "issued-at-float",
        "empty-psid",
        "psid-with-space",
        "psid-list",
    ],
)
def test_e6_correctly_signed_but_malformed_payload_is_refused(payload_b64: str) -> None:
    """E6: even with a valid MAC, a payload that is not a well-formed context is refused as malformed."""
    assert _reason(_sign_raw(payload_b64)) == "malformed"


def test_e6_a_numeric_psid_is_read_as_a_string() -> None:
    """A PSID sent as a JSON number is accepted as its decimal string."""
    assert verify_signed_request(_signed(psid=2000000000000002), SECRET, now=NEAR).psid == "2000000000000002"


def test_e6_failed_verification_is_a_403() -> None:
    """Every refusal other than malformed input is a failed verification: status 403."""
    with pytest.raises(SignedRequestError) as caught:
        verify_signed_request(VECTOR, SECRET, now=ISSUED + timedelta(hours=1))
    assert (caught.value.reason, caught.value.status) == ("stale", 403)


def test_e6_no_app_secret_rejects_everything() -> None:
    """With no app secret configured, nothing verifies, not even a request 'signed' with the empty key."""
    assert _reason(VECTOR, secrets="") == "bad_signature"
    assert _reason(_signed(secret=""), secrets="") == "bad_signature"


# --- B9 applies to signed_request too --------------------------------------------------------------

UNTIL = ISSUED + timedelta(minutes=1)
ROTATING = meta.AppSecrets("new-app-secret-not-real", SECRET, UNTIL)


def test_b9_signed_request_on_the_previous_secret_is_accepted_inside_the_window() -> None:
    """B9/E6: during a rotation the vector (signed with the old secret) verifies and says so."""
    context = verify_signed_request(VECTOR, ROTATING, now=NEAR)
    assert context.secret is SecretMatch.PREVIOUS
    new = _signed(secret="new-app-secret-not-real")
    assert verify_signed_request(new, ROTATING, now=NEAR).secret is SecretMatch.CURRENT


def test_b9_signed_request_on_the_previous_secret_is_refused_after_the_window() -> None:
    """B9/E6: from previous_until on, a signed_request made with the previous secret does not verify."""
    assert _reason(VECTOR, secrets=ROTATING, now=UNTIL) == "bad_signature"
    assert _reason(_signed(secret="third-app-secret-not-real"), secrets=ROTATING) == "bad_signature"

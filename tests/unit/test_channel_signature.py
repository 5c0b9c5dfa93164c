"""Conformance A (handshake) and B (signature) of docs/messenger-platform.md §10, adapter level."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError as PydanticValidationError

from amanah.adapters.channels import meta
from amanah.adapters.channels.base import ChannelAdapter, MalformedPayload
from amanah.adapters.channels.messenger import MessengerAdapter
from amanah.adapters.channels.messenger import app_secrets as messenger_secrets
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.adapters.channels.whatsapp import app_secrets as whatsapp_secrets
from amanah.settings import Settings

SECRET = "test-app-secret-not-real"
# §2.4 test vector: exactly these 267 bytes, no trailing newline.
VECTOR_BODY = (
    b'{"object":"page","entry":[{"id":"1000000000000001","time":1767225600123,"messaging":[{"sender":'
    b'{"id":"2000000000000002"},"recipient":{"id":"1000000000000001"},"timestamp":1767225600000,'
    b'"message":{"mid":"m_TEST_0001","text":"Gr\\u00fc\\u00dfe, what is my balance?"}}]}]}'
)
VECTOR_SIG = "sha256=ac86575f34471f2ae2660731c66d914a8104fd315592b0c339d0b1cbca3b1e0f"
VECTOR_SHA1 = "sha1=3695e9e05c45b5cfd097d049ac2371395c188eb4"
REENCODED_SHA256 = "8c2acddd65778e3b1a63f1738371f4a27037bcc6e2e239fc6118b55f36c06556"


def adapters() -> list[ChannelAdapter]:
    return [
        MessengerAdapter("vt-9c1e", SECRET),
        WhatsAppAdapter("vt-9c1e", SECRET, "400000000000004"),
    ]


@pytest.mark.parametrize("adapter", adapters(), ids=lambda a: a.name.value)
def test_a1_handshake_echoes_challenge(adapter: ChannelAdapter) -> None:
    """A1: subscribe mode with the right token returns the challenge exactly."""
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt-9c1e", "hub.challenge": "1158201444"}
    assert adapter.verify_handshake(params) == "1158201444"


@pytest.mark.parametrize("adapter", adapters(), ids=lambda a: a.name.value)
def test_a2_handshake_wrong_token_refused(adapter: ChannelAdapter) -> None:
    """A2: a wrong verify token gives no challenge (the route answers 403)."""
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt-9c1f", "hub.challenge": "1158201444"}
    assert adapter.verify_handshake(params) is None


@pytest.mark.parametrize(
    "params",
    [
        {"hub.verify_token": "vt-9c1e", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "vt-9c1e", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "vt-9c1e"},
    ],
)
def test_a3_handshake_missing_or_other_mode_refused(params: dict[str, str]) -> None:
    """A3: a missing hub.mode, another mode, or a missing token/challenge is refused."""
    assert MessengerAdapter("vt-9c1e", SECRET).verify_handshake(params) is None


def test_a3_empty_configured_token_refuses_everything() -> None:
    """A3: with no verify token configured, even an empty given token is refused."""
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    assert MessengerAdapter("", SECRET).verify_handshake(params) is None


def test_a4_token_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A4: the verify token comparison goes through hmac.compare_digest (constant time)."""
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    params = {"hub.mode": "subscribe", "hub.verify_token": "vt-9c1e", "hub.challenge": "7"}
    assert MessengerAdapter("vt-9c1e", SECRET).verify_handshake(params) == "7"
    assert seen == [(b"vt-9c1e", b"vt-9c1e")]


@pytest.mark.parametrize("adapter", adapters(), ids=lambda a: a.name.value)
def test_b1_spec_test_vector_accepted(adapter: ChannelAdapter) -> None:
    """B1: the §2.4 test vector (267 raw bytes) verifies."""
    assert len(VECTOR_BODY) == 267
    assert adapter.signature_header == "X-Hub-Signature-256"
    assert adapter.verify_signature(VECTOR_BODY, VECTOR_SIG)


def test_b2_reserialized_body_rejected() -> None:
    """B2: the same JSON re-serialized (literal ü, other order/whitespace) fails with the original header."""
    adapter = MessengerAdapter("vt", SECRET)
    doc = json.loads(VECTOR_BODY)
    literal = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert hmac.new(SECRET.encode(), literal, hashlib.sha256).hexdigest() == REENCODED_SHA256
    assert not adapter.verify_signature(literal, VECTOR_SIG)
    reordered = json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
    assert not adapter.verify_signature(reordered, VECTOR_SIG)


def test_b3_flipped_hex_char_rejected() -> None:
    """B3: one flipped hex character in the signature is rejected."""
    flipped = VECTOR_SIG[:-1] + ("0" if VECTOR_SIG[-1] != "0" else "1")
    assert not MessengerAdapter("vt", SECRET).verify_signature(VECTOR_BODY, flipped)


@pytest.mark.parametrize("header", [None, ""])
def test_b4_missing_header_rejected(header: str | None) -> None:
    """B4: no signature header fails closed."""
    assert not MessengerAdapter("vt", SECRET).verify_signature(VECTOR_BODY, header)


def test_b5_legacy_sha1_rejected() -> None:
    """B5: a valid legacy sha1= signature is not accepted in place of sha256."""
    expected_sha1 = "sha1=" + hmac.new(SECRET.encode(), VECTOR_BODY, hashlib.sha1).hexdigest()
    assert expected_sha1 == VECTOR_SHA1
    assert not MessengerAdapter("vt", SECRET).verify_signature(VECTOR_BODY, VECTOR_SHA1)


@pytest.mark.parametrize(
    "header",
    [
        "md5=" + VECTOR_SIG[7:],
        "SHA256=" + VECTOR_SIG[7:],
        "sha512=" + VECTOR_SIG[7:],
        "sha256 =" + VECTOR_SIG[7:],
        VECTOR_SIG + "00",
        VECTOR_SIG[:-2],
        "sha256=" + "zz" * 32,
        VECTOR_SIG[7:],
    ],
)
def test_b6_other_prefix_or_malformed_rejected(header: str) -> None:
    """B6: any prefix but the literal sha256=, or a digest not 64 hex chars, is rejected."""
    assert not MessengerAdapter("vt", SECRET).verify_signature(VECTOR_BODY, header)


def test_b6_uppercase_hex_digest_accepted() -> None:
    """B6 (documented choice): an uppercase hex digest is the same MAC and is accepted."""
    assert MessengerAdapter("vt", SECRET).verify_signature(VECTOR_BODY, "sha256=" + VECTOR_SIG[7:].upper())


def test_b7_bad_signature_on_malformed_json_is_just_false() -> None:
    """B7: authentication does not parse: bad signature + malformed JSON gives False, no exception."""
    adapter = MessengerAdapter("vt", SECRET)
    assert adapter.verify_signature(b"{not json", VECTOR_SIG) is False
    with pytest.raises(MalformedPayload):
        adapter.parse(b"{not json")


def test_b8_large_body_verifies() -> None:
    """B8 (adapter part): a 400 KB body signs and verifies; the 1 MiB cap is the route's job."""
    body = b'{"object":"page","entry":[],"pad":"' + b"x" * 400_000 + b'"}'
    adapter = MessengerAdapter("vt", SECRET)
    assert adapter.verify_signature(body, meta.hub_signature(body, SECRET))


def test_b9_rotation_accepts_old_and_new_secret() -> None:
    """B9: during rotation, bodies signed with the old or the new secret both verify; others do not."""
    adapter = MessengerAdapter("vt", ["new-secret", "old-secret"])
    assert adapter.verify_signature(VECTOR_BODY, meta.hub_signature(VECTOR_BODY, "new-secret"))
    assert adapter.verify_signature(VECTOR_BODY, meta.hub_signature(VECTOR_BODY, "old-secret"))
    assert not adapter.verify_signature(VECTOR_BODY, meta.hub_signature(VECTOR_BODY, "third-secret"))


@pytest.mark.parametrize("secrets", ["", [], ["", ""]])
def test_empty_app_secret_rejects_everything(secrets: str | list[str]) -> None:
    """With no app secret configured, even a body "signed" with the empty key is rejected."""
    adapter = WhatsAppAdapter("vt", secrets, "400000000000004")
    assert not adapter.verify_signature(VECTOR_BODY, meta.hub_signature(VECTOR_BODY, ""))
    assert not adapter.verify_signature(VECTOR_BODY, VECTOR_SIG)


# --- B9: app secret rotation with a deadline ------------------------------------------------------

NEW, OLD, THIRD = "new-app-secret-not-real", "old-app-secret-not-real", "third-app-secret-not-real"
UNTIL = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
ROTATING = meta.AppSecrets(NEW, OLD, UNTIL)


def _sig(secret: str) -> str:
    return meta.hub_signature(VECTOR_BODY, secret)


def _previous_used(channel: str, use: str = "webhook") -> float:
    labels = {"channel": channel, "use": use}
    return REGISTRY.get_sample_value("amanah_app_secret_previous_used_total", labels) or 0.0


def test_b9_match_says_which_secret_verified() -> None:
    """B9: inside the window the current secret matches as current, the previous one as previous."""
    inside = UNTIL - timedelta(seconds=1)
    assert meta.match_hub_signature(VECTOR_BODY, _sig(NEW), ROTATING, inside) is meta.SecretMatch.CURRENT
    assert meta.match_hub_signature(VECTOR_BODY, _sig(OLD), ROTATING, inside) is meta.SecretMatch.PREVIOUS
    assert meta.match_hub_signature(VECTOR_BODY, _sig(THIRD), ROTATING, inside) is None


def test_b9_previous_secret_refused_from_the_deadline_on() -> None:
    """B9: at and after previous_until only the current secret verifies."""
    for at in (UNTIL, UNTIL + timedelta(days=30)):
        assert meta.match_hub_signature(VECTOR_BODY, _sig(OLD), ROTATING, at) is None
        assert meta.match_hub_signature(VECTOR_BODY, _sig(NEW), ROTATING, at) is meta.SecretMatch.CURRENT


def test_b9_previous_without_deadline_stays_valid_until_removed() -> None:
    """B9: a previous secret with no deadline is accepted whatever the date."""
    secrets = meta.AppSecrets(NEW, OLD)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    assert meta.match_hub_signature(VECTOR_BODY, _sig(OLD), secrets, far) is meta.SecretMatch.PREVIOUS


def test_b9_previous_equal_to_current_counts_as_current() -> None:
    """B9: a previous secret left equal to the current one is not reported as a rotation in progress."""
    secrets = meta.AppSecrets(NEW, NEW, UNTIL)
    assert meta.match_hub_signature(VECTOR_BODY, _sig(NEW), secrets, UNTIL) is meta.SecretMatch.CURRENT
    assert not secrets.previous_open(UNTIL - timedelta(days=1))


def test_b9_no_current_secret_rejects_even_the_previous_one() -> None:
    """B9: a previous secret alone never turns a channel on: without a current secret nothing verifies."""
    secrets = meta.AppSecrets("", OLD, UNTIL)
    assert not secrets.configured
    inside = UNTIL - timedelta(days=1)
    assert meta.match_hub_signature(VECTOR_BODY, _sig(OLD), secrets, inside) is None
    assert meta.match_hub_signature(VECTOR_BODY, _sig(""), secrets, inside) is None


@pytest.mark.parametrize("channel", ["messenger", "whatsapp"])
def test_b9_adapter_accepts_both_inside_the_window_and_counts_the_previous(channel: str) -> None:
    """B9: the adapters accept old and new inside the window, refuse a third, and count previous-secret use."""
    clock = [UNTIL - timedelta(hours=1)]
    adapter: ChannelAdapter
    if channel == "messenger":
        adapter = MessengerAdapter("vt", ROTATING, now=lambda: clock[0])
    else:
        adapter = WhatsAppAdapter("vt", ROTATING, "400000000000004", now=lambda: clock[0])
    before = _previous_used(channel)
    assert adapter.verify_signature(VECTOR_BODY, _sig(NEW))
    assert _previous_used(channel) == before
    assert adapter.verify_signature(VECTOR_BODY, _sig(OLD))
    assert _previous_used(channel) == before + 1
    assert not adapter.verify_signature(VECTOR_BODY, _sig(THIRD))
    clock[0] = UNTIL
    assert not adapter.verify_signature(VECTOR_BODY, _sig(OLD))
    assert adapter.verify_signature(VECTOR_BODY, _sig(NEW))
    assert _previous_used(channel) == before + 1


def test_b9_acceptance_on_the_previous_secret_is_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """B9: operators see a log line when the previous secret was used; no secret is in it."""
    adapter = MessengerAdapter("vt", ROTATING, now=lambda: UNTIL - timedelta(hours=1))
    with caplog.at_level(logging.INFO, logger="amanah.adapters.channels.meta"):
        assert adapter.verify_signature(VECTOR_BODY, _sig(OLD))
    assert "previous app secret" in caplog.text
    assert OLD not in caplog.text and NEW not in caplog.text


def test_b9_app_secrets_hide_secrets_and_need_an_aware_deadline() -> None:
    """B9: AppSecrets never shows a secret in repr or describe(), and refuses a naive deadline."""
    shown = repr(ROTATING) + ROTATING.describe(UNTIL - timedelta(days=1)) + ROTATING.describe(UNTIL)
    assert NEW not in shown and OLD not in shown and "2026-04-01T12:00:00+00:00" in shown
    with pytest.raises(ValueError, match="timezone-aware"):
        meta.AppSecrets(NEW, OLD, datetime(2026, 4, 1, 12, 0))
    with pytest.raises(ValueError, match="at most two"):
        meta.AppSecrets.of([NEW, OLD, THIRD])


def test_b9_settings_read_the_rotation_window_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """B9: the AMANAH_*_APP_SECRET_PREVIOUS(_UNTIL) variables build each channel's AppSecrets."""
    monkeypatch.setenv("AMANAH_MESSENGER_APP_SECRET", NEW)
    monkeypatch.setenv("AMANAH_MESSENGER_APP_SECRET_PREVIOUS", OLD)
    monkeypatch.setenv("AMANAH_MESSENGER_APP_SECRET_PREVIOUS_UNTIL", "2026-04-01T15:00:00+03:00")
    monkeypatch.setenv("AMANAH_WHATSAPP_APP_SECRET", NEW)
    monkeypatch.setenv("AMANAH_WHATSAPP_APP_SECRET_PREVIOUS", OLD)
    monkeypatch.setenv("AMANAH_WHATSAPP_APP_SECRET_PREVIOUS_UNTIL", "")
    settings = Settings(_env_file=None)
    fb, wa = messenger_secrets(settings), whatsapp_secrets(settings)
    assert (fb.current, fb.previous, fb.previous_until) == (NEW, OLD, UNTIL)
    assert (wa.current, wa.previous, wa.previous_until) == (NEW, OLD, None)
    assert OLD not in repr(settings)


def test_b9_a_naive_deadline_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """B9: a deadline without a time zone is refused at start-up rather than guessed."""
    monkeypatch.setenv("AMANAH_MESSENGER_APP_SECRET_PREVIOUS_UNTIL", "2026-04-01T12:00:00")
    with pytest.raises(PydanticValidationError, match="timezone"):
        Settings(_env_file=None)

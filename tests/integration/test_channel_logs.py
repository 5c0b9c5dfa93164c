"""What the channel pipeline writes to its logs: no user ids, tokens, secrets or typed card numbers (I3)."""

from __future__ import annotations

import logging

import pytest

from tests.integration import test_webhooks as shared
from tests.integration.test_webhooks import SECRET, WA_SECRET, Harness

fake_graph = shared.fake_graph  # the fixtures of the webhook tests, shared
harness = shared.harness

PAN = "4111 1111 1111 1111"


def test_i3_logs_hold_no_psid_token_secret_or_card_number(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """I3: a run with replies, a rejected signature, a failing Graph call and a retry logs no PSID, no
    access token, no app secret and no card number the customer typed."""
    users = ["2000000000000111", "2000000000000222"]
    caplog.set_level(logging.DEBUG)
    harness.say(users[0], "hi")
    harness.say(users[1], f"is my card {PAN} blocked?")
    assert harness.post(b'{"object":"page","entry":[]}', signature="sha256=" + "0" * 64).status_code in (
        401,
        403,
    )
    harness.work()
    harness.fake.fault("5xx", 1, recipient=users[0])
    harness.send()
    harness.clock.advance(600)
    harness.send()
    assert len(harness.texts_to(users[0])) == 1  # the failure and the retry were logged on the way
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "send messenger" in logged  # the failing call was logged, by its outbox key
    for secret in (*users, "page-token", "wa-token", SECRET, WA_SECRET, PAN, PAN.replace(" ", "")):
        assert secret not in logged, secret

"""Handover and the human-agent path (spec §2.7, §2.10; §10 G3, H1, H3, H4) against the fake Graph API.

The real app (webhooks, ``/admin/agent/*``), the real inbox worker and outbox sender, and the fake
Graph API recording every call, on a seeded database of every backend (see ``test_webhooks.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from amanah.adapters.privacy.ledger import SqlDisclosureLedger
from amanah.bootstrap import build
from amanah.domain.conversation import Channel, ConversationStatus
from amanah.entrypoints.asgi import create_app
from amanah.entrypoints.channels_cli import whatsapp_event
from tests.integration import test_webhooks as shared
from tests.integration.test_webhooks import PAGE, Harness, harness_settings, message_item, messenger_body

fake_graph = shared.fake_graph  # the fixtures of the webhook tests, shared
harness = shared.harness

INBOX = "263902037430900"
OUR_APP = "555000111"
ADMIN = "admin-token-for-agent-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
MESSAGES = "/v23.0/me/messages"
PASS = "/v23.0/me/pass_thread_control"
TAKE = "/v23.0/me/take_thread_control"
WA_MESSAGES = f"/v23.0/{shared.PHONE_ID}/messages"
TICKET_METADATA = re.compile(r"handoff:ticket=(t_[A-Za-z0-9_-]{16})")
DAY = 24 * 3600


@pytest.fixture
def agents(harness: Harness, seeded_url: str, fake_graph: Any) -> Iterator[TestClient]:
    """The app with an admin token, on the harness's database and clock (the agents' API)."""
    container = build(harness_settings(seeded_url, fake_graph.base, admin_token=ADMIN), clock=harness.clock)
    with TestClient(create_app(container)) as client:
        yield client
    if container.engine is not None:
        container.engine.dispose()


def calls_to(h: Harness, user: str) -> list[dict[str, Any]]:
    return [c for c in h.fake.calls() if c["recipient"] == user]


def paths_to(h: Harness, user: str) -> list[str]:
    return [c["path"] for c in calls_to(h, user) if c["status"] == 200]


def ask_for_a_person(h: Harness, user: str, *, standby: bool = False) -> None:
    item = message_item(user, "I want to talk to a person", ts=h.now_ms(), payload="intent:human_agent")
    assert h.post(messenger_body([item], key="standby" if standby else "messaging")).status_code == 200


def tap(h: Harness, user: str, payload: str, *, standby: bool = False) -> None:
    item = message_item(user, "Back to assistant", ts=h.now_ms(), payload=payload)
    assert h.post(messenger_body([item], key="standby" if standby else "messaging")).status_code == 200


def handover_event(h: Harness, user: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": h.now_ms(), name: value}


def open_tickets(h: Harness, user: str) -> list[dict[str, Any]]:
    notes = h.container.channels.outbox.notes()  # type: ignore[union-attr]
    return [n for n in notes if n["user_id"] == user and n["ticket"]]


def agent_send(client: TestClient, user: str, text: str, **extra: Any) -> httpx.Response:
    body = {"channel": "messenger", "user_id": user, "text": text, "agent": "sam", **extra}
    return client.post("/admin/agent/messages", json=body, headers=AUTH)


# --- H1: escalation ---------------------------------------------------------------------------------


def test_h1_escalation_passes_the_thread_to_the_page_inbox_after_the_handoff_reply(harness: Harness) -> None:
    """H1: asking for a person -> the handoff reply, then pass_thread_control to the Page Inbox with an
    opaque ticket as metadata (no account data), a ticket for the agents, and the bot silent after."""
    linking = harness.container.linking
    assert linking is not None
    layla = harness.container.core.customer_by_username("layla")
    linking.link_operator(Channel.MESSENGER, "u-h1", layla.id)
    ask_for_a_person(harness, "u-h1")
    harness.work_and_send()
    assert paths_to(harness, "u-h1") == [MESSAGES, PASS]
    reply, handoff = calls_to(harness, "u-h1")
    assert "colleague" in reply["body"]["message"]["text"]
    assert set(handoff["body"]) == {"recipient", "target_app_id", "metadata"}
    assert handoff["body"]["recipient"] == {"id": "u-h1"}
    assert handoff["body"]["target_app_id"] == INBOX
    match = TICKET_METADATA.fullmatch(handoff["body"]["metadata"])
    assert match is not None  # the ticket id and nothing else: no name, PSID, account or card
    assert handoff["response"] == {"success": True}
    [ticket] = open_tickets(harness, "u-h1")
    assert (ticket["ticket"], ticket["reason"]) == (match.group(1), "handoff")
    thread = harness.thread("u-h1")
    assert thread is not None and thread["muted"] and thread["control_app_id"] == INBOX

    harness.clock.advance(60)
    harness.say("u-h1", "hello? anyone?")  # arrives while the inbox owns the thread
    ask_for_a_person(harness, "u-h1", standby=True)
    harness.work_and_send()
    assert paths_to(harness, "u-h1") == [MESSAGES, PASS]  # the bot stays silent, passes nothing again
    assert len(open_tickets(harness, "u-h1")) == 1


def test_h1_handover_calls_are_recorded_in_the_ledger_with_their_exact_bytes(harness: Harness) -> None:
    """The pass_thread_control call goes through the guard: its exact bytes are in the disclosure ledger."""
    ask_for_a_person(harness, "u-h1-ledger")
    harness.work_and_send()
    outbox = harness.outbox()
    assert [r["path"] for r in outbox] == ["/me/messages", "/me/pass_thread_control"]
    recorded = sorted(r.body_sha256 for r in SqlDisclosureLedger(harness.engine).records())
    assert recorded == sorted(hashlib.sha256(bytes(o["body"])).hexdigest() for o in outbox)
    sent = sorted(
        hashlib.sha256(json.dumps(c["body"], ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
        for c in harness.fake.calls()
    )
    assert sent == recorded


def test_h1_handover_errors_are_retried_or_listed_like_other_calls(harness: Harness) -> None:
    """A 5xx on pass_thread_control is retried with backoff; error 100 fails it for good with its trace id."""
    harness.fake.fault("5xx", 1, path="pass_thread_control")
    ask_for_a_person(harness, "u-h1-retry")
    harness.work_and_send()
    passed = [r for r in harness.outbox() if r["path"] == "/me/pass_thread_control"]
    assert [(r["status"], r["error_code"]) for r in passed] == [("pending", 2)]
    harness.clock.advance(400)
    harness.send()
    assert [r["status"] for r in harness.outbox() if r["path"] == "/me/pass_thread_control"] == ["sent"]

    harness.fake.fault("invalid_param", 1, path="pass_thread_control")
    ask_for_a_person(harness, "u-h1-fail")
    harness.work_and_send()
    failed = harness.container.channels.outbox.rows(["failed"])  # type: ignore[union-attr]
    assert [(r["user_id"], r["path"], r["error_code"]) for r in failed] == [
        ("u-h1-fail", "/me/pass_thread_control", 100)
    ]
    assert failed[0]["trace_id"].startswith("FakeTrace")


def test_h1_the_inbox_app_id_comes_from_the_setting(
    harness: Harness, seeded_url: str, fake_graph: Any
) -> None:
    """AMANAH_MESSENGER_INBOX_APP_ID names the app a handoff passes the thread to."""
    from amanah.adapters.channels.worker import make_pipeline

    container = build(
        harness_settings(seeded_url, fake_graph.base, messenger_inbox_app_id="999000111"), clock=harness.clock
    )
    harness.pipeline = make_pipeline(container)
    ask_for_a_person(harness, "u-h1-app")
    harness.work_and_send()
    [handoff] = [c for c in calls_to(harness, "u-h1-app") if c["path"] == PASS]
    assert handoff["body"]["target_app_id"] == "999000111"
    if container.engine is not None:
        container.engine.dispose()


# --- H3 and the customer's way back -----------------------------------------------------------------


def test_h3_control_passed_back_resolves_the_ticket_and_the_bot_answers_normally(harness: Harness) -> None:
    """H3 after H1: the inbox passes the thread back -> ticket resolved, conversation active, bot answers."""
    ask_for_a_person(harness, "u-h3-back")
    harness.work_and_send()
    harness.clock.advance(600)
    back = {"previous_owner_app_id": INBOX, "new_owner_app_id": OUR_APP, "metadata": "done"}
    harness.post(messenger_body([handover_event(harness, "u-h3-back", "pass_thread_control", back)]))
    harness.work()
    assert open_tickets(harness, "u-h3-back") == []
    thread = harness.thread("u-h3-back")
    assert thread is not None and not thread["muted"] and thread["control_app_id"] is None
    state = harness.container.conversations.load(Channel.MESSENGER, "u-h3-back")
    assert state.status is ConversationStatus.ACTIVE
    harness.clock.advance(1)
    harness.say("u-h3-back", "what are your opening hours?")
    harness.work_and_send()
    assert paths_to(harness, "u-h3-back") == [MESSAGES, PASS, MESSAGES]
    assert "person from our team" not in harness.texts_to("u-h3-back")[-1]


def test_customer_tapping_back_to_assistant_takes_the_thread_back_first(harness: Harness) -> None:
    """The handoff's "Back to assistant" tap (a standby event) -> take_thread_control, then the bot answers."""
    ask_for_a_person(harness, "u-resume")
    harness.work_and_send()
    harness.clock.advance(30)
    tap(harness, "u-resume", "resume", standby=True)
    harness.work_and_send()
    assert paths_to(harness, "u-resume") == [MESSAGES, PASS, TAKE, MESSAGES]
    take = calls_to(harness, "u-resume")[2]["body"]
    assert take["metadata"].startswith("release:ticket=t_")
    assert "I'm back" in harness.texts_to("u-resume")[-1]
    assert open_tickets(harness, "u-resume") == []
    thread = harness.thread("u-resume")
    assert thread is not None and not thread["muted"]


# --- H4: another app asks for the thread ------------------------------------------------------------


@pytest.mark.parametrize("requester", [INBOX, "777000111"])
def test_h4_request_thread_control_passes_the_thread_to_the_requester(
    harness: Harness, requester: str
) -> None:
    """H4: request_thread_control from the inbox (or another app) -> pass_thread_control to that app at
    once, even days after the user's last message (not a message: no window), and the bot goes silent."""
    harness.say("u-h4", "hi")
    harness.work_and_send()
    harness.clock.advance(3 * DAY)
    request = {"requested_owner_app_id": requester, "metadata": "agent wants it"}
    harness.post(messenger_body([handover_event(harness, "u-h4", "request_thread_control", request)]))
    harness.work_and_send()
    assert paths_to(harness, "u-h4") == [MESSAGES, PASS]
    handoff = calls_to(harness, "u-h4")[-1]["body"]
    assert handoff["target_app_id"] == requester
    assert TICKET_METADATA.fullmatch(handoff["metadata"])
    assert [t["reason"] for t in open_tickets(harness, "u-h4")] == ["requested"]
    harness.say("u-h4", "hello again")
    harness.work_and_send()
    assert paths_to(harness, "u-h4") == [MESSAGES, PASS]


def test_h4_request_while_another_app_holds_the_thread_passes_nothing(harness: Harness) -> None:
    """Only the owner can pass a thread: while the inbox holds it, another app's request is not passed on."""
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-h4-held"},
        "timestamp": harness.now_ms(),
        "message": {"mid": "m_inbox_1", "is_echo": True, "app_id": int(INBOX), "text": "Hi, I'm Sam"},
    }
    harness.post(messenger_body([echo]))
    harness.work()
    request = {"requested_owner_app_id": "777000111"}
    harness.clock.advance(1)
    harness.post(messenger_body([handover_event(harness, "u-h4-held", "request_thread_control", request)]))
    harness.work_and_send()
    assert calls_to(harness, "u-h4-held") == []
    thread = harness.thread("u-h4-held")
    assert thread is not None and thread["muted"] and thread["control_app_id"] == INBOX


# --- G3: a bank agent replies -----------------------------------------------------------------------


def test_g3_agent_reply_inside_24_hours_is_a_plain_response_and_records_its_author(
    harness: Harness, agents: TestClient
) -> None:
    """G3: inside the window an agent's message is a RESPONSE without a tag; the row names the agent,
    and the bot stays silent in that thread until it is released."""
    harness.say("u-g3-now", "hi")
    harness.work_and_send()
    harness.clock.advance(3600)
    response = agent_send(agents, "u-g3-now", "Hello, I'm Sam from the card team.")
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert (receipt["status"], receipt["messaging_type"], receipt["tag"]) == ("queued", "RESPONSE", None)
    harness.send()
    body = calls_to(harness, "u-g3-now")[-1]["body"]
    assert body["messaging_type"] == "RESPONSE" and "tag" not in body
    assert body["message"]["text"] == "Hello, I'm Sam from the card team."
    assert body["message"]["metadata"] == f"{receipt['key']}#0"
    [row] = [r for r in harness.outbox() if r["key"] == f"{receipt['key']}#0"]
    assert (row["agent"], row["status"]) == ("sam", "sent")
    harness.say("u-g3-now", "thanks Sam")
    harness.work_and_send()
    assert len(paths_to(harness, "u-g3-now")) == 2  # the bot did not answer over the agent


def test_g3_agent_reply_at_3_days_carries_the_human_agent_tag(harness: Harness, agents: TestClient) -> None:
    """G3: three days after the user's last message an agent's reply goes with MESSAGE_TAG + HUMAN_AGENT,
    on the exact call the fake Graph API received; the bot's own reply never carried a tag (G2)."""
    harness.say("u-g3-3d", "hi")
    harness.work_and_send()
    harness.clock.advance(3 * DAY)
    response = agent_send(agents, "u-g3-3d", "Sorry for the wait, I'm looking into it now.")
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert (receipt["status"], receipt["messaging_type"], receipt["tag"]) == (
        "queued",
        "MESSAGE_TAG",
        "HUMAN_AGENT",
    )
    harness.send()
    bot, agent = calls_to(harness, "u-g3-3d")
    assert agent["status"] == 200 and agent["body"]["message"]["metadata"] == f"{receipt['key']}#0"
    assert (agent["body"]["messaging_type"], agent["body"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert bot["body"]["messaging_type"] == "RESPONSE" and "tag" not in bot["body"]


def test_g3_agent_reply_at_8_days_is_held_without_a_graph_call(harness: Harness, agents: TestClient) -> None:
    """G3: eight days after the user's last message the reply is held before any Graph call, with an
    agent note; it goes (inside the new window, untagged) once the user writes again."""
    harness.say("u-g3-8d", "hi")
    harness.work_and_send()
    harness.clock.advance(8 * DAY)
    response = agent_send(agents, "u-g3-8d", "Are you still there?")
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["reason"]) == ("held", "window_closed")
    harness.send()
    assert len(calls_to(harness, "u-g3-8d")) == 1  # only the bot's first reply, 8 days ago
    [row] = [r for r in harness.outbox() if r["agent"] == "sam"]
    assert row["status"] == "held"
    notes = [n for n in harness.container.channels.outbox.notes() if n["outbox_id"] == row["id"]]  # type: ignore[union-attr]
    assert [n["text"] for n in notes] == ["[agent sam] Are you still there?"]
    harness.say("u-g3-8d", "yes, I'm here")
    harness.work_and_send()
    last = calls_to(harness, "u-g3-8d")[-1]["body"]
    assert last["message"]["text"] == "Are you still there?" and last["messaging_type"] == "RESPONSE"
    assert len(calls_to(harness, "u-g3-8d")) == 2  # the agent's message; the bot stays silent


def test_g3_agent_reply_queued_in_the_window_but_due_after_it_is_held_not_retagged(
    harness: Harness, agents: TestClient
) -> None:
    """The sender decides at send time: a RESPONSE queued at 23 h and due at 25 h is held, never re-tagged
    (the ledger recorded those exact bytes)."""
    harness.say("u-g3-late", "hi")
    harness.work_and_send()
    harness.clock.advance(23 * 3600)
    assert agent_send(agents, "u-g3-late", "One moment please.").json()["messaging_type"] == "RESPONSE"
    harness.clock.advance(2 * 3600)
    harness.send()
    assert len(calls_to(harness, "u-g3-late")) == 1
    assert [r["status"] for r in harness.outbox() if r["agent"] == "sam"] == ["held"]


def test_g3_agent_reply_after_a_handoff_takes_the_thread_back_from_the_inbox(
    harness: Harness, agents: TestClient
) -> None:
    """An agent replying from the bank's desk after a handoff first takes the thread back, then writes."""
    ask_for_a_person(harness, "u-g3-desk")
    harness.work_and_send()
    receipt = agent_send(agents, "u-g3-desk", "Hi, Sam here. How can I help?").json()
    assert receipt["took_control"] is True
    harness.send()
    assert paths_to(harness, "u-g3-desk") == [MESSAGES, PASS, TAKE, MESSAGES]
    take = calls_to(harness, "u-g3-desk")[2]["body"]
    [ticket] = open_tickets(harness, "u-g3-desk")
    assert take["metadata"] == f"agent:ticket={ticket['ticket']}" == f"agent:ticket={receipt['ticket']}"


def test_agent_text_with_a_card_number_is_refused_and_nothing_is_queued(
    harness: Harness, agents: TestClient
) -> None:
    """The guard's detectors screen an agent's text: a card number -> 422, no row, no record, no call."""
    harness.say("u-blocked", "hi")
    harness.work_and_send()
    rows, records = len(harness.outbox()), len(SqlDisclosureLedger(harness.engine).records())
    response = agent_send(agents, "u-blocked", "Your card 4111 1111 1111 1111 is now unblocked.")
    assert response.status_code == 422
    assert response.json()["error"] == "message_blocked"
    assert response.json()["categories"] == ["card.number"]
    assert "4111" not in response.text
    assert (len(harness.outbox()), len(SqlDisclosureLedger(harness.engine).records())) == (rows, records)
    harness.send()
    assert len(calls_to(harness, "u-blocked")) == 1
    thread = harness.thread("u-blocked")
    assert thread is not None and not thread["muted"]  # nothing happened to the thread


def test_agent_request_id_queues_a_retried_request_once(harness: Harness, agents: TestClient) -> None:
    """The same request_id twice queues one message; the second answer says it is a duplicate."""
    harness.say("u-dup", "hi")
    harness.work_and_send()
    first = agent_send(agents, "u-dup", "On it.", request_id="req-1")
    second = agent_send(agents, "u-dup", "On it.", request_id="req-1")
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "duplicate" and second.json()["key"] == first.json()["key"]
    assert len([r for r in harness.outbox() if r["agent"] == "sam"]) == 1


def test_agent_api_needs_the_admin_token_and_a_valid_body(harness: Harness, agents: TestClient) -> None:
    """404 without a configured token, 401 without the right one (before the body is read), 400/422 on a
    bad body, 404 for a user who never wrote."""
    good = {"channel": "messenger", "user_id": "u-api", "text": "hello", "agent": "sam"}
    assert harness.client.post("/admin/agent/messages", json=good).status_code == 404
    assert harness.client.post("/admin/agent/release", json=good).status_code == 404
    assert agents.post("/admin/agent/messages", json=good).status_code == 401
    assert (
        agents.post("/admin/agent/messages", content=b"{", headers={"Authorization": "Bearer no"}).status_code
        == 401
    )
    assert agents.get("/admin/agent/tickets").status_code == 401
    assert agents.post("/admin/agent/messages", content=b"not json", headers=AUTH).status_code == 400
    assert agents.post("/admin/agent/messages", json=["a"], headers=AUTH).status_code == 400
    for bad in (
        {k: v for k, v in good.items() if k != "text"},
        {**good, "text": ""},
        {**good, "channel": "telegram"},
        {**good, "agent": "sam smith"},
        {**good, "extra": 1},
        {**good, "text": 7},
    ):
        response = agents.post("/admin/agent/messages", json=bad, headers=AUTH)
        assert response.status_code == 422, (bad, response.text)
    missing = agents.post("/admin/agent/messages", json=good, headers=AUTH)
    assert (missing.status_code, missing.json()["error"]) == (404, "no_conversation")
    assert agents.get("/admin/agent/tickets", headers=AUTH).json() == {"tickets": []}
    assert harness.outbox() == []


# --- WhatsApp: no handover protocol -----------------------------------------------------------------


def test_whatsapp_escalation_opens_a_ticket_and_mutes_the_bot_until_an_agent_releases_it(
    harness: Harness, agents: TestClient
) -> None:
    """WhatsApp: a handoff opens a ticket and silences the bot (no handover call exists); a release via
    the API gives the thread back and the bot answers normally again."""
    harness.post(whatsapp_event("15550009999", "a person please", payload="intent:human_agent"), "whatsapp")
    harness.work_and_send()
    assert paths_to(harness, "15550009999") == [WA_MESSAGES]
    [ticket] = open_tickets(harness, "15550009999")
    assert ticket["reason"] == "handoff" and ticket["channel"] == "whatsapp"
    harness.post(whatsapp_event("15550009999", "hello?"), "whatsapp")
    harness.work_and_send()
    assert paths_to(harness, "15550009999") == [WA_MESSAGES]  # silent
    released = agents.post(
        "/admin/agent/release",
        json={"channel": "whatsapp", "user_id": "15550009999", "agent": "sam"},
        headers=AUTH,
    )
    assert released.json() == {
        "channel": "whatsapp",
        "user_id": "15550009999",
        "took_control": False,
        "tickets": [ticket["ticket"]],
    }
    harness.post(whatsapp_event("15550009999", "what are your opening hours?"), "whatsapp")
    harness.work_and_send()
    assert paths_to(harness, "15550009999") == [WA_MESSAGES, WA_MESSAGES]
    last = calls_to(harness, "15550009999")[-1]["body"]
    assert "person from our team" not in json.dumps(last)


def test_whatsapp_agent_reply_outside_24_hours_is_held(harness: Harness, agents: TestClient) -> None:
    """WhatsApp has no human-agent tag: after 24 h an agent's message is held, no Graph call."""
    harness.post(whatsapp_event("15550008888", "hi"), "whatsapp")
    harness.work_and_send()
    harness.clock.advance(2 * DAY)
    body = {"channel": "whatsapp", "user_id": "15550008888", "text": "Still need help?", "agent": "sam"}
    receipt = agents.post("/admin/agent/messages", json=body, headers=AUTH).json()
    assert (receipt["status"], receipt["tag"]) == ("held", None)
    harness.send()
    assert len(calls_to(harness, "15550008888")) == 1
    assert [r["status"] for r in harness.outbox() if r["agent"] == "sam"] == ["held"]


# --- the CLI ----------------------------------------------------------------------------------------


def test_cli_agent_send_release_and_tickets(
    harness: Harness, seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`amanah agent send` queues a human-agent message (refusing a card number), `agent tickets` lists
    the open ticket, `agent release` takes the thread back from the inbox and unmutes the bot."""
    from typer.testing import CliRunner

    from amanah.entrypoints.cli import app

    harness.clock.advance((datetime.now(UTC) - harness.clock.now()).total_seconds())  # the CLI's clock
    ask_for_a_person(harness, "u-cli-agent")
    harness.work_and_send()
    monkeypatch.setenv("AMANAH_DATABASE_URL", seeded_url)
    runner = CliRunner()
    base = ["agent", "send", "--channel", "messenger", "--user-id", "u-cli-agent", "--agent", "sam"]
    blocked = runner.invoke(app, [*base, "--text", "card 4111 1111 1111 1111"])
    assert blocked.exit_code == 1 and "card.number" in blocked.output
    sent = runner.invoke(app, [*base, "--text", "Hi, Sam here.", "--json"])
    assert sent.exit_code == 0, sent.output
    receipt = json.loads(sent.output)
    assert (receipt["status"], receipt["messaging_type"], receipt["agent"]) == ("queued", "RESPONSE", "sam")
    listed = runner.invoke(app, ["agent", "tickets"])
    assert receipt["ticket"] in listed.output and "u-cli-agent" in listed.output
    harness.clock.advance(max(0.0, (datetime.now(UTC) - harness.clock.now()).total_seconds()) + 1)
    harness.send()
    assert paths_to(harness, "u-cli-agent") == [MESSAGES, PASS, TAKE, MESSAGES]

    # The Page Inbox takes the thread again; the agent then gives it back to the bot.
    take = {"previous_owner_app_id": OUR_APP, "new_owner_app_id": INBOX}
    harness.post(messenger_body([handover_event(harness, "u-cli-agent", "take_thread_control", take)]))
    harness.work()
    released = runner.invoke(
        app, ["agent", "release", "--channel", "messenger", "--user-id", "u-cli-agent", "--agent", "sam"]
    )
    assert released.exit_code == 0, released.output
    assert "take_thread_control queued" in released.output and receipt["ticket"] in released.output
    harness.clock.advance(max(0.0, (datetime.now(UTC) - harness.clock.now()).total_seconds()) + 1)
    harness.send()
    assert paths_to(harness, "u-cli-agent")[-1] == TAKE
    thread = harness.thread("u-cli-agent")
    assert thread is not None and not thread["muted"] and thread["control_app_id"] is None
    assert "no open tickets" in runner.invoke(app, ["agent", "tickets"]).output
    bad = runner.invoke(app, ["agent", "release", "--channel", "sms", "--user-id", "x", "--agent", "sam"])
    assert bad.exit_code == 2

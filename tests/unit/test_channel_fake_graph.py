"""The local fake Graph Send APIs: real success/error shapes, validation, recording, fault injection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amanah.adapters.channels.fake_graph import FakeGraphApp, create_fake_graph_app
from amanah.adapters.channels.meta import appsecret_proof

TOKEN = "page-token-not-real"
PSID = "2000000000000002"
FB = "/v23.0/me/messages"
WA = "/v23.0/400000000000004/messages"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class TestClient:
    """A small synchronous client over httpx.ASGITransport (in-process, no sockets, no lifespan)."""

    __test__ = False

    def __init__(self, app: FakeGraphApp) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake-graph")

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self._http.aclose())
        self._loop.close()
        self.app.state.fake.close()  # what the lifespan does at shutdown

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.post(url, **kwargs))

    def get(self, url: str) -> httpx.Response:
        return self._loop.run_until_complete(self._http.get(url))

    def delete(self, url: str) -> httpx.Response:
        return self._loop.run_until_complete(self._http.delete(url))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_fake_graph_app(access_token=TOKEN)) as c:
        yield c


def text(body: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": body}, **extra}


def wa_text(body: str = "hello") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": "15550002222", "type": "text", "text": {"body": body}}


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= error.keys()
    return error


def test_messenger_success_shape_and_record(client: TestClient) -> None:
    """A valid Messenger call answers {recipient_id, message_id} and is recorded without the token."""
    response = client.post(FB, json=text(), headers=AUTH)
    assert response.status_code == 200
    assert response.json()["recipient_id"] == PSID and response.json()["message_id"].startswith("m_")
    (call,) = client.get("/_fake/calls").json()["calls"]
    assert (call["channel"], call["auth"], call["recipient"], call["status"]) == (
        "messenger",
        "bearer",
        PSID,
        200,
    )
    assert TOKEN not in json.dumps(call)


def test_token_in_query_accepted_and_noted(client: TestClient) -> None:
    """The token may come as the access_token query parameter; the record says so, path has no query."""
    response = client.post(f"{FB}?access_token={TOKEN}", json=text())
    assert response.status_code == 200
    call = client.get("/_fake/calls").json()["calls"][-1]
    assert call["auth"] == "query" and call["path"] == FB


def test_missing_or_wrong_token(client: TestClient) -> None:
    """No token gives code 104; a wrong token gives code 190."""
    assert error_of(client.post(FB, json=text()))["code"] == 104
    assert error_of(client.post(FB, json=text(), headers={"Authorization": "Bearer nope"}))["code"] == 190


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messaging_type": "RESPONSE", "message": {"text": "x"}}, 100),  # missing recipient
        (text(messaging_type="BROADCAST"), 100),  # bad messaging_type
        (text(messaging_type="MESSAGE_TAG"), 100),  # tag missing
        (text("x" * 2001), 100),  # text too long
        (text("   "), 100),  # empty text
        ({"recipient": {"id": PSID}}, 100),  # neither message nor sender_action
        ({"recipient": {"id": PSID}, "sender_action": "dance"}, 100),
        (
            {
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "text": "pick",
                    "quick_replies": [
                        {"content_type": "text", "title": f"t{i}", "payload": "p"} for i in range(14)
                    ],
                },
            },
            105,
        ),
        (
            {
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {
                    "attachment": {
                        "type": "template",
                        "payload": {
                            "template_type": "button",
                            "text": "x",
                            "buttons": [
                                {"type": "web_url", "title": f"b{i}", "url": "https://b"} for i in range(4)
                            ],
                        },
                    }
                },
            },
            105,
        ),
    ],
)
def test_messenger_validation_errors(client: TestClient, body: dict[str, Any], code: int) -> None:
    """Invalid Messenger bodies get HTTP 400 and the Graph error code the real API uses."""
    response = client.post(FB, json=body, headers=AUTH)
    assert response.status_code == 400
    assert error_of(response)["code"] == code


def test_messenger_sender_action_and_exactly_13_quick_replies(client: TestClient) -> None:
    """typing_on without messaging_type is fine, and 13 quick replies are accepted."""
    assert client.post(
        FB, json={"recipient": {"id": PSID}, "sender_action": "typing_on"}, headers=AUTH
    ).json() == {"recipient_id": PSID}
    quick = [{"content_type": "text", "title": f"t{i}", "payload": "p"} for i in range(13)]
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "x", "quick_replies": quick},
    }
    assert client.post(FB, json=body, headers=AUTH).status_code == 200


def test_whatsapp_success_shape_and_validation(client: TestClient) -> None:
    """WhatsApp calls answer the Cloud API shape; >4096 text and 4 reply buttons are refused."""
    ok = client.post(WA, json=wa_text(), headers=AUTH).json()
    assert ok["messaging_product"] == "whatsapp"
    assert ok["contacts"] == [{"input": "15550002222", "wa_id": "15550002222"}]
    assert ok["messages"][0]["id"].startswith("wamid.")
    assert error_of(client.post(WA, json=wa_text("x" * 4097), headers=AUTH))["code"] == 100
    buttons = [{"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}} for i in range(4)]
    interactive = {"type": "button", "body": {"text": "pick"}, "action": {"buttons": buttons}}
    body = {"messaging_product": "whatsapp", "to": "1", "type": "interactive", "interactive": interactive}
    error = error_of(client.post(WA, json=body, headers=AUTH))
    assert error["code"] == 131009 and "1 to 3" in error["error_data"]["details"]


PASS = "/v23.0/me/pass_thread_control"
TAKE = "/v23.0/me/take_thread_control"


def test_handover_calls_answer_success_and_are_recorded(client: TestClient) -> None:
    """pass_thread_control / take_thread_control answer {"success": true} and are recorded with their path."""
    handoff = {
        "recipient": {"id": PSID},
        "target_app_id": "263902037430900",
        "metadata": "handoff:ticket=t_1",
    }
    assert client.post(PASS, json=handoff, headers=AUTH).json() == {"success": True}
    assert client.post(TAKE, json={"recipient": {"id": PSID}}, headers=AUTH).json() == {"success": True}
    calls = client.get("/_fake/calls").json()["calls"]
    assert [(c["path"], c["recipient"], c["status"]) for c in calls] == [(PASS, PSID, 200), (TAKE, PSID, 200)]
    assert calls[0]["body"] == handoff


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (PASS, {"target_app_id": "263902037430900"}),  # no recipient
        (PASS, {"recipient": {"id": PSID}}),  # no target app
        (PASS, {"recipient": {"id": PSID}, "target_app_id": "inbox"}),  # not an app id
        (PASS, {"recipient": {"id": PSID}, "target_app_id": "1", "metadata": "m" * 1001}),
        (TAKE, {"recipient": {"id": PSID}, "metadata": 7}),
    ],
)
def test_handover_validation_errors(client: TestClient, path: str, body: dict[str, Any]) -> None:
    """Invalid handover bodies get HTTP 400 and Graph error 100, like the real API."""
    response = client.post(path, json=body, headers=AUTH)
    assert response.status_code == 400 and error_of(response)["code"] == 100


def test_fault_can_target_one_path(client: TestClient) -> None:
    """A fault with a path only hits calls to that path (e.g. the handover, not the reply before it)."""
    client.post("/_fake/faults", json={"mode": "5xx", "path": "pass_thread_control"})
    assert client.post(FB, json=text(), headers=AUTH).status_code == 200
    handoff = {"recipient": {"id": PSID}, "target_app_id": "263902037430900"}
    assert error_of(client.post(PASS, json=handoff, headers=AUTH))["code"] == 2
    assert client.post(PASS, json=handoff, headers=AUTH).status_code == 200


def test_fault_rate_limit_then_success(client: TestClient) -> None:
    """A rate_limit fault with count 2 fails the next two calls (613 / 130429 by channel), then passes."""
    assert client.post("/_fake/faults", json={"mode": "rate_limit", "count": 2}).status_code == 200
    first = client.post(FB, json=text(), headers=AUTH)
    second = client.post(WA, json=wa_text(), headers=AUTH)
    third = client.post(FB, json=text(), headers=AUTH)
    assert (error_of(first)["code"], error_of(second)["code"], third.status_code) == (613, 130429, 200)
    assert client.get("/_fake/faults").json()["faults"] == []
    assert [c["fault"] for c in client.get("/_fake/calls").json()["calls"]] == [
        "rate_limit",
        "rate_limit",
        None,
    ]


def test_fault_filters_by_recipient_and_channel(client: TestClient) -> None:
    """Faults can target one recipient or one channel; other calls pass."""
    client.post("/_fake/faults", json={"mode": "permanent_551", "recipient": "9999"})
    client.post("/_fake/faults", json={"mode": "window_closed", "channel": "whatsapp"})
    assert client.post(FB, json=text(), headers=AUTH).status_code == 200
    other = {"recipient": {"id": "9999"}, "messaging_type": "RESPONSE", "message": {"text": "x"}}
    error = error_of(client.post(FB, json=other, headers=AUTH))
    assert (error["code"], error["error_subcode"]) == (551, 1545041)
    assert error_of(client.post(WA, json=wa_text(), headers=AUTH))["code"] == 131047


def test_fault_5xx_bad_gateway_and_usage_header(client: TestClient) -> None:
    """5xx faults answer 500 with a transient error; bad_gateway is HTML; regain_minutes sets the usage header."""
    client.post("/_fake/faults", json={"mode": "5xx"})
    client.post("/_fake/faults", json={"mode": "bad_gateway"})
    client.post("/_fake/faults", json={"mode": "app_rate_limit", "regain_minutes": 2})
    five = client.post(FB, json=text(), headers=AUTH)
    gateway = client.post(FB, json=text(), headers=AUTH)
    limited = client.post(FB, json=text(), headers=AUTH)
    assert five.status_code == 500 and error_of(five)["is_transient"] is True
    assert gateway.status_code == 502 and gateway.text.startswith("<html>")
    usage = json.loads(limited.headers["x-business-use-case-usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 2


def test_fault_control_validation_and_clear(client: TestClient) -> None:
    """Unknown modes and bad counts are refused with 400; DELETE clears faults and calls."""
    assert client.post("/_fake/faults", json={"mode": "explode"}).status_code == 400
    assert client.post("/_fake/faults", json={"mode": "5xx", "count": 0}).status_code == 400
    assert client.post("/_fake/faults", json={"mode": "5xx", "count": "x"}).status_code == 400
    client.post("/_fake/faults", json={"mode": "5xx", "count": 3})
    assert client.get("/_fake/faults").json()["faults"][0]["remaining"] == 3
    client.delete("/_fake/faults")
    assert client.post(FB, json=text(), headers=AUTH).status_code == 200
    client.delete("/_fake/calls")
    assert client.get("/_fake/calls").json()["count"] == 0


def test_calls_since_and_channel_filters(client: TestClient) -> None:
    """GET /_fake/calls filters by channel and by sequence number."""
    client.post(FB, json=text(), headers=AUTH)
    client.post(WA, json=wa_text(), headers=AUTH)
    client.post(FB, json=text(), headers=AUTH)
    assert client.get("/_fake/calls?channel=whatsapp").json()["count"] == 1
    assert [c["seq"] for c in client.get("/_fake/calls?since=1").json()["calls"]] == [2, 3]


def test_appsecret_proof_checked_when_configured() -> None:
    """With an app secret configured, a correct appsecret_proof passes and a wrong one is refused."""
    app = create_fake_graph_app(access_token=TOKEN, app_secret="app-secret")
    with TestClient(app) as client:
        good = appsecret_proof(TOKEN, "app-secret")
        assert client.post(f"{FB}?appsecret_proof={good}", json=text(), headers=AUTH).status_code == 200
        assert error_of(client.post(f"{FB}?appsecret_proof=00", json=text(), headers=AUTH))["code"] == 100


def test_records_jsonl_file(tmp_path: Path) -> None:
    """With a record path, every call is one JSON line in the file, flushed on request and at shutdown."""
    path = tmp_path / "calls.jsonl"
    with TestClient(create_fake_graph_app(path)) as client:
        client.post(FB, json=text("one"), headers=AUTH)
        client.post(WA, json=wa_text("two"), headers=AUTH)
        client.post("/_fake/flush")
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["channel"] for line in lines] == ["messenger", "whatsapp"]
        client.post(FB, json=text("three"), headers=AUTH)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["body"]["message"]["text"] for line in (lines[0], lines[2])] == ["one", "three"]
    assert TOKEN not in path.read_text(encoding="utf-8")


def test_non_json_body_is_a_graph_error(client: TestClient) -> None:
    """A body that is not JSON is answered with a Graph error, not a 500."""
    response = client.post(FB, content=b"{oops", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400 and error_of(response)["code"] == 100

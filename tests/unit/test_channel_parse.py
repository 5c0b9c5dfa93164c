"""Conformance C (delivery semantics, parser part), D (event parsing) and E (account linking, parser
part) of docs/messenger-platform.md §10, plus the WhatsApp Cloud API parser."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amanah.adapters.channels.base import EventKind, InboundEvent, LinkingStatus, MalformedPayload
from amanah.adapters.channels.messenger import PAGE_INBOX_APP_ID, MessengerAdapter
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.domain.conversation import Channel

PAGE = "1000000000000001"
PSID = "2000000000000002"
MESSENGER = MessengerAdapter("vt", "secret")
WHATSAPP = WhatsAppAdapter("vt", "secret", "400000000000004")


def ev(ts: int, **event: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": ts, **event}


def page(*entries: Any) -> bytes:
    return json.dumps({"object": "page", "entry": list(entries)}).encode()


def entry(*events: dict[str, Any], time: int = 1767225600123, key: str = "messaging") -> dict[str, Any]:
    return {"id": PAGE, "time": time, key: list(events)}


def one(body: bytes) -> InboundEvent:
    events = MESSENGER.parse(body)
    assert len(events) == 1
    return events[0]


def test_c2_every_event_of_every_entry_in_timestamp_order() -> None:
    """C2: 2 entries x 3 events give 6 events, ordered by timestamp across entries."""
    first = entry(*(ev(1000 + 2 * i, message={"mid": f"m_A{i}", "text": "a"}) for i in range(3)))
    second = entry(*(ev(1001 + 2 * i, message={"mid": f"m_B{i}", "text": "b"}) for i in range(3)))
    events = MESSENGER.parse(page(first, second))
    assert [e.dedup_key for e in events] == ["m_A0", "m_B0", "m_A1", "m_B1", "m_A2", "m_B2"]
    assert all(e.kind is EventKind.MESSAGE and e.needs_reply for e in events)


def test_c3_c4_same_mid_same_key_whatever_entry_time() -> None:
    """C3/C4: a replay with the same mid but another entry.time/timestamp has the same dedup key."""
    a = one(page(entry(ev(1000, message={"mid": "m_X", "text": "hi"}), time=1)))
    b = one(page(entry(ev(2000, message={"mid": "m_X", "text": "hi"}), time=2)))
    assert a.dedup_key == b.dedup_key == "m_X"


def test_c3_duplicate_within_one_batch_collapses() -> None:
    """C3: the same mid twice in one body gives one event."""
    events = MESSENGER.parse(
        page(entry(ev(1, message={"mid": "m_D", "text": "x"}), ev(2, message={"mid": "m_D", "text": "x"})))
    )
    assert len(events) == 1


def test_c5_postback_keyed_by_mid() -> None:
    """C5: a postback with a mid is keyed by it."""
    event = one(page(entry(ev(5, postback={"mid": "m_PB_1", "title": "Menu", "payload": "v1.MENU"}))))
    assert event.dedup_key == "m_PB_1"


def test_c5_postback_without_mid_gets_stable_synthesized_key() -> None:
    """C5: without a mid, the key derives from sender, timestamp and payload, not from entry.time."""
    body1 = page(entry(ev(5, postback={"title": "Menu", "payload": "v1.MENU"}), time=1))
    body2 = page(entry(ev(5, postback={"title": "Menu", "payload": "v1.MENU"}), time=99))
    body3 = page(entry(ev(6, postback={"title": "Menu", "payload": "v1.MENU"}), time=1))
    k1, k2, k3 = one(body1).dedup_key, one(body2).dedup_key, one(body3).dedup_key
    assert k1.startswith("sha256:") and len(k1) == 7 + 64
    assert k1 == k2
    assert k1 != k3


def test_c8_standby_recorded_not_answered() -> None:
    """C8/H2: events under standby[] are parsed, flagged standby, and need no reply."""
    event = one(page(entry(ev(7, message={"mid": "m_SB_1", "text": "thanks!"}), key="standby")))
    assert event.standby and event.is_user_message and not event.needs_reply


def test_c8_changes_and_unknown_keys_do_not_crash() -> None:
    """C8: changes[] items, unknown event types and junk entries parse without raising."""
    body = page(
        {"id": PAGE, "time": 1, "changes": [{"field": "feed", "value": {"item": "x"}}]},
        {
            "id": PAGE,
            "time": 2,
            "changes": [
                {"field": "messaging_postbacks", "value": ev(3, postback={"mid": "m_C", "payload": "p"})}
            ],
        },
        {
            "id": PAGE,
            "time": 4,
            "messaging": [ev(4, message_edit={"mid": "m_E", "text": "y"})],
            "unknown": [1],
        },
        {"id": PAGE, "time": 5},
        "not an object",
    )
    events = MESSENGER.parse(body)
    kinds = sorted(e.kind.value for e in events)
    assert kinds == ["postback", "unsupported", "unsupported"]
    assert not any(e.needs_reply for e in events if e.kind is EventKind.UNSUPPORTED)


def test_c8_malformed_event_becomes_unsupported_and_others_survive() -> None:
    """C8: a malformed event (bad linking status) does not lose the other events of the batch."""
    body = page(
        entry(ev(1, account_linking={"status": "weird"}), ev(2, message={"mid": "m_OK", "text": "hi"}))
    )
    events = MESSENGER.parse(body)
    assert [e.kind for e in events] == [EventKind.UNSUPPORTED, EventKind.MESSAGE]


def test_parse_other_object_and_non_json() -> None:
    """A body for another object type parses to nothing; a non-object body raises MalformedPayload."""
    assert MESSENGER.parse(b'{"object":"instagram","entry":[]}') == []
    with pytest.raises(MalformedPayload):
        MESSENGER.parse(b"[1, 2]")
    with pytest.raises(MalformedPayload):
        MESSENGER.parse(b"\xff\xfe")


def test_c9_sticker_and_image_twin_collapse() -> None:
    """C9: a sticker sent as both a sticker and an image attachment is one sticker attachment."""
    url = "https://cdn.example.invalid/s.png"
    message = {
        "mid": "m_ST",
        "attachments": [
            {"type": "sticker", "payload": {"url": url, "sticker_id": 369239263222822}},
            {"type": "image", "payload": {"url": url, "sticker_id": 369239263222822}},
        ],
    }
    event = one(page(entry(ev(1, message=message))))
    assert event.kind is EventKind.ATTACHMENT
    assert [a.type for a in event.attachments] == ["sticker"]


def test_d1_text_message() -> None:
    """D1: a text message is kind message with its text, mid and dedup key = mid."""
    event = one(page(entry(ev(1767225600000, message={"mid": "m_TXT_1", "text": "I lost my card"}))))
    assert (event.kind, event.text, event.message_id, event.dedup_key) == (
        EventKind.MESSAGE,
        "I lost my card",
        "m_TXT_1",
        "m_TXT_1",
    )
    assert (event.channel, event.user_id, event.account_id) == (Channel.MESSENGER, PSID, PAGE)
    assert event.occurred_at.year == 2026


def test_d2_quick_reply_intent_from_payload() -> None:
    """D2: a quick-reply tap carries the payload; the text is only the title."""
    message = {
        "mid": "m_QR_1",
        "text": "Freeze card",
        "quick_reply": {"payload": "v1.FREEZE_CARD.a1b2c3.sig=Zx9"},
    }
    event = one(page(entry(ev(1, message=message))))
    assert event.kind is EventKind.QUICK_REPLY
    assert event.payload == "v1.FREEZE_CARD.a1b2c3.sig=Zx9"
    assert event.text == "Freeze card"


def test_d3_postback_with_referral() -> None:
    """D3: a postback gives kind postback, its payload, title and referral ref."""
    postback = {
        "mid": "m_PB_1",
        "title": "Talk to an agent",
        "payload": "v1.HANDOFF..sig=Qw3",
        "referral": {"ref": "branch-campaign-12", "source": "SHORTLINK", "type": "OPEN_THREAD"},
    }
    event = one(page(entry(ev(1, postback=postback))))
    assert (event.kind, event.payload, event.text, event.referral_ref) == (
        EventKind.POSTBACK,
        "v1.HANDOFF..sig=Qw3",
        "Talk to an agent",
        "branch-campaign-12",
    )


def test_d4_d5_echo_not_a_user_message_and_exposes_app_and_metadata() -> None:
    """D4/D5: echoes are kind echo, addressed to the PSID, with app_id and metadata, never answered."""
    ours = {
        "mid": "m_OUT_7",
        "is_echo": True,
        "app_id": 555000111,
        "metadata": "outbox:7f0c2a#0",
        "text": "Done.",
    }
    inbox = {"mid": "m_OUT_8", "is_echo": True, "app_id": int(PAGE_INBOX_APP_ID), "text": "Hi, agent here"}
    body = page(
        entry(
            {"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 10, "message": ours},
            {"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 11, "message": inbox},
        )
    )
    a, b = MESSENGER.parse(body)
    assert a.kind is b.kind is EventKind.ECHO
    assert (a.user_id, a.account_id, a.app_id, a.metadata, a.message_id) == (
        PSID,
        PAGE,
        "555000111",
        "outbox:7f0c2a#0",
        "m_OUT_7",
    )
    assert b.app_id == PAGE_INBOX_APP_ID
    assert not a.is_user_message and not b.needs_reply


def test_d6_attachment_is_a_reference() -> None:
    """D6: an attachment is kept as (type, url) and nothing else; no text, kind attachment."""
    message = {
        "mid": "m_ATT_1",
        "attachments": [{"type": "image", "payload": {"url": "https://cdn.example.invalid/x.jpg"}}],
    }
    event = one(page(entry(ev(1, message=message))))
    assert event.kind is EventKind.ATTACHMENT and event.text is None
    assert [(a.type, a.url) for a in event.attachments] == [("image", "https://cdn.example.invalid/x.jpg")]
    assert event.needs_reply


def test_d7_read_and_delivery_are_state_only() -> None:
    """D7: read and delivery events carry the watermark (and mids) and need no reply; keys ignore entry.time."""
    read = ev(1767225630000, read={"watermark": 1767225611000})
    delivery = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE},
        "delivery": {"mids": ["m_OUT_7"], "watermark": 1767225611000},
    }
    events = MESSENGER.parse(page(entry(read, delivery)))
    by_kind = {e.kind: e for e in events}
    assert by_kind[EventKind.READ].watermark_ms == 1767225611000
    assert by_kind[EventKind.DELIVERY].related_ids == ("m_OUT_7",)
    assert by_kind[EventKind.DELIVERY].timestamp_ms == 1767225600123  # falls back to entry.time
    assert not any(e.is_user_message for e in events)
    again = MESSENGER.parse(page(entry(read, delivery, time=5)))
    assert {e.dedup_key for e in again} == {e.dedup_key for e in events}
    retimed = MESSENGER.parse(page(entry(ev(1767225639999, read={"watermark": 1767225611000}))))
    assert retimed[0].dedup_key == by_kind[EventKind.READ].dedup_key  # key = read|sender|watermark


def test_d9_payload_is_an_opaque_string() -> None:
    """D9: a payload that looks like serialized data is passed through verbatim as a string."""
    crafted = "{{k===gASVIAAAAAAAAACMCGJ1aWx0aW5zlIwFcHJpbnSUk5SMBXB3bmVklIWUUpQu}}"
    event = one(page(entry(ev(1, message={"mid": "m_P", "text": crafted}))))
    assert event.kind is EventKind.MESSAGE and event.text == crafted and event.payload is None


def test_e1_account_linking_linked_carries_code() -> None:
    """E1 (parser): status linked carries the authorization_code, kept out of repr."""
    event = one(
        page(entry(ev(1767225700000, account_linking={"status": "linked", "authorization_code": "alc_5Q2"})))
    )
    assert event.kind is EventKind.ACCOUNT_LINKING
    assert (event.linking_status, event.authorization_code) == (LinkingStatus.LINKED, "alc_5Q2")
    assert "alc_5Q2" not in repr(event)


def test_e4_account_linking_unlinked() -> None:
    """E4 (parser): status unlinked has no code and a distinct synthesized key."""
    linked = one(page(entry(ev(9, account_linking={"status": "linked", "authorization_code": "c"}))))
    unlinked = one(page(entry(ev(9, account_linking={"status": "unlinked"}))))
    assert unlinked.linking_status is LinkingStatus.UNLINKED and unlinked.authorization_code is None
    assert unlinked.dedup_key != linked.dedup_key


def test_handover_referral_reaction_policy_kinds() -> None:
    """Handover, referral, reaction and policy events get their own kinds and are never answered."""
    body = page(
        entry(
            ev(
                1,
                pass_thread_control={
                    "previous_owner_app_id": PAGE_INBOX_APP_ID,
                    "new_owner_app_id": "555000111",
                    "metadata": "agent-done",
                },
            ),
            ev(2, referral={"ref": "card-help", "source": "SHORTLINK", "type": "OPEN_THREAD"}),
            ev(3, reaction={"mid": "m_OUT_7", "action": "react", "emoji": "👍", "reaction": "like"}),
            ev(4, policy_enforcement={"action": "warning", "reason": "spam"}),
        )
    )
    events = MESSENGER.parse(body)
    assert [e.kind for e in events] == [
        EventKind.HANDOVER,
        EventKind.REFERRAL,
        EventKind.REACTION,
        EventKind.POLICY,
    ]
    handover, referral, reaction, policy = events
    assert (handover.subtype, handover.app_id, handover.metadata) == (
        "pass_thread_control",
        "555000111",
        "agent-done",
    )
    assert referral.referral_ref == "card-help"
    assert reaction.related_ids == ("m_OUT_7",) and reaction.subtype == "react"
    assert policy.subtype == "warning"
    assert not any(e.needs_reply for e in events)


# --- WhatsApp ----------------------------------------------------------------------------------------


def wa(value: dict[str, Any], field: str = "messages") -> bytes:
    base = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "400000000000004"},
    }
    doc = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "300000000000003", "changes": [{"field": field, "value": {**base, **value}}]}],
    }
    return json.dumps(doc).encode()


def test_wa_text_message() -> None:
    """WhatsApp text: kind message, wa_id as user, wamid as key, seconds turned into milliseconds."""
    body = wa(
        {
            "contacts": [{"profile": {"name": "A. Customer"}, "wa_id": "15550002222"}],
            "messages": [
                {
                    "from": "15550002222",
                    "id": "wamid.TEST1",
                    "timestamp": "1767225600",
                    "type": "text",
                    "text": {"body": "freeze my card"},
                }
            ],
        }
    )
    (event,) = WHATSAPP.parse(body)
    assert (event.kind, event.user_id, event.account_id, event.dedup_key, event.text, event.timestamp_ms) == (
        EventKind.MESSAGE,
        "15550002222",
        "400000000000004",
        "wamid.TEST1",
        "freeze my card",
        1767225600000,
    )


def test_wa_button_and_list_replies_are_quick_replies() -> None:
    """WhatsApp button_reply and list_reply taps are quick replies whose payload is the id."""
    button = {"type": "button_reply", "button_reply": {"id": "v1.FREEZE", "title": "Freeze card"}}
    row = {"type": "list_reply", "list_reply": {"id": "v1.BAL", "title": "Balance", "description": "x"}}
    body = wa(
        {
            "messages": [
                {
                    "from": "1555",
                    "id": "wamid.B",
                    "timestamp": "1",
                    "type": "interactive",
                    "interactive": button,
                    "context": {"from": "1", "id": "wamid.OURS"},
                },
                {
                    "from": "1555",
                    "id": "wamid.L",
                    "timestamp": "2",
                    "type": "interactive",
                    "interactive": row,
                },
            ]
        }
    )
    b, lst = WHATSAPP.parse(body)
    assert (b.kind, b.payload, b.text, b.related_ids) == (
        EventKind.QUICK_REPLY,
        "v1.FREEZE",
        "Freeze card",
        ("wamid.OURS",),
    )
    assert (lst.kind, lst.payload, lst.subtype) == (EventKind.QUICK_REPLY, "v1.BAL", "list_reply")


def test_wa_statuses_never_need_a_reply_and_dedup_on_id_and_status() -> None:
    """WhatsApp statuses are kind status keyed on (wamid, status), with the failure code, never answered."""
    statuses = [
        {"id": "wamid.OUT1", "status": "delivered", "timestamp": "10", "recipient_id": "1555"},
        {"id": "wamid.OUT1", "status": "read", "timestamp": "11", "recipient_id": "1555"},
        {
            "id": "wamid.OUT2",
            "status": "failed",
            "timestamp": "12",
            "recipient_id": "1555",
            "errors": [{"code": 131047, "title": "Re-engagement message"}],
        },
        {"id": "wamid.OUT1", "status": "delivered", "timestamp": "13", "recipient_id": "1555"},
    ]
    events = WHATSAPP.parse(wa({"statuses": statuses}))
    assert [e.subtype for e in events] == ["delivered", "read", "failed"]
    assert all(e.kind is EventKind.STATUS and not e.is_user_message for e in events)
    assert events[2].error_code == 131047 and events[2].related_ids == ("wamid.OUT2",)


def test_wa_media_reaction_unknown_and_other_fields() -> None:
    """WhatsApp media is an attachment reference, reactions and unknown types are not answered."""
    body = wa(
        {
            "messages": [
                {
                    "from": "1555",
                    "id": "wamid.I",
                    "timestamp": "1",
                    "type": "image",
                    "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "receipt"},
                },
                {
                    "from": "1555",
                    "id": "wamid.R",
                    "timestamp": "2",
                    "type": "reaction",
                    "reaction": {"message_id": "wamid.OUT1", "emoji": "👍"},
                },
                {"from": "1555", "id": "wamid.U", "timestamp": "3", "type": "unsupported"},
                {"from": "1555", "timestamp": "4", "type": "text"},
            ]
        }
    )
    image, reaction, unknown, broken = WHATSAPP.parse(body)
    assert (
        image.kind is EventKind.ATTACHMENT
        and image.attachments[0].media_id == "media-1"
        and image.text == "receipt"
    )
    assert reaction.kind is EventKind.REACTION and reaction.related_ids == ("wamid.OUT1",)
    assert unknown.kind is EventKind.UNSUPPORTED and broken.kind is EventKind.UNSUPPORTED
    assert WHATSAPP.parse(wa({"x": 1}, field="account_update"))[0].kind is EventKind.UNSUPPORTED
    assert WHATSAPP.parse(page(entry(ev(1, message={"mid": "m", "text": "x"})))) == []

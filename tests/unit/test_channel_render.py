"""Conformance F (Send API / rendering) of docs/messenger-platform.md §10, the text splitter, and the
WhatsApp renderer. Every rendered body is also checked by the fake Graph's validators."""

from __future__ import annotations

from typing import Any

import pytest

from amanah.adapters.channels.base import (
    OutboundKind,
    OutboundMessage,
    RenderError,
    SendRequest,
)
from amanah.adapters.channels.fake_graph import validate_messenger, validate_whatsapp
from amanah.adapters.channels.messenger import MessengerAdapter
from amanah.adapters.channels.textsplit import shorten, split_tail, split_text, utf16_len
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.domain.conversation import Channel
from amanah.domain.replies import LinkButton, QuickReply

PSID = "2000000000000002"
WA_ID = "15550002222"
MESSENGER = MessengerAdapter("vt", "secret")
WHATSAPP = WhatsAppAdapter("vt", "secret", "400000000000004")


def fb(**kwargs: Any) -> list[SendRequest]:
    requests = MESSENGER.render(OutboundMessage(channel=Channel.MESSENGER, user_id=PSID, **kwargs))
    for request in requests:
        validate_messenger(request.body)  # raises on anything the real API would refuse
    return requests


def wa(**kwargs: Any) -> list[SendRequest]:
    requests = WHATSAPP.render(OutboundMessage(channel=Channel.WHATSAPP, user_id=WA_ID, **kwargs))
    for request in requests:
        validate_whatsapp(request.body)
    return requests


def choices(n: int) -> tuple[QuickReply, ...]:
    return tuple(QuickReply(f"Option number {i}", f"v1.OPT.{i}") for i in range(n))


# --- splitter ----------------------------------------------------------------------------------------


def sentences(n_chars: int, sentence: str = "The card is frozen now. ") -> str:
    return (sentence * (n_chars // len(sentence) + 1))[:n_chars]


def test_f2_exactly_limit_not_split_and_one_more_is() -> None:
    """F2: exactly 2000 units is one chunk; 2001 is two; 5000 is three; all within the limit."""
    assert split_text("a" * 2000, 2000) == ["a" * 2000]
    assert [len(c) for c in split_text("a" * 2001, 2000)] == [2000, 1]
    chunks = split_text(sentences(5000), 2000)
    assert len(chunks) == 3 and all(utf16_len(c) <= 2000 for c in chunks)


def test_f2_order_preserved_and_sentence_boundaries() -> None:
    """F2: chunks keep the order of the text and end at sentence ends, never mid-word."""
    text = " ".join(f"Sentence number {i} is here." for i in range(400))
    chunks = split_text(text, 2000)
    assert " ".join(chunks) == text
    assert all(c.endswith(".") for c in chunks)


def test_f2_paragraph_boundary_preferred() -> None:
    """F2: a paragraph break in the second half of the window wins over later sentence ends."""
    para1 = sentences(1500).strip()
    text = para1 + "\n\n" + sentences(1000)
    chunks = split_text(text, 2000)
    assert chunks[0] == para1


def test_f2_no_split_inside_surrogate_pair_or_zwj_emoji() -> None:
    """F2: astral characters count 2 units; a ZWJ family emoji is never cut apart."""
    family = "👨\u200d👩\u200d👧"  # 8 UTF-16 units
    text = family * 300  # 2400 units, no spaces at all
    chunks = split_text(text, 2000)
    assert "".join(chunks) == text
    assert all(utf16_len(c) <= 2000 for c in chunks)
    assert all(c.startswith("👨") and c.endswith("👧") for c in chunks)


def test_f2_flag_emoji_pairs_stay_together() -> None:
    """F2: regional-indicator flags (two astral characters each) are never split between chunks."""
    flags = "🇸🇦🇦🇪" * 3  # 6 flags, 24 units, no spaces
    chunks = split_text(flags, 6)  # 6 units = one flag and a half
    assert "".join(chunks) == flags
    assert all(len(c) % 2 == 0 for c in chunks)


def test_f2_arabic_sentences_split_at_arabic_punctuation() -> None:
    """F2: Arabic text splits after ؟ and ۔ sentence ends, and harakat stay on their letter."""
    text = ("هل بطاقتي مجمدة الآن؟ " + "تم تجميد البطاقةُ بنجاح۔ ") * 80  # 3,760 units
    chunks = split_text(text, 2000)
    assert len(chunks) == 2
    assert all(c[-1] in "؟۔" and utf16_len(c) <= 2000 for c in chunks)
    assert " ".join(chunks) == text.strip()
    giant = "بَ" * 1500  # 3000 units, letter + fatha pairs, no spaces
    cut = split_text(giant, 2001)
    assert all(not c.startswith("\u064e") for c in cut)


def test_f2_one_giant_word_is_cut_hard_words_otherwise_kept() -> None:
    """A word longer than the limit is cut; words around it stay whole."""
    text = "start " + "x" * 4500 + " end"
    chunks = split_text(text, 2000)
    assert chunks[0] == "start"
    assert all(utf16_len(c) <= 2000 for c in chunks)
    assert "".join(chunks[1:]).replace(" ", "") == "x" * 4500 + "end"
    assert split_text("   ", 10) == []


def test_split_tail_takes_the_last_sentences() -> None:
    """split_tail keeps head + tail = text, with the tail within the limit and starting a sentence."""
    text = " ".join(f"Sentence {i} ends here." for i in range(100))
    head, tail = split_tail(text, 640)
    assert utf16_len(tail) <= 640 and tail.startswith("Sentence")
    assert f"{head} {tail}" == text
    assert split_tail("short", 640) == ("", "short")


def test_shorten_is_deterministic_and_bounded() -> None:
    """Titles longer than the limit are cut at a character boundary and end with an ellipsis."""
    assert shorten("Freeze card", 20) == "Freeze card"
    assert shorten("Freeze my debit card now", 20) == "Freeze my debit car…"
    assert utf16_len(shorten("😀" * 30, 20)) <= 20


# --- Messenger ---------------------------------------------------------------------------------------


def test_f1_short_text_one_call() -> None:
    """F1: one short text is one /me/messages call with RESPONSE, recipient and the key as metadata."""
    (request,) = fb(texts=("Your card is now frozen.",), key="outbox:7f0c2a")
    assert request.path == "/me/messages" and request.method == "POST"
    assert request.body == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Your card is now frozen.", "metadata": "outbox:7f0c2a#0"},
    }
    assert (request.key, request.user_id) == ("outbox:7f0c2a#0", PSID)


def test_f2_long_text_several_ordered_calls() -> None:
    """F2: 5000 characters become three ordered calls with distinct keys."""
    requests = fb(texts=(sentences(5000),), key="k")
    assert [r.sequence for r in requests] == [0, 1, 2]
    assert [r.key for r in requests] == ["k#0", "k#1", "k#2"]


def test_f3_quick_replies_capped_at_13_with_overflow_listed() -> None:
    """F3: 14 choices give 13 quick replies (never a #105 call) and the 14th is named in the text."""
    (request,) = fb(texts=("Choose one",), quick_replies=choices(14))
    message = request.body["message"]
    assert len(message["quick_replies"]) == 13
    assert "Option number 13" in message["text"]


def test_f3_quick_reply_titles_truncated_and_payloads_checked() -> None:
    """F3: titles over 20 chars are shortened deterministically; a payload over 1000 is refused."""
    (request,) = fb(texts=("Pick",), quick_replies=(QuickReply("Show my recent transactions", "v1.TX"),))
    assert request.body["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Show my recent tran…", "payload": "v1.TX"}
    ]
    with pytest.raises(RenderError):
        fb(texts=("Pick",), quick_replies=(QuickReply("Big", "p" * 1001),))


def test_f4_buttons_template_and_long_text_split() -> None:
    """F4: URL buttons go in a button template whose text is at most 640; the rest is sent before."""
    long = " ".join(f"Sentence {i} ends here." for i in range(60))
    requests = fb(texts=(long,), buttons=(LinkButton("View balance", "https://bank.example/v/1"),))
    *texts, template = requests
    payload = template.body["message"]["attachment"]["payload"]
    assert payload["template_type"] == "button" and utf16_len(payload["text"]) <= 640
    assert " ".join([*(r.body["message"]["text"] for r in texts), payload["text"]]) == long


def test_f4_more_than_three_buttons() -> None:
    """F4: four URL buttons give a template with three and the fourth as a link line in the text."""
    buttons = tuple(LinkButton(f"Link {i}", f"https://bank.example/{i}") for i in range(4))
    requests = fb(texts=("Links:",), buttons=buttons)
    payload = requests[-1].body["message"]["attachment"]["payload"]
    assert len(payload["buttons"]) == 3
    assert "Link 3: https://bank.example/3" in payload["text"]


def test_f5_url_button_hides_share_button() -> None:
    """F5 (render part): URL buttons open tall webviews with the share button hidden."""
    (request,) = fb(
        texts=("For your security, balances are shown on the bank's secure page.",),
        buttons=(LinkButton("View balance", "https://secure.bank.example/m/v/9a7c"),),
        quick_replies=(QuickReply("Something else", "v1.MENU"),),
    )
    message = request.body["message"]
    (button,) = message["attachment"]["payload"]["buttons"]
    assert button == {
        "type": "web_url",
        "title": "View balance",
        "url": "https://secure.bank.example/m/v/9a7c",
        "webview_height_ratio": "tall",
        "webview_share_button": "hide",
    }
    assert message["quick_replies"][0]["payload"] == "v1.MENU"


def test_f6_typing_is_recipient_and_sender_action_only() -> None:
    """F6: typing_on is a separate best-effort request with only recipient and sender_action."""
    (request,) = fb(kind=OutboundKind.TYPING)
    assert request.body == {"recipient": {"id": PSID}, "sender_action": "typing_on"}
    assert request.best_effort


def test_account_link_button() -> None:
    """Account linking renders a button template with one account_link button."""
    (request,) = fb(
        kind=OutboundKind.ACCOUNT_LINK,
        texts=("Log in to the bank to continue.",),
        buttons=(LinkButton("Log in", "https://id.bank.example/messenger/link?state=st_31c"),),
    )
    payload = request.body["message"]["attachment"]["payload"]
    assert payload["buttons"] == [
        {"type": "account_link", "url": "https://id.bank.example/messenger/link?state=st_31c"}
    ]
    with pytest.raises(RenderError):
        fb(kind=OutboundKind.ACCOUNT_LINK, texts=("x",))


def test_g3_human_agent_tag_rendered() -> None:
    """G3 (render part): a tagged message uses MESSAGE_TAG with the tag."""
    (request,) = fb(texts=("An agent here.",), tag="HUMAN_AGENT")
    assert (request.body["messaging_type"], request.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_render_refuses_choices_without_text_and_wrong_channel() -> None:
    """Suggestions with no text, or a message for another channel, raise RenderError."""
    with pytest.raises(RenderError):
        fb(quick_replies=choices(2))
    with pytest.raises(RenderError):
        MESSENGER.render(OutboundMessage(channel=Channel.WHATSAPP, user_id="1", texts=("x",)))


def test_outbound_round_trips_through_dict() -> None:
    """OutboundMessage and SendRequest survive to_dict/from_dict unchanged (for outbox rows)."""
    message = OutboundMessage(
        channel=Channel.MESSENGER,
        user_id=PSID,
        texts=["a", "b"],  # type: ignore[arg-type]  # lists are accepted and frozen to tuples
        quick_replies=choices(2),
        buttons=(LinkButton("L", "https://x"),),
        key="k",
        language="ar",
    )
    assert message.texts == ("a", "b")
    assert OutboundMessage.from_dict(message.to_dict()) == message
    request = MESSENGER.render(message)[0]
    assert SendRequest.from_dict(request.to_dict()) == request


def test_key_derived_from_content_when_missing() -> None:
    """Without a caller key, request keys are derived from the content and are stable."""
    a = fb(texts=("same",))[0].key
    b = fb(texts=("same",))[0].key
    c = fb(texts=("other",))[0].key
    assert a == b != c and a.endswith("#0")


# --- WhatsApp ----------------------------------------------------------------------------------------


def test_wa_text_split_at_4096() -> None:
    """WhatsApp text splits at 4096 units and uses the Cloud API body shape."""
    requests = wa(texts=(sentences(9000),))
    assert len(requests) == 3
    body = requests[0].body
    assert requests[0].path == "/400000000000004/messages"
    assert {k: body[k] for k in ("messaging_product", "recipient_type", "to", "type")} == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
    }
    assert all(utf16_len(r.body["text"]["body"]) <= 4096 for r in requests)


def test_wa_three_choices_reply_buttons() -> None:
    """Up to three suggestions are interactive reply buttons with titles of at most 20."""
    quick = (*choices(2), QuickReply("Talk to a human agent please", "v1.HANDOFF"))
    (request,) = wa(texts=("What next?",), quick_replies=quick)
    interactive = request.body["interactive"]
    assert interactive["type"] == "button" and interactive["body"]["text"] == "What next?"
    titles = [b["reply"]["title"] for b in interactive["action"]["buttons"]]
    assert titles == ["Option number 0", "Option number 1", "Talk to a human age…"]


def test_wa_four_to_ten_choices_list_and_more_in_text() -> None:
    """4-10 suggestions become a list message; beyond 10 the rest is named in the body."""
    (request,) = wa(texts=("Choose",), quick_replies=choices(4), language="ar")
    interactive = request.body["interactive"]
    assert interactive["type"] == "list" and interactive["action"]["button"] == "الخيارات"
    assert len(interactive["action"]["sections"][0]["rows"]) == 4
    (request,) = wa(texts=("Choose",), quick_replies=choices(12))
    interactive = request.body["interactive"]
    assert len(interactive["action"]["sections"][0]["rows"]) == 10
    assert "Option number 11" in interactive["body"]["text"]


def test_wa_body_over_1024_split_before_interactive() -> None:
    """An interactive body is at most 1024: the head of a long text goes first as plain text."""
    long = " ".join(f"Sentence {i} ends here." for i in range(80))
    first, last = wa(texts=(long,), quick_replies=choices(2))
    assert first.body["type"] == "text" and last.body["type"] == "interactive"
    assert utf16_len(last.body["interactive"]["body"]["text"]) <= 1024
    assert f"{first.body['text']['body']} {last.body['interactive']['body']['text']}" == long


def test_wa_single_link_cta_url_else_text_links() -> None:
    """One URL button alone is a cta_url message; with suggestions the link goes into the text."""
    (cta,) = wa(texts=("Sign in to continue.",), buttons=(LinkButton("Sign in", "https://bank.example/in"),))
    assert cta.body["interactive"]["type"] == "cta_url"
    assert cta.body["interactive"]["action"]["parameters"] == {
        "display_text": "Sign in",
        "url": "https://bank.example/in",
    }
    (mixed,) = wa(
        texts=("Hi",), buttons=(LinkButton("Sign in", "https://bank.example/in"),), quick_replies=choices(1)
    )
    assert mixed.body["interactive"]["type"] == "button"
    assert "Sign in: https://bank.example/in" in mixed.body["interactive"]["body"]["text"]


def test_wa_account_link_is_cta_and_typing_is_skipped() -> None:
    """Account linking on WhatsApp is a cta_url; typing renders nothing (not in our spec)."""
    (request,) = wa(
        kind=OutboundKind.ACCOUNT_LINK,
        texts=("Link your account",),
        buttons=(LinkButton("Link", "https://bank.example/l"),),
    )
    assert request.body["interactive"]["type"] == "cta_url"
    assert wa(kind=OutboundKind.TYPING) == []


def test_wa_reply_button_id_limit() -> None:
    """A reply-button id over 256 characters is refused at render time."""
    with pytest.raises(RenderError):
        wa(texts=("x",), quick_replies=(QuickReply("A", "p" * 257),))


def test_h1_handover_calls_carry_only_the_recipient_the_app_and_the_metadata() -> None:
    """pass/take_thread_control render Meta's exact handover bodies; oversized metadata is refused."""
    from amanah.adapters.channels.fake_graph import validate_handover
    from amanah.adapters.channels.messenger import (
        PASS_THREAD_CONTROL_PATH,
        TAKE_THREAD_CONTROL_PATH,
        is_control_path,
        pass_thread_control,
        take_thread_control,
    )

    passed = pass_thread_control(PSID, "263902037430900", "handoff:ticket=t_x", "in7#pass")
    taken = take_thread_control(PSID, "release:ticket=t_x", "rl1#take")
    assert (passed.path, passed.key, passed.user_id) == (PASS_THREAD_CONTROL_PATH, "in7#pass", PSID)
    assert passed.body == {
        "recipient": {"id": PSID},
        "target_app_id": "263902037430900",
        "metadata": "handoff:ticket=t_x",
    }
    assert taken.path == TAKE_THREAD_CONTROL_PATH and set(taken.body) == {"recipient", "metadata"}
    validate_handover("pass_thread_control", passed.body)
    validate_handover("take_thread_control", taken.body)
    assert is_control_path(passed.path) and not is_control_path("/me/messages")
    with pytest.raises(RenderError):
        pass_thread_control(PSID, "263902037430900", "m" * 1001, "k#0")
    with pytest.raises(RenderError):
        pass_thread_control(PSID, "", "handoff", "k#0")

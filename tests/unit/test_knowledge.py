"""The bank's knowledge base: validation at load, and retrieval in English and Arabic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amanah.adapters.nlu.knowledge import TomlKnowledgeBase
from amanah.domain.errors import ConfigurationError

GOOD_ENTRY = """
[[entries]]
id = "{id}"
topic = "branches"
questions.en = ["When are you open?"]
questions.ar = ["متى تفتحون؟"]
answers.en = "Sunday to Thursday."
answers.ar = "من الأحد إلى الخميس."
"""


@pytest.fixture(scope="module")
def kb() -> TomlKnowledgeBase:
    return TomlKnowledgeBase.default()


# --- the shipped file ----------------------------------------------------------------------------


def test_shipped_kb_has_at_least_30_bilingual_entries(kb: TomlKnowledgeBase) -> None:
    """The packaged FAQ has 30+ entries, each with questions and an answer in English and Arabic."""
    entries = kb.entries()
    assert len(entries) >= 30
    assert len({e.id for e in entries}) == len(entries)
    for entry in entries:
        for lang in ("en", "ar"):
            assert entry.questions[lang], (entry.id, lang)
            assert entry.answers[lang].strip(), (entry.id, lang)
        assert any("\u0600" <= ch <= "\u06ff" for ch in entry.answers["ar"]), entry.id


def test_shipped_kb_covers_the_required_topics(kb: TomlKnowledgeBase) -> None:
    """Fees, limits, hours, cards, transfers, rates, security, disputes, loans, privacy... all present."""
    ids = {e.id for e in kb.entries()}
    required = {
        "account-fees",
        "card-limits",
        "opening-hours",
        "branches-atms",
        "card-replacement",
        "local-transfers",
        "international-transfers",
        "remittances",
        "exchange-rates",
        "mobile-app",
        "security-pin-otp",
        "disputes",
        "chargebacks",
        "account-opening",
        "documents",
        "statements",
        "cheque-books",
        "personal-loans",
        "complaints",
        "contact-numbers",
        "linking-messaging",
        "platform-visibility",
        "privacy-policy",
    }
    assert required <= ids


def test_answers_hold_no_customer_data(kb: TomlKnowledgeBase) -> None:
    """No answer contains anything shaped like a card number, an IBAN or an email address."""
    for entry in kb.entries():
        for answer in entry.answers.values():
            digits = re.sub(r"[\s-]", "", answer)
            assert not re.search(r"\d{12,}", digits), entry.id
            assert not re.search(r"\b[A-Z]{2}\d{2}[A-Z0-9]{10,}\b", answer), entry.id
            assert not re.search(r"[\w.]+@[\w.]+", answer), entry.id


def test_exchange_rate_answer_labels_rates_as_illustrative(kb: TomlKnowledgeBase) -> None:
    """The exchange-rate answer says where live rates are published and marks its figures illustrative."""
    entry = kb.get("exchange-rates")
    assert entry is not None
    assert "illustrative" in entry.answers["en"].lower()
    assert "توضيحية" in entry.answers["ar"]


def test_default_is_loaded_once() -> None:
    """``default()`` returns the same instance every time."""
    assert TomlKnowledgeBase.default() is TomlKnowledgeBase.default()


# --- retrieval -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "lang", "expected"),
    [
        ("what time do your branches shut on thursdays", "en", "opening-hours"),
        ("how do I send money to my parents in Manila", "en", "remittances"),
        ("somebody on the phone wants the code from my SMS, should I give it", "en", "security-pin-otp"),
        ("what's the charge for a SWIFT payment to Germany", "en", "international-transfers"),
        ("I need a statement with a stamp for my visa", "en", "statements"),
        ("الفروع بتفتح يوم السبت؟", "ar", "opening-hours"),
        ("كم رسوم الحوالة إلى الخارج", "ar", "international-transfers"),
        ("وين بلاقي أسعار العملات اليوم", "ar", "exchange-rates"),
        ("كيف أقدّم شكوى على البنك", "ar", "complaints"),
        ("شو الأوراق اللي لازم أجيبها لفتح حساب", "ar", "documents"),
    ],
)
def test_finds_the_right_entry(kb: TomlKnowledgeBase, question: str, lang: str, expected: str) -> None:
    """A fresh question, in English or Arabic, finds its entry first with a usable score."""
    hits = kb.search(question, lang)
    assert hits, question
    assert hits[0].entry.id == expected, [(h.entry.id, h.score) for h in hits]
    assert hits[0].score >= 0.35


def test_arabic_question_finds_entry_with_both_answers(kb: TomlKnowledgeBase) -> None:
    """An Arabic question finds the same entry as its English twin, and the entry answers in Arabic."""
    ar = kb.search("نسيت الرقم السري للبطاقة", "ar")[0].entry
    en = kb.search("I forgot the PIN of my card", "en")[0].entry
    assert ar.id == en.id == "pin"
    assert "الرقم السري" in ar.answers["ar"]


def test_scores_are_sorted_and_between_zero_and_one(kb: TomlKnowledgeBase) -> None:
    """Hits come best first, at most ``limit`` of them, each scored in [0, 1]."""
    hits = kb.search("card fees and limits", "en", limit=5)
    assert 1 <= len(hits) <= 5
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_exact_question_scores_near_one(kb: TomlKnowledgeBase) -> None:
    """Asking a question exactly as written in the file gives a score close to 1."""
    hits = kb.search("What are your opening hours?", "en", limit=1)
    assert hits[0].entry.id == "opening-hours"
    assert hits[0].score > 0.8


def test_unrelated_question_scores_low(kb: TomlKnowledgeBase) -> None:
    """A question no entry is about scores below the assistant's answer threshold."""
    hits = kb.search("who painted the Mona Lisa", "en", limit=1)
    assert not hits or hits[0].score < 0.35


@pytest.mark.parametrize("text", ["", "   ", "?!"])
def test_empty_query_gives_no_hits(kb: TomlKnowledgeBase, text: str) -> None:
    """Nothing to search for gives no hits rather than an error."""
    assert kb.search(text, "en") == ()


def test_limit_below_one_gives_no_hits(kb: TomlKnowledgeBase) -> None:
    """``limit=0`` returns nothing."""
    assert kb.search("opening hours", "en", limit=0) == ()


# --- validation ----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faq.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    """A small well-formed file loads and is searchable."""
    kb = TomlKnowledgeBase.from_path(_write(tmp_path, GOOD_ENTRY.format(id="hours")))
    assert [e.id for e in kb.entries()] == ["hours"]
    assert kb.search("when are you open", "en")[0].entry.id == "hours"


def test_duplicate_id_is_rejected(tmp_path: Path) -> None:
    """Two entries with the same id stop loading, naming the id and both positions."""
    path = _write(tmp_path, GOOD_ENTRY.format(id="hours") + GOOD_ENTRY.format(id="hours"))
    with pytest.raises(ConfigurationError, match=r"entry #2 \(id 'hours'\).*duplicate.*#1"):
        TomlKnowledgeBase.from_path(path)


def test_missing_arabic_answer_is_rejected(tmp_path: Path) -> None:
    """An entry without an Arabic answer is refused, naming the entry and the language."""
    text = GOOD_ENTRY.format(id="hours").replace('answers.ar = "من الأحد إلى الخميس."\n', "")
    with pytest.raises(ConfigurationError, match=r"'hours'.*Arabic answer"):
        TomlKnowledgeBase.from_path(_write(tmp_path, text))


def test_missing_english_questions_are_rejected(tmp_path: Path) -> None:
    """An entry without English questions is refused, naming the entry."""
    text = GOOD_ENTRY.format(id="hours").replace('questions.en = ["When are you open?"]\n', "")
    with pytest.raises(ConfigurationError, match=r"'hours'.*English questions"):
        TomlKnowledgeBase.from_path(_write(tmp_path, text))


def test_empty_question_is_rejected(tmp_path: Path) -> None:
    """A blank question string is refused, naming the entry."""
    text = GOOD_ENTRY.format(id="hours").replace('["متى تفتحون؟"]', '["متى تفتحون؟", "  "]')
    with pytest.raises(ConfigurationError, match=r"'hours'.*questions\.ar"):
        TomlKnowledgeBase.from_path(_write(tmp_path, text))


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    """A misspelt key (``answer`` for ``answers``) is refused rather than silently ignored."""
    text = GOOD_ENTRY.format(id="hours").replace("answers.en", "answer.en")
    with pytest.raises(ConfigurationError, match=r"'hours'.*unknown key"):
        TomlKnowledgeBase.from_path(_write(tmp_path, text))


def test_bad_id_is_rejected(tmp_path: Path) -> None:
    """Ids must be lower-case slugs."""
    with pytest.raises(ConfigurationError, match="entry #1"):
        TomlKnowledgeBase.from_path(_write(tmp_path, GOOD_ENTRY.format(id="Opening Hours")))


def test_broken_toml_is_rejected(tmp_path: Path) -> None:
    """A syntax error is reported as a configuration error with the file name."""
    path = _write(tmp_path, "[[entries]\nid = 'x'")
    with pytest.raises(ConfigurationError, match=r"faq\.toml.*not valid TOML"):
        TomlKnowledgeBase.from_path(path)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    """A path that does not exist is a configuration error, not a crash."""
    with pytest.raises(ConfigurationError, match="cannot read"):
        TomlKnowledgeBase.from_path(tmp_path / "nope.toml")


def test_file_without_entries_is_rejected(tmp_path: Path) -> None:
    """An empty file is refused."""
    with pytest.raises(ConfigurationError, match="no \\[\\[entries\\]\\]"):
        TomlKnowledgeBase.from_path(_write(tmp_path, "# nothing yet\n"))


def test_search_many_gives_what_search_gives_for_each_text() -> None:
    """A batch search (one vectorisation) returns, text by text, exactly the single searches' hits."""
    kb = TomlKnowledgeBase.default()
    texts = ["what are your opening hours?", "ما هي ساعات العمل", "", "iban swift code", "zzzz"]
    batch = kb.search_many(texts, 3)
    assert batch == [tuple(kb.search(t, "en", 3)) for t in texts]
    assert batch[0][0].entry.id == "opening-hours" and batch[2] == ()


def test_prefetched_searches_are_answered_from_the_batch_and_cleared_after() -> None:
    """The worker's prefetching wrapper answers a batch's texts from one search_many call, for its own
    thread only, and searches again once cleared."""
    import threading

    from amanah.adapters.channels.pipeline import PrefetchingKnowledgeBase

    class Counting:
        def __init__(self) -> None:
            self.inner = TomlKnowledgeBase.default()
            self.singles = 0

        def search(self, text: str, language: str, limit: int = 3) -> object:
            self.singles += 1
            return self.inner.search(text, language, limit)

        def search_many(self, texts: list[str], limit: int = 3) -> object:
            return self.inner.search_many(texts, limit)

    counting = Counting()
    kb = PrefetchingKnowledgeBase(counting)
    kb.prefetch(["what are your opening hours?", "how do I open an account?"])
    first = kb.search("what are your opening hours?", "en", limit=2)
    assert len(first) == 2 and first[0].entry.id == "opening-hours" and counting.singles == 0
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(kb.search("what are your opening hours?", "en")))
    thread.start()
    thread.join()
    assert counting.singles == 1  # another thread does not see this thread's batch
    kb.clear()
    kb.search("what are your opening hours?", "en")
    assert counting.singles == 2

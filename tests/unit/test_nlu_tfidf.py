"""The TF-IDF intent classifier: fresh phrasings in English and Arabic, confidence, determinism, data."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from amanah.adapters.nlu.knowledge import TomlKnowledgeBase
from amanah.adapters.nlu.tfidf import (
    Example,
    TfidfClassifier,
    features_text,
    load_examples,
    training_examples,
)
from amanah.domain.errors import ConfigurationError
from amanah.domain.intents import Intent

CLARIFY_THRESHOLD = 0.45  # Settings.clarify_threshold's default

# Written for these tests; none of them is a training line (checked below).
FRESH: dict[Intent, list[tuple[str, str]]] = {
    Intent.BALANCE: [
        ("en", "how much money is sitting in my current account"),
        ("en", "what's my balance looking like today"),
        ("ar", "أود معرفة رصيد حسابي الجاري"),
        ("ar", "قديش المصاري اللي بحسابي"),
        ("ar", "عايزة اعرف الرصيد"),
        ("ar", "kam el raseed"),
    ],
    Intent.TRANSACTIONS: [
        ("en", "list my five most recent payments"),
        ("en", "show the last 3 things I paid for"),
        ("ar", "اخر ٥ عمليات"),
        ("ar", "وريني آخر عشر حركات على حسابي"),
        ("ar", "أريد الاطلاع على آخر المعاملات في حسابي"),
    ],
    Intent.SPENDING: [
        ("en", "how much did I spend on restaurants in September"),
        ("en", "what was my total spend at Carrefour last month"),
        ("ar", "كم أنفقت على المواصلات الشهر الماضي"),
        ("ar", "قديش صرفت بكارفور هالشهر"),
        ("ar", "صرفت كام على المطاعم الشهر ده"),
    ],
    Intent.CARD_FREEZE: [
        ("en", "could you temporarily lock my debit card"),
        ("en", "freeze my visa for now please"),
        ("ar", "أرجو إيقاف بطاقتي مؤقتاً"),
        ("ar", "جمدلي البطاقة لحد ما الاقيها"),
    ],
    Intent.CARD_UNFREEZE: [
        ("en", "please unlock my card again"),
        ("en", "I found my card so you can unfreeze it"),
        ("ar", "أعد تفعيل بطاقتي المجمدة"),
        ("ar", "لقيت الكرت، فكلي التجميد"),
    ],
    Intent.CARD_LOST: [
        ("en", "somebody stole my credit card"),
        ("en", "I've lost my bank card"),
        ("ar", "لقد سرقت بطاقتي الائتمانية"),
        ("ar", "ضاعت مني البطاقة امبارح في السوق"),
        ("ar", "انسرق كرتي البارح"),
    ],
    Intent.HUMAN_AGENT: [
        ("en", "I'd like to talk to a real person please"),
        ("en", "connect me to customer service"),
        ("ar", "أود التحدث إلى موظف خدمة العملاء"),
        ("ar", "بدي احكي مع حدا من الموظفين"),
    ],
    Intent.GREETING: [
        ("en", "hello, good morning"),
        ("en", "hey there, how are you"),
        ("ar", "مرحبا صباح الخير"),
        ("ar", "هلا والله كيفك"),
    ],
    Intent.THANKS: [
        ("en", "thank you very much for the help"),
        ("en", "thanks so much"),
        ("ar", "شكرا جزيلا على مساعدتك"),
        ("ar", "يسلمو كتير"),
    ],
    Intent.GOODBYE: [
        ("en", "okay bye, see you later"),
        ("en", "goodbye, have a nice day"),
        ("ar", "مع السلامة، الى اللقاء"),
        ("ar", "يلا باي، بشوفك"),
    ],
    Intent.HELP: [
        ("en", "what kinds of things can you do for me"),
        ("en", "what can you help me with"),
        ("ar", "ما الذي يمكنك مساعدتي فيه"),
        ("ar", "شو الاشياء اللي بتقدر تعملها"),
    ],
    Intent.AFFIRM: [
        ("en", "yes, please go ahead"),
        ("en", "sure, that's right"),
        ("ar", "نعم، تابع"),
        ("ar", "اي اكيد"),
        ("ar", "ايوه تمام"),
    ],
    Intent.DENY: [
        ("en", "no, cancel it"),
        ("en", "no thanks, not now"),
        ("ar", "لا مش هلأ"),
        ("ar", "لا شكرا مش عايز"),
    ],
    Intent.UNLINK: [
        ("en", "please unlink my account from whatsapp"),
        ("en", "disconnect messenger from my bank"),
        ("ar", "ألغِ ربط حسابي بواتساب"),
        ("ar", "بدي افصل حسابي عن الماسنجر"),
    ],
    Intent.PRIVACY_REPORT: [
        ("en", "what has messenger learned about me"),
        ("en", "which of my data has whatsapp received"),
        ("ar", "ما البيانات التي يعرفها واتساب عني"),
        ("ar", "شو بيعرف فيسبوك عني"),
    ],
    Intent.OUT_OF_SCOPE: [
        ("en", "what's the weather like in amman tomorrow"),
        ("en", "tell me a funny joke"),
        ("en", "who won the champions league"),
        ("ar", "كيف حالة الطقس بكرة في عمان"),
        ("ar", "احكيلي نكتة حلوة"),
        ("ar", "عطني وصفة كبسة"),
    ],
    Intent.FAQ: [
        ("en", "what are the branch opening hours"),
        ("en", "how much does it cost to send money abroad"),
        ("ar", "ما هي مواعيد عمل الفروع"),
        ("ar", "كم رسوم الحوالة الدولية"),
    ],
}
CASES = [(intent, lang, text) for intent, items in FRESH.items() for lang, text in items]
GIBBERISH = ["asdkjh qwpoeiru zxmcnv", "ضصثقفغعهخ حجدشسيبلاتن", "blorf snargle wibble", "ثثثث ظظظظ"]


@pytest.fixture(scope="module")
def clf() -> TfidfClassifier:
    return TfidfClassifier.load_default()


def test_fresh_phrasings_are_not_training_lines() -> None:
    """The test sentences are new to the model: none folds to the same text as a training example."""
    seen = {features_text(e.text) for e in training_examples()}
    copies = [text for _, _, text in CASES if features_text(text) in seen]
    assert copies == []


def test_every_intent_has_fresh_cases_in_both_languages() -> None:
    """The recognition test covers every intent, in English and in Arabic."""
    assert set(FRESH) == set(Intent)
    for intent, items in FRESH.items():
        assert {lang for lang, _ in items} == {"en", "ar"}, intent


@pytest.mark.parametrize(("intent", "lang", "text"), CASES, ids=[f"{i.value}-{t}" for i, _, t in CASES])
def test_recognises_fresh_phrasing(clf: TfidfClassifier, intent: Intent, lang: str, text: str) -> None:
    """Each intent is recognised, confidently enough to act on, from a phrasing it never saw."""
    result = clf.classify(text, lang)
    assert result.intent is intent, result.ranked
    assert result.confidence >= CLARIFY_THRESHOLD


def test_eastern_arabic_digits_read_like_ascii(clf: TfidfClassifier) -> None:
    """'اخر ٥ عمليات' and 'اخر 5 عمليات' are the same request to the model."""
    eastern = clf.classify("اخر ٥ عمليات", "ar")
    ascii_digits = clf.classify("اخر 5 عمليات", "ar")
    assert eastern == ascii_digits
    assert eastern.intent is Intent.TRANSACTIONS


def test_diacritics_and_hamza_do_not_matter(clf: TfidfClassifier) -> None:
    """Text with tashkeel and hamza forms classifies exactly like its bare spelling."""
    assert clf.classify("أُرِيدُ تَجْمِيدَ بِطَاقَتِي الآنَ", "ar") == clf.classify("اريد تجميد بطاقتي الان", "ar")


@pytest.mark.parametrize("text", GIBBERISH)
def test_gibberish_gets_low_confidence(clf: TfidfClassifier, text: str) -> None:
    """Keyboard mashing is never confident enough for the assistant to act on it."""
    assert clf.classify(text, "en").confidence < CLARIFY_THRESHOLD


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?!...", "؟؟"])
def test_empty_text_is_out_of_scope_with_zero_confidence(clf: TfidfClassifier, text: str) -> None:
    """A message with no letters or digits is out of scope, confidence 0, no ranking."""
    result = clf.classify(text, "en")
    assert (result.intent, result.confidence, result.ranked) == (Intent.OUT_OF_SCOPE, 0.0, ())


def test_ranked_is_top_three_best_first(clf: TfidfClassifier) -> None:
    """``ranked`` holds three distinct intents, best first, starting with the returned one."""
    result = clf.classify("I lost my card, can you freeze it", "en")
    assert len(result.ranked) == 3
    assert len({i for i, _ in result.ranked}) == 3
    assert result.ranked[0] == (result.intent, result.confidence)
    probs = [p for _, p in result.ranked]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) <= 1.0 + 1e-6


def test_training_is_deterministic_and_fast() -> None:
    """Two models trained from the same examples agree exactly; training takes well under 2 s."""
    examples = training_examples()
    started = time.perf_counter()
    first = TfidfClassifier(examples)
    elapsed = time.perf_counter() - started
    second = TfidfClassifier(examples)
    texts = [text for _, _, text in CASES] + GIBBERISH
    assert first.classify_many(texts) == second.classify_many(texts)
    assert elapsed < 2.0


def test_load_default_is_cached_per_process() -> None:
    """``load_default`` trains once and hands out the same instance."""
    assert TfidfClassifier.load_default() is TfidfClassifier.load_default()


def test_faq_class_learns_the_given_knowledge_base() -> None:
    """A bank's own FAQ questions become ``faq`` examples, so its topics route to the knowledge base."""
    kb = TomlKnowledgeBase.from_toml(
        """
[[entries]]
id = "safe-deposit-boxes"
topic = "vault"
questions.en = ["can I rent a safe deposit box", "safe deposit box sizes and rent"]
questions.ar = ["هل يمكنني استئجار خزنة في البنك", "أحجام الخزائن الحديدية وأجرتها"]
answers.en = "Boxes are rented at selected branches."
answers.ar = "تؤجر الخزائن في فروع مختارة."
"""
    )
    examples = training_examples(kb)
    faq_texts = {e.text for e in examples if e.intent is Intent.FAQ}
    assert "can I rent a safe deposit box" in faq_texts
    assert "هل يمكنني استئجار خزنة في البنك" in faq_texts
    assert "what are your opening hours?" not in {t.lower() for t in faq_texts}  # packaged FAQ not used
    result = TfidfClassifier(examples).classify("how much is the rent for a safe deposit box", "en")
    assert result.intent is Intent.FAQ


def test_examples_cover_every_intent_in_both_languages() -> None:
    """The packaged examples give every intent at least 40 examples per language (FAQ at least 30 extra)."""
    counts = Counter((e.intent, e.language) for e in load_examples())
    for intent in Intent:
        for lang in ("en", "ar"):
            minimum = 30 if intent is Intent.FAQ else 40
            assert counts[(intent, lang)] >= minimum, (intent, lang, counts[(intent, lang)])


def test_arabic_examples_include_arabizi_and_diacritics() -> None:
    """The Arabic examples contain Arabizi (Latin letters) and fully vowelled lines."""
    arabic = [e.text for e in load_examples() if e.language == "ar"]
    assert sum(1 for t in arabic if t.isascii()) >= 40
    assert sum(1 for t in arabic if any("\u064b" <= ch <= "\u0652" for ch in t)) >= 15


def test_examples_file_with_unknown_intent_is_rejected(tmp_path: Path) -> None:
    """A typo in an intent name stops start-up with a message naming it."""
    bad = tmp_path / "examples.toml"
    bad.write_text('language = "en"\n[intents]\nbalanse = ["what is my balance"]\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="balanse"):
        load_examples([bad])


def test_examples_file_without_language_is_rejected(tmp_path: Path) -> None:
    """Every examples file must say which language it holds."""
    bad = tmp_path / "examples.toml"
    bad.write_text('[intents]\nbalance = ["what is my balance"]\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="language"):
        load_examples([bad])


def test_classifier_needs_two_intents() -> None:
    """A model cannot be trained from examples of a single intent."""
    with pytest.raises(ConfigurationError):
        TfidfClassifier([Example("hi", Intent.GREETING, "en"), Example("hello", Intent.GREETING, "en")])

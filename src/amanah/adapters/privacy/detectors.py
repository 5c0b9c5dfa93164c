"""Rule-based detectors for financial personal data in free text (English, Arabic, mixed).

This is the backstop of the egress guard and the engine of the inbound redactor: it finds card
numbers, IBANs, account numbers (incl. ABA routing numbers and GB BBANs), SWIFT/BIC codes, money
amounts, phone numbers, e-mail addresses and credentials (PIN, CVV, OTP, passwords) written in a
message, whether the digits are ASCII or Eastern Arabic (``٠-٩``, ``۰-۹``, ``٫``, ``٬``).

How it works, in one pass per message:

1. A *folded copy* of the text is made with :func:`amanah.domain.text.to_ascii_digits` plus a few
   one-to-one replacements (no-break spaces, Unicode dashes, full-width digits). Every replacement
   maps one character to one character, so an offset in the copy *is* an offset in the original:
   findings slice their ``value`` from the original text.
2. One keyword scan (English words, Arabic stems) gives the context hits, currency words and
   prefilter flags used below.
3. Detectors run from the most to the least specific; each claims its span, and later detectors
   skip claimed spans: e-mail; IBAN (registry length and BBAN structure from python-stdnum's copy
   of the SWIFT registry, ISO 7064 mod 97 -- the same verdict as
   ``stdnum.iban.is_valid(check_country=False)``, checked by the tests); card (issuer ranges + Luhn
   via ``stdnum.luhn``); credential values; amounts (anchored on a currency symbol, code or word);
   account numbers (context words); SWIFT/BIC (``stdnum.bic`` + context); phones last
   (``phonenumbers`` + Saudi mobile patterns + context). Dates and times are rejected where they
   could pass for an account or phone number.
4. Context is the nearest keyword *before* a number (card / account / routing / phone / reference
   words in English and Arabic). A number introduced as a reference, order, tracking or complaint
   number ("ref 2377154099", "رقم الشكوى ...") is not taken for a phone, and code-like tokens
   ("CMP-2038-586704", "1Z5776840967") are never split into numbers.

Regexes are precompiled, keyword lists are compiled to character tries, and every detector has a
cheap prefilter, so a typical 55-character message costs a few tens of microseconds (see
docs/BENCHMARKS.md, "Guard detectors"). The cost grows faster than linearly with the number of
findings in one text: it is meant for chat messages (``AMANAH_MAX_MESSAGE_CHARS``, 2,000 by
default), not whole documents.

Phone numbers are validated with ``phonenumbers.parse`` + ``is_valid_number`` on candidate spans
found by a regex, trying the regions SA, AE, JO, GB, US, EG; running ``PhoneNumberMatcher`` over
whole messages costs ~110 µs per region per message, which would blow the throughput budget on its
own, while parsing a candidate costs ~35 µs and only runs for phone-shaped, unclaimed spans.

Amounts found in free text are classified as :attr:`AMOUNT_CATEGORY` (``account.balance``): free
text cannot tell a balance from a transaction amount, so the guard treats every leaked amount as
the category agreements most often restrict. Change :data:`AMOUNT_CATEGORY` if the agreements say
otherwise.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import phonenumbers
from stdnum import bic as _bic
from stdnum import luhn as _luhn
from stdnum import numdb as _numdb

from amanah.domain.categories import DataCategory
from amanah.domain.text import to_ascii_digits

__all__ = [
    "AMOUNT_CATEGORY",
    "CATEGORY_OF",
    "PHONE_REGIONS",
    "Finding",
    "FindingKind",
    "contains_credential",
    "detect",
    "fold",
    "placeholder",
    "redact",
]


class FindingKind(StrEnum):
    """What a detector found."""

    CARD_NUMBER = "card_number"
    IBAN = "iban"
    ACCOUNT_NUMBER = "account_number"
    SWIFT_BIC = "swift_bic"
    AMOUNT = "amount"
    PHONE = "phone"
    EMAIL = "email"
    CREDENTIAL = "credential"


AMOUNT_CATEGORY = DataCategory.ACCOUNT_BALANCE
"""Category of a money amount found in free text (a balance and a transaction amount look alike)."""

CATEGORY_OF: Mapping[FindingKind, DataCategory] = MappingProxyType(
    {
        FindingKind.CARD_NUMBER: DataCategory.CARD_NUMBER,
        FindingKind.IBAN: DataCategory.ACCOUNT_IDENTIFIER,
        FindingKind.ACCOUNT_NUMBER: DataCategory.ACCOUNT_IDENTIFIER,
        FindingKind.SWIFT_BIC: DataCategory.ACCOUNT_IDENTIFIER,
        FindingKind.AMOUNT: AMOUNT_CATEGORY,
        FindingKind.PHONE: DataCategory.CUSTOMER_CONTACT,
        FindingKind.EMAIL: DataCategory.CUSTOMER_CONTACT,
        FindingKind.CREDENTIAL: DataCategory.CREDENTIAL,
    }
)

PHONE_REGIONS: tuple[str, ...] = ("SA", "AE", "JO", "GB", "US", "EG")
"""Regions tried, in order, for phone numbers written without an international prefix."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value: ``text[start:end] == value`` in the text given to :func:`detect`.

    ``value`` is left out of ``repr`` so that logging a finding never logs the secret itself.
    """

    kind: FindingKind
    start: int
    end: int
    value: str = field(repr=False)
    category: DataCategory


# --------------------------------------------------------------------------------------------------
# Folding (length preserving)

_EXTRA_FOLD = {ord(c): " " for c in "\u00a0\u2007\u2009\u202f\u200e\u200f\u061c\u2066\u2067\u2068\u2069"}
_EXTRA_FOLD.update({ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d"})
_EXTRA_FOLD.update({0xFF10 + i: str(i) for i in range(10)})  # full-width digits
# Characters to_ascii_digits() rewrites (derived from it, so the prefilter follows text.py).
_NEEDS_DIGITS = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(0x80, 0x3000) if to_ascii_digits(chr(c)) != chr(c)) + "]"
)
_NEEDS_EXTRA = re.compile("[" + "".join(chr(c) for c in _EXTRA_FOLD) + "]")


def fold(text: str) -> str:
    """Return a copy of ``text`` with ASCII digits and plain separators, *of the same length*.

    Uses :func:`~amanah.domain.text.to_ascii_digits` (Eastern Arabic and Persian digits, ``٫``,
    ``٬``), then maps no-break/thin spaces and direction marks to a space, Unicode dashes to ``-``
    and full-width digits to ASCII. Every mapping is one character to one character.
    """
    if text.isascii():
        return text
    folded = to_ascii_digits(text) if _NEEDS_DIGITS.search(text) else text
    if _NEEDS_EXTRA.search(folded):
        folded = folded.translate(_EXTRA_FOLD)
    if len(folded) != len(text):  # pragma: no cover - guards the offset contract if text.py changes
        raise RuntimeError("digit folding must preserve string length")
    return folded


# --------------------------------------------------------------------------------------------------
# Keywords: one scan per message gives context hits (card / account / routing / phone / reference
# words, used by the nearest-keyword rule) and flags (credential, SWIFT, wire, currency words, used
# as prefilters). English is matched on a lower-cased copy; Arabic on stems (prefixes like و/ب/ال
# and suffixes like ي/ك/نا are allowed by matching inside the word).

_CARD = "card"
_ACCOUNT = "account"
_ROUTING = "routing"
_PHONE = "phone"
_REF = "ref"
_CONTEXT_CLASSES = frozenset({_CARD, _ACCOUNT, _ROUTING, _PHONE, _REF})

_EN_WORDS: dict[str, str] = {}
for _cls, _words in (
    (_CARD, "card cards cc visa mastercard amex maestro mada"),
    (_ACCOUNT, "account accounts acct acc savings checking chequing bban iban"),
    (_ROUTING, "routing aba rtn"),
    (
        _PHONE,
        "phone phones telephone mobile cell cellphone tel call calls called calling text texts texted sms "
        "whatsapp reach contact dial landline",
    ),
    (
        _REF,
        "ref reference order tracking ticket complaint case invoice receipt booking confirmation claim "
        "policy branch parcel shipment awb waybill id",
    ),
    ("swift", "swift bic"),
    ("wire", "bank wire transfer transfers transferred beneficiary remittance payee send sent"),
    ("cred", "pin pincode cvv cvv2 cvc cvc2 cvn csc otp password passcode passphrase passwd pwd pw"),
    ("cur", "dollar dollars bucks pound pounds quid euro euros riyal riyals rial rials"),
    ("cur", "dirham dirhams dinar dinars cent cents pence"),
    # ISO 4217 codes: only when written in capitals ("sar" is also Arabizi for "became")
    ("code", "usd gbp eur sar aed qar kwd bhd omr jod egp chf jpy cad aud cny inr pkr try sr"),
):
    _EN_WORDS.update(dict.fromkeys(_words.split(), _cls))
_EN_BIGRAMS: dict[tuple[str, str], str] = {
    ("direct", "debit"): _ACCOUNT,
    ("standing", "order"): _ACCOUNT,
    ("sort", "code"): _ACCOUNT,
    ("transit", "number"): _ROUTING,
    ("master", "card"): _CARD,
    ("whats", "app"): _PHONE,
    ("security", "code"): "cred",
    ("verification", "code"): "cred",
    ("auth", "code"): "cred",
    ("authentication", "code"): "cred",
    ("activation", "code"): "cred",
    ("sms", "code"): "cred",
    ("one", "time"): "cred",
}
_EN_KEYS = {**_EN_WORDS, **{f"{a} {b}": cls for (a, b), cls in _EN_BIGRAMS.items()}}


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of ``words`` (longest first), as a character trie: the engine then tests
    one branch per character instead of every word in turn. A space in a word matches any whitespace."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [
            re.escape(ch).replace(r"\ ", r"\s+") + build(child) for ch, child in sorted(node.items()) if ch
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


# Whole words only, behind a first-letter lookahead so most positions fail fast.
_KW_EN = re.compile(
    r"\b(?=[" + "".join(sorted({k[0] for k in _EN_KEYS})) + r"])" + _trie_pattern(_EN_KEYS) + r"\b"
)
_AR_STEMS: dict[str, str] = {}
for _cls, _stems in (
    (_CARD, "بطاق فيزا ماستر"),
    (_ACCOUNT, "حساب توفير الجاري"),
    (_ROUTING, "التوجيه"),
    (_PHONE, "جوال هاتف موبايل اتصل تواصل واتس نقال"),
    (_REF, "مرجع شكوى شكوي لطلب تتبع فاتور حجز فرع بوليص شحن عملية"),
    ("swift", "سويفت"),
    ("wire", "بنك مصرف حوال تحويل حولت حولوا آيبان ايبان مستفيد"),
    ("cred", "رمز باسورد باسوورد"),
    ("cur", "ريال درهم دراهم دينار دنانير دولار جنيه يورو ليرة روبية"),
):
    _AR_STEMS.update(dict.fromkeys(_stems.split(), _cls))
_AR_STEMS.update(
    dict.fromkeys(
        ("الرقم السري", "رقم سري", "كلمة المرور", "كلمة السر", "كلمة مرور", "كلمة سر", "كود التحقق"), "cred"
    )
)
# Abbreviations ر.س (SAR), ر.ق (QAR), ر.ع (OMR), د.إ (AED), د.أ (JOD), د.ك (KWD), د.ب (BHD), ج.م (EGP), ل.ل (LBP),
# also written with a space after the dot or as "ر س"; they must stand alone (checked after matching).
_AR_ABBREVIATIONS = frozenset(
    f"{a}{sep}{b}"
    for a, b in ("رس", "رق", "رع", "دإ", "دا", "دأ", "دك", "دب", "جم", "لل")
    for sep in (".", ". ")
) | {"ر س"}
_AR_STEMS.update(dict.fromkeys(_AR_ABBREVIATIONS, "cur"))
_KW_AR = re.compile(_trie_pattern(_AR_STEMS))
_HAS_ARABIC = re.compile(r"[\u0600-\u06ff]")
_WORD_TAIL = re.compile(r"[^\W\d_]*")
_CUR_NATIONALITY = re.compile(
    r"\s+(?:سعودي|قطري|عماني|يمني|إماراتي|اماراتي|مغربي|أردني|اردني|كويتي|بحريني|عراقي|ليبي|تونسي|أمريكي|امريكي"
    r"|مصري|إسترليني|استرليني|تركية|لبنانية|سورية)[ةه]?(?!\w)"
)


def _scan_keywords(folded: str) -> tuple[list[tuple[int, int, str]], frozenset[str], list[tuple[int, int]]]:
    """Context hits ``(start, end, class)`` sorted by position, the keyword groups seen, and the spans
    of currency words and codes (ISO codes only when written in capitals)."""
    hits: list[tuple[int, int, str]] = []
    flags: set[str] = set()
    currencies: list[tuple[int, int]] = []
    lower = folded.lower()
    if len(lower) != len(folded):  # a few characters lower-case to two; keep offsets exact
        lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in folded)
    for m in _KW_EN.finditer(lower):
        word = m.group()
        cls = _EN_KEYS[word] if word in _EN_KEYS else _EN_KEYS[" ".join(word.split())]
        if cls in _CONTEXT_CLASSES:
            hits.append((m.start(), m.end(), cls))
        elif cls == "cur":
            currencies.append(m.span())
        elif cls == "code":
            start, end = m.span()
            if folded[start:end].isupper():
                currencies.append((start, end))
            continue
        flags.add(cls)
    if _HAS_ARABIC.search(folded):
        n = len(folded)
        for m in _KW_AR.finditer(folded):
            start, end = m.span()
            key = m.group()
            cls = _AR_STEMS[key]
            if key in _AR_ABBREVIATIONS:
                if (start and folded[start - 1].isalpha()) or (end < n and folded[end].isalpha()):
                    continue  # letters of longer words, not an abbreviation
                if end < n and folded[end] == ".":
                    end += 1
            flags.add(cls)
            if cls in _CONTEXT_CLASSES or cls == "cur":
                end = _WORD_TAIL.match(folded, end).end()  # type: ignore[union-attr]  # always matches
                if cls == "cur":
                    nationality = _CUR_NATIONALITY.match(folded, end)
                    currencies.append((start, nationality.end() if nationality else end))
                else:
                    hits.append((start, end, cls))
        hits.sort()
        currencies.sort()
    for hit in hits:
        flags.add(hit[2])
    if currencies:
        flags.add("cur")
    return hits, frozenset(flags), currencies


# --------------------------------------------------------------------------------------------------
# Patterns (on folded text)

_HAS_DIGIT = re.compile(r"\d")
_REF_GAP = re.compile(
    r"[\s:#.\-]*(?:(?:number|num|nr|no|id|code|is|was|رقم|هو|هي|الخاص|الخاصة)[\s:#.\-]*)*", re.IGNORECASE
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)

# IBAN start: country letters + check digits, not glued to a preceding Latin letter or digit.
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ \-]?[A-Za-z0-9])")
_IBAN_PREFILTER = re.compile(r"[A-Za-z]{2}\d{2}")
_IBAN_BODY = re.compile(r"[ \-]?[A-Za-z0-9]+(?:[ \-][A-Za-z0-9]+)*")
_ALNUM_GROUP = re.compile(r"[A-Za-z0-9]+")

# Runs of digits with single space/dash separators, not glued to Latin letters or "ABC-".
# A leading '+' is kept in the run so that the middle of "+966 50 123 4567" is never taken for a
# number of its own; such runs are left to the phone detector.
_DIGIT_RUN = re.compile(r"(?=[\d+])(?<![\dA-Za-z+])(?<![A-Za-z]-)\+?\d+(?:[ \-]\d+)*(?![\dA-Za-z])")
_GROUP = re.compile(r"\d+")
_DATE_LIKE = re.compile(r"\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2,4}")

_SYMBOL = re.compile(r"[$£€¥₹﷼]")
_MULTIPLIER = r"(?:\s?(?:k|m|bn|thousand|million|billion|ألف|الف|آلاف|الاف|مليون|ملايين|مليار)(?![^\W\d_]))?"
_NUMBER_AFTER = re.compile(
    r"\s?-?(?:\d{1,3}(?:,\d{3})+(?:\.\d{1,3})?|\d+(?:\.\d{1,3})?)(?![\d%]|[.,]\d)" + _MULTIPLIER,
    re.IGNORECASE,
)
_NUMBER_BEFORE = re.compile(
    r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+(?:\.\d{1,3})?|\d+(?:\.\d{1,3})?)" + _MULTIPLIER + r"\s?\Z",
    re.IGNORECASE,
)
_DOLLAR_PREFIX = re.compile(r"(?<![A-Za-z])(?:US|USD|C|A|NZ|HK|S)\Z")

# GB-style BBAN: bank code (4 letters) + sort code (6 digits) + account (8 digits).
_GB_BBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{4}[ \-]?\d{6}[ \-]?\d{8}(?![A-Za-z0-9])")

# SWIFT/BIC: bank (4 letters) + country (2 letters) + location (2) + optional branch (3).
_BIC = re.compile(r"(?<![A-Za-z0-9])[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![A-Za-z0-9])")
_BIC_PREFILTER = re.compile(r"[A-Z]{6}")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")

_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+])(?<![A-Za-z]-)(?:\+\s?|00)?(?:\(\s?\+?\d{1,5}\s?\)\s?)?\d(?:[ .\-]?(?:\(\d{1,5}\)\s?)?\d){5,16}"
    r"(?:\s?(?:x|ext\.?|extension|#)\s?\d{1,6})?(?!\w)",
    re.IGNORECASE,
)
# Cheap locator: stretches of digits and phone punctuation; the strict pattern runs inside them.
_PHONE_LOCATOR = re.compile(r"[+(\d][\d .()\-]{5,24}\d(?:\s?(?:[xX#]|ext\.?)\s?\d{1,6})?")
_PHONE_EXT = re.compile(r"\s?(?:x|ext\.?|extension|#)\s?\d{1,6}$", re.IGNORECASE)
_SAUDI_MOBILE = re.compile(r"(?:966|00966|0)?5\d{8}")
_SAUDI_MOBILE_PREFIXED = re.compile(r"(?:966|00966|0)5\d{8}")

# Credentials: a keyword, a few filler words, then the value.
_CRED_NUMERIC = (
    r"\bpin(?:\s*(?:code|number|no\.?))?(?:\b|(?=\d))|\bpincode\b|\bcvv2?\b|\bcvc2?\b|\bcvn\b|\bcsc\b|\bsecurity\s+code\b|\botp\b"
    r"|\bone[-\s]?time\s+(?:password|passcode|pin|code)\b|\bverification\s+code\b"
    r"|\b(?:auth|authentication|authorisation|authorization|activation|confirmation|sms|2fa)\s+code\b"
    r"|الرقم\s+السري|الرمز\s+السري|رقم\s+سري|رمز\s+سري|رمز\s+التحقق|رمز\s+التفعيل|رمز\s+الدخول"
    r"|كود\s+التحقق|رمز\s+otp|الـ?otp"
)
_CRED_SECRET = (
    r"\bpass(?:word|code|phrase)\b|\bpasswd\b|\bpwd\b|\bpw\b|كلمة\s+(?:ال)?(?:مرور|سر)|(?:ال)?باسو?ورد"  # noqa: S105
)
_CRED_GAP = (
    r"(?:'s|’s)?(?:\s*[:=#-]\s*|\s+|(?=\d))(?:(?:is|was|are|my|the|new|code|number|no\.?|to|now|for|of|on|card"
    r"|account|app|login|online|banking|هو|هي|الخاص|الخاصة|بي|لي|حقي|تبعي"
    r"|الجديد|الجديدة|جديد|جديدة)\s*[:=]?\s*){0,4}"
)
_CREDENTIAL = re.compile(
    rf"(?:(?P<num>{_CRED_NUMERIC}){_CRED_GAP}(?P<numval>\d{{3,8}}|\d(?:[ -]\d){{3,7}})(?![\d/:.,]\d|\d)"
    rf"|(?<![\d.,])(?P<revval>\d{{3,8}})\s+(?:is|was)\s+(?:my|the)\s+(?:new\s+)?(?:{_CRED_NUMERIC})"
    rf"|(?P<sec>{_CRED_SECRET})(?P<secgap>{_CRED_GAP})(?P<secval>[^\s]{{3,64}})"
    rf"|(?<!\w)رمز\s*:?\s*(?P<bareval>\d{{4,8}})(?!\d))",
    re.IGNORECASE,
)
# "my password is sunshine": a password declared with "is" is a secret even when it is a plain word,
# unless the word describes the password instead of being it.
_ARABIC_MARKS = {cp: None for cp in range(0x064B, 0x0660)} | {0x0640: None, 0x0670: None}
_DECLARED = re.compile(r"\b(?:is|was)\b|هي|هو", re.IGNORECASE)
_NOT_A_SECRET = frozenset(
    "wrong incorrect invalid expired blocked locked forgotten lost stolen changed reset weak strong correct "
    "right fine working valid new old same different not too very still always never disabled required "
    "missing empty case-sensitive "
    "غلط خطا خطأ خاطئه خاطئة منتهيه منتهية صحيح صحيحه صحيحة مقفل مقفله مقفلة ضعيفه ضعيفة قويه قوية "
    "جديده جديدة قديمه قديمة مش ليست ليس لا".split()
)
_SECRET_STRIP = "\"'`.,;!?؟،»«“”‘’()[]{}"  # noqa: S105 - punctuation stripped around a secret, not a secret

# --------------------------------------------------------------------------------------------------
# Card issuer ranges: (prefix low, prefix high, allowed lengths). Prefixes compared on equal length.
# Deliberately generous (a missed PAN costs more than a redacted non-PAN); Luhn is always required.

_LONG = frozenset(range(16, 20))
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 17, 18, 19})),  # Visa (incl. Electron, mada on Visa)
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("2200", "2204", _LONG),  # Mir
    ("34", "34", frozenset({15})),  # Amex
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("309", "309", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("35", "35", _LONG),  # JCB (3528-3589 assigned; the whole 35 block is taken to be safe)
    ("1800", "1800", frozenset({15})),  # JCB legacy 15-digit
    ("2131", "2131", frozenset({15})),
    ("6011", "6011", _LONG),  # Discover
    ("644", "649", _LONG),
    ("65", "65", _LONG),  # Discover / RuPay
    ("62", "62", _LONG),  # UnionPay
    ("81", "82", _LONG),  # UnionPay / RuPay
    ("60", "60", _LONG),  # RuPay / Discover
    ("50", "50", frozenset(range(12, 20))),  # Maestro / Verve / Meeza
    ("56", "69", frozenset(range(12, 20))),  # Maestro and other 6-series
    ("9792", "9792", frozenset({16})),  # Troy
    ("9682", "9682", frozenset({16})),  # mada (domestic range)
)


_RANGES_BY_FIRST_DIGIT = {d: tuple(r for r in _CARD_RANGES if r[0][0] <= d <= r[1][0]) for d in "0123456789"}


def _card_brand_ok(digits: str) -> bool:
    n = len(digits)
    for low, high, lengths in _RANGES_BY_FIRST_DIGIT[digits[0]]:
        if n in lengths and low <= digits[: len(low)] <= high:
            return True
    return False


_BBAN_PART = re.compile(r"(\d+)!([nac])")
_BBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}


@lru_cache(maxsize=256)
def _iban_layout(country: str) -> tuple[int, re.Pattern[str] | None]:
    """Registry length and BBAN structure of ``country``'s IBAN (python-stdnum's copy of the SWIFT
    IBAN registry); ``(0, None)`` when the country has no IBAN."""
    info = _numdb.get("iban").info(country)
    bban = info[0][1].get("bban") if info else None
    if not bban:
        return 0, None
    parts = _BBAN_PART.findall(bban)
    pattern = "".join(f"{_BBAN_CLASS[kind]}{{{count}}}" for count, kind in parts)
    return 4 + sum(int(count) for count, _ in parts), re.compile(pattern)


# ISO 7064 mod 97-10 on the IBAN's digits, letters counting as 10..35 (A=10 ... Z=35). Same result as
# stdnum.iso7064.mod_97_10, ~6x faster (one translate + one int); the unit tests check the equivalence.
_MOD97_DIGITS = str.maketrans({chr(ord("A") + i): str(10 + i) for i in range(26)})


def _iban_valid(compact: str) -> bool:
    """Registry length and structure + mod 97, the same test as ``stdnum.iban.is_valid(check_country=False)``."""
    length, structure = _iban_layout(compact[:2])
    return (
        structure is not None
        and len(compact) == length
        and structure.fullmatch(compact, 4) is not None
        and compact[2:4].isdigit()
        and int((compact[4:] + compact[:4]).translate(_MOD97_DIGITS)) % 97 == 1
    )


# --------------------------------------------------------------------------------------------------
# The scan


class _Scan:
    """State of one :func:`detect` call: original text, folded copy, claimed spans, findings."""

    __slots__ = ("claimed", "currencies", "findings", "flags", "folded", "hits", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded = fold(text)
        self.claimed: list[tuple[int, int]] = []
        self.findings: list[Finding] = []
        self.hits, self.flags, self.currencies = _scan_keywords(self.folded)

    def free(self, start: int, end: int) -> bool:
        for s, e in self.claimed:
            if start < e and s < end:
                return False
        return True

    def add(self, kind: FindingKind, start: int, end: int) -> None:
        self.claimed.append((start, end))
        self.findings.append(Finding(kind, start, end, self.text[start:end], CATEGORY_OF[kind]))

    def context(self, start: int, end: int, before: int = 32, after: int = 0) -> str | None:
        """Class of the nearest keyword ending at most ``before`` chars before ``start``.

        With ``after`` > 0, a keyword starting at most ``after`` chars after ``end`` is used when
        nothing precedes.
        """
        best: str | None = None
        for k_start, k_end, kind in self.hits:
            if k_end <= start:
                if start - k_end <= before:
                    best = kind  # later hits are nearer
            elif k_start >= end:
                if best is None and after and k_start - end <= after:
                    return kind
                break
        return best

    def introduced_as_reference(self, start: int) -> bool:
        """True when the nearest keyword before ``start`` is a reference/order/tracking word and only
        filler ("number", ":", "#", "رقم") separates it from ``start`` ("ref 2377154099", "order no. 55")."""
        for _k_start, k_end, kind in reversed(self.hits):
            if k_end <= start:
                return (
                    kind == _REF
                    and start - k_end <= 24
                    and _REF_GAP.fullmatch(self.folded, k_end, start) is not None
                )
        return False


def _emails(scan: _Scan) -> None:
    if "@" not in scan.folded:
        return
    for m in _EMAIL.finditer(scan.folded):
        scan.add(FindingKind.EMAIL, m.start(), m.end())


def _ibans(scan: _Scan) -> None:
    t = scan.folded
    if not _IBAN_PREFILTER.search(t):
        return
    for m in _IBAN_START.finditer(t):
        country = m.group(1).upper()
        length = _iban_layout(country)[0]
        if not length or not scan.free(m.start(), m.end()):
            continue
        # The IBAN is the first ``length`` alphanumerics from here, single spaces/dashes allowed
        # between groups, and must end at a group boundary: this keeps a following word
        # ("... 80 the", "...7159417 failed") out of it.
        body = _IBAN_BODY.match(t, m.end(), m.end() + 2 * length)  # bounded: 34 chars + separators
        if body is None:
            continue
        need = length - 4
        chars = [country, m.group(2)]
        end = -1
        for group in _ALNUM_GROUP.finditer(body.group()):
            piece = group.group()
            if len(piece) > need:
                break  # the registry length falls inside a group: something is glued on
            chars.append(piece)
            need -= len(piece)
            if need == 0:
                end = body.start() + group.end()
                break
        if end < 0:
            continue
        if _iban_valid("".join(chars).upper()) and scan.free(m.start(), end):
            scan.add(FindingKind.IBAN, m.start(), end)


def _card_kind(scan: _Scan, digits: str, start: int, end: int) -> FindingKind | None:
    """Kind of a Luhn-checked 12–19 digit span, or None when it should not be flagged."""
    ctx = scan.context(start, end)
    if ctx in (_ACCOUNT, _ROUTING):
        return FindingKind.ACCOUNT_NUMBER  # the customer says it is an account: same protection
    if _card_brand_ok(digits):
        if len(digits) == 12 and (ctx == _PHONE or scan.introduced_as_reference(start)):
            return None  # 12-digit Maestro range overlaps order and tracking numbers
        return FindingKind.CARD_NUMBER
    if ctx == _CARD:
        return FindingKind.CARD_NUMBER  # unknown issuer range, but called a card
    return None


def _cards(scan: _Scan, runs: list[re.Match[str]]) -> None:
    for run in runs:
        run_start = run.start()
        text = run.group()
        if len(text) < 12 or text[0] == "+" or not scan.free(run_start, run.end()):
            continue
        if text.isdigit():  # no separators: the run is the candidate
            if len(text) <= 19:
                kind = _card_kind(scan, text, run_start, run.end())
                if kind is not None and _luhn.checksum(text) == 0:
                    scan.add(kind, run_start, run.end())
            continue
        groups = [(g.start() + run_start, g.end() + run_start, g.group()) for g in _GROUP.finditer(text)]
        i = 0
        while i < len(groups):
            matched = False
            # Group-aligned spans starting at group i with 12-19 digits (at most 19 groups: linear).
            spans: list[int] = []
            size = 0
            for j in range(i, len(groups)):
                size += len(groups[j][2])
                if size > 19:
                    break
                if size >= 12:
                    spans.append(j)
            # The longest one that is a card wins.
            for j in reversed(spans):
                digits = "".join(g[2] for g in groups[i : j + 1])
                start, end = groups[i][0], groups[j][1]
                kind = _card_kind(scan, digits, start, end)
                if kind is not None and _luhn.checksum(digits) == 0:
                    scan.add(kind, start, end)
                    i = j + 1
                    matched = True
                    break
            if not matched:
                i += 1


_GLUED = re.compile(r"\b(?:pin|otp|cvv|cvc)\d{3,8}\b", re.IGNORECASE)  # "PIN1234": no word boundary


def _credentials(scan: _Scan) -> None:
    if "cred" not in scan.flags and not _GLUED.search(scan.folded):
        return
    t = scan.folded
    for m in _CREDENTIAL.finditer(t):
        if m.group("numval") is not None:
            start, end = m.span("numval")
        elif m.group("revval") is not None:
            start, end = m.span("revval")
        elif m.group("bareval") is not None:
            start, end = m.span("bareval")
        else:
            start, end = m.span("secval")
            value = t[start:end]
            stripped = value.strip(_SECRET_STRIP)
            if not stripped:
                continue
            start += value.index(stripped)
            end = start + len(stripped)
            explicit = any(c in m.group("secgap") for c in ":=")
            bare = stripped.translate(_ARABIC_MARKS)  # tanween and harakat are letters' marks, not symbols
            secret_like = any(c.isdigit() for c in bare) or any(
                not c.isalnum() and c not in "'-" for c in bare
            )
            declared = (
                _DECLARED.search(m.group("secgap")) is not None and stripped.lower() not in _NOT_A_SECRET
            )
            if len(stripped) < (3 if declared else 4) or not (secret_like or explicit or declared):
                continue  # "my password is wrong", "my passcode won't work": words, not secrets
        if scan.free(start, end):
            scan.add(FindingKind.CREDENTIAL, start, end)


def _amounts(scan: _Scan) -> None:
    """Numbers written next to a currency symbol, ISO code or currency word (either side)."""
    t = scan.folded
    anchors = scan.currencies
    if _SYMBOL.search(t):
        anchors = sorted(anchors + [m.span() for m in _SYMBOL.finditer(t)])
    for c_start, c_end in anchors:
        if not scan.free(c_start, c_end):
            continue
        after = _NUMBER_AFTER.match(t, c_end)
        if after is not None and scan.free(c_end, after.end()):
            start, end = c_start, after.end()
            if t[c_start] == "$":
                prefix = _DOLLAR_PREFIX.search(t, max(0, c_start - 3), c_start)
                start = prefix.start() if prefix else c_start
        else:
            before = _NUMBER_BEFORE.search(t, max(0, c_start - 24), c_start)
            if before is None or not scan.free(before.start(), c_start):
                continue
            start, end = before.start(), c_end
        if scan.free(start, end):
            scan.add(FindingKind.AMOUNT, start, end)


def _accounts(scan: _Scan, runs: list[re.Match[str]]) -> None:
    if "account" not in scan.flags and "routing" not in scan.flags:
        return  # account numbers are only recognised next to an account or routing word
    for run in runs:
        start, end = run.span()
        text = run.group()
        if len(text) < 8 or text[0] == "+" or not scan.free(start, end) or _DATE_LIKE.fullmatch(text):
            continue
        digits = text.replace(" ", "").replace("-", "")
        if not 8 <= len(digits) <= 18 or _SAUDI_MOBILE_PREFIXED.fullmatch(digits):
            continue  # Saudi mobile numbers are left to the phone detector
        if digits.startswith("00") and _valid_phone("+" + digits[2:], True):
            continue  # so are international numbers written with 00
        if scan.context(start, end, before=32, after=14) in (_ACCOUNT, _ROUTING):
            scan.add(FindingKind.ACCOUNT_NUMBER, start, end)
    for m in _GB_BBAN.finditer(scan.folded):
        start, end = m.span()
        if scan.free(start, end) and scan.context(start, end, before=40, after=14) in (_ACCOUNT, _ROUTING):
            scan.add(FindingKind.ACCOUNT_NUMBER, start, end)


def _swift(scan: _Scan) -> None:
    t = scan.folded
    if not _BIC_PREFILTER.search(t):
        return
    flags = scan.flags
    strong = "swift" in flags
    weak = (
        strong
        or not flags.isdisjoint(("wire", "account"))
        or "رمز" in t
        or any(f.kind is FindingKind.IBAN for f in scan.findings)
    )
    if not weak:
        return
    candidates = [m for m in _BIC.finditer(t) if scan.free(m.start(), m.end()) and _bic.is_valid(m.group())]
    if not candidates:
        return
    # In a message typed in capitals an ordinary word can look like a BIC ("BUSINESS" = BUSI NE SS):
    # letter-only candidates then need a SWIFT/BIC keyword.
    shouting = False
    if not strong and any(m.group().isalpha() for m in candidates) and len(_LOWER.findall(t)) < 12:
        rest = list(t)
        for s, e in [m.span() for m in candidates] + scan.claimed:
            rest[s:e] = " " * (e - s)
        other = "".join(rest)
        upper = len(_UPPER.findall(other))
        lower = len(_LOWER.findall(other))
        shouting = upper + lower >= 12 and upper > 0.6 * (upper + lower)
    for m in candidates:
        if strong or not (shouting and m.group().isalpha()):
            scan.add(FindingKind.SWIFT_BIC, m.start(), m.end())


def _valid_phone(candidate: str, international: bool) -> bool:
    regions: tuple[str | None, ...] = (None,) if international else PHONE_REGIONS
    for region in regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phones(scan: _Scan) -> None:
    t = scan.folded
    for located in _PHONE_LOCATOR.finditer(t):
        l_start, l_end = located.span()
        if not any(s <= l_start and l_end <= e for s, e in scan.claimed):
            _phones_in(scan, l_start, l_end)


def _phones_in(scan: _Scan, l_start: int, l_end: int) -> None:
    t = scan.folded
    for m in _PHONE_CANDIDATE.finditer(t, l_start, l_end):
        start, end = m.span()
        if not scan.free(start, end):
            continue
        raw = m.group()
        ext = _PHONE_EXT.search(raw)
        core = raw[: ext.start()] if ext else raw
        digits = "".join(c for c in core if c.isdigit())
        n = len(digits)
        if not 7 <= n <= 15 or _DATE_LIKE.fullmatch(core):
            continue
        if scan.introduced_as_reference(start):
            continue
        ctx = scan.context(start, end, before=40)
        if _SAUDI_MOBILE.fullmatch(digits):
            ok = True
        elif core.startswith(("+", "00")):
            ok = n >= 9 or _valid_phone("+" + digits[2:] if core.startswith("00") else core, True)
        else:
            shaped = "(" in core or ext is not None
            ok = (ctx == _PHONE and n >= 8) or (shaped and n >= 9) or (n >= 9 and _valid_phone(core, False))
        if ok:
            scan.add(FindingKind.PHONE, start, end)


_START = operator.attrgetter("start")


def detect(text: str) -> list[Finding]:
    """Find sensitive values in ``text``; findings are sorted by ``start`` and never overlap."""
    if not text:
        return []
    scan = _Scan(text)
    _emails(scan)
    if _HAS_DIGIT.search(scan.folded):
        runs = list(_DIGIT_RUN.finditer(scan.folded))
        _ibans(scan)
        _cards(scan, runs)
        _credentials(scan)
        _amounts(scan)
        _accounts(scan, runs)
        _swift(scan)
        _phones(scan)
    else:
        _credentials(scan)
        _swift(scan)
    scan.findings.sort(key=_START)
    return scan.findings


def contains_credential(text: str) -> bool:
    """True when ``text`` contains a PIN, CVV, OTP, password or similar secret followed by its value."""
    if not text:
        return False
    scan = _Scan(text)
    if "cred" not in scan.flags:
        return False
    # Cards, IBANs and amounts claim their spans first, as in detect(), so a PAN is not a "PIN value".
    runs = list(_DIGIT_RUN.finditer(scan.folded))
    _emails(scan)
    _ibans(scan)
    _cards(scan, runs)
    _credentials(scan)
    return any(f.kind is FindingKind.CREDENTIAL for f in scan.findings)


# --------------------------------------------------------------------------------------------------
# Redaction

_LABEL = {
    FindingKind.CARD_NUMBER: "CARD",
    FindingKind.IBAN: "IBAN",
    FindingKind.ACCOUNT_NUMBER: "ACCOUNT",
    FindingKind.SWIFT_BIC: "SWIFT",
    FindingKind.AMOUNT: "AMOUNT",
    FindingKind.PHONE: "PHONE",
    FindingKind.EMAIL: "EMAIL",
    FindingKind.CREDENTIAL: "CREDENTIAL",
}
_KEEP_LAST4 = frozenset({FindingKind.CARD_NUMBER, FindingKind.IBAN})


def placeholder(finding: Finding) -> str:
    """The typed placeholder that replaces ``finding`` in redacted text."""
    label = _LABEL[finding.kind]
    if finding.kind in _KEEP_LAST4:
        tail = "".join(c for c in finding.value if c.isalnum())[-4:]
        return f"[{label} •••• {tail}]"
    return f"[{label}]"


def redact(text: str, findings: Iterable[Finding] | None = None) -> str:
    """Replace every finding in ``text`` by a typed placeholder.

    Cards and IBANs keep their last four characters (``[CARD •••• 1234]``); every other kind keeps
    nothing (``[ACCOUNT]``, ``[CREDENTIAL]``, ``[AMOUNT]``...). ``findings`` default to
    ``detect(text)``; overlapping findings are resolved in favour of the one that starts first.
    """
    items = detect(text) if findings is None else sorted(findings, key=lambda f: (f.start, -f.end))
    parts: list[str] = []
    cursor = 0
    for f in items:
        if f.start < cursor or f.end > len(text) or f.start >= f.end:
            continue
        parts.append(text[cursor : f.start])
        parts.append(placeholder(f))
        cursor = f.end
    parts.append(text[cursor:])
    return "".join(parts)

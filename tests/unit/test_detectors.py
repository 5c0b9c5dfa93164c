"""Guard detectors: hand-written examples in English, Arabic and Eastern Arabic digits (no dataset rows)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban
from stdnum import luhn, numdb

from amanah.adapters.privacy.detectors import (
    AMOUNT_CATEGORY,
    CATEGORY_OF,
    Finding,
    FindingKind,
    contains_credential,
    detect,
    fold,
    placeholder,
    redact,
)
from amanah.domain.categories import DataCategory
from amanah.domain.text import to_ascii_digits, to_eastern_digits

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def kinds(text: str) -> list[tuple[FindingKind, str]]:
    return [(f.kind, f.value) for f in detect(text)]


def only(text: str, kind: FindingKind) -> str:
    """The single finding's value, asserting it is the only one and of ``kind``."""
    found = kinds(text)
    assert len(found) == 1 and found[0][0] is kind, found
    return found[0][1]


# --------------------------------------------------------------------------------------------------
# Folding and offsets


def test_fold_preserves_length_and_maps_every_eastern_digit() -> None:
    """Folding turns Arabic-Indic and Persian digits and Arabic separators into ASCII, one char for one."""
    text = "٠١٢٣٤٥٦٧٨٩ ۰۱۲۳۴۵۶۷۸۹ ١٬٢٣٤٫٥ a\u00a0b c\u2013d ０９"
    folded = fold(text)
    assert len(folded) == len(text)
    assert folded == "0123456789 0123456789 1,234.5 a b c-d 09"
    assert len(to_ascii_digits(text)) == len(text)


def test_offsets_point_into_the_original_text() -> None:
    """Every finding's offsets slice its value out of the original (Eastern-digit) text."""
    text = "حولت ٢٬٥٠٠٫٧٥ ر.س من حسابي ١٢٣٤٥٦٧٨٩٠ إلى SA٠٣ ٨٠٠٠ ٠٠٠٠ ٦٠٨٠ ١٠١٦ ٧٥١٩ وجوالي ٠٥٥١٢٣٤٥٦٧"
    found = detect(text)
    assert [f.kind for f in found] == [
        FindingKind.AMOUNT,
        FindingKind.ACCOUNT_NUMBER,
        FindingKind.IBAN,
        FindingKind.PHONE,
    ]
    for f in found:
        assert text[f.start : f.end] == f.value
    assert found[0].value == "٢٬٥٠٠٫٧٥ ر.س"
    assert found[2].value == "SA٠٣ ٨٠٠٠ ٠٠٠٠ ٦٠٨٠ ١٠١٦ ٧٥١٩"


def test_findings_are_sorted_and_never_overlap() -> None:
    """detect() returns non-overlapping findings in text order."""
    text = "card 4111 1111 1111 1111, iban GB82WEST12345698765432, pin 1234, call +966 50 123 4567, $20"
    found = detect(text)
    assert len(found) == 5
    for a, b in itertools.pairwise(found):
        assert a.end <= b.start


def test_empty_and_plain_text_have_no_findings() -> None:
    """Text without sensitive data gives nothing."""
    assert detect("") == []
    assert detect("How do I activate Apple Pay on my phone?") == []
    assert detect("كيف يمكنني تفعيل البطاقة الجديدة؟") == []


# --------------------------------------------------------------------------------------------------
# Cards


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my card 4111 1111 1111 1111 was declined", "4111 1111 1111 1111"),
        ("block 4111-1111-1111-1111 now", "4111-1111-1111-1111"),
        ("charged twice on 5105105105105100", "5105105105105100"),
        ("new mastercard 2223 0031 2200 3222", "2223 0031 2200 3222"),
        ("amex 3782 822463 10005 please", "3782 822463 10005"),
        ("visa 4222222222222 expired", "4222222222222"),
        ("رقم بطاقتي ٤١١١ ١١١١ ١١١١ ١١١١ أرجو إيقافها", "٤١١١ ١١١١ ١١١١ ١١١١"),
        ("البطاقة ۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱ مسروقة", "۴۱۱۱۱۱۱۱۱۱۱۱۱۱۱۱"),
        ("salam, el card ٥١٠٥-١٠٥١-٠٥١٠-٥١٠٠ blocked", "٥١٠٥-١٠٥١-٠٥١٠-٥١٠٠"),
    ],
)
def test_cards_in_english_arabic_and_eastern_digits(text: str, value: str) -> None:
    """Luhn-valid PANs are found whatever the grouping, language or digit script."""
    assert only(text, FindingKind.CARD_NUMBER) == value


def test_luhn_invalid_sixteen_digits_are_not_cards() -> None:
    """A 16-digit number that fails Luhn is not reported as a card."""
    assert not luhn.is_valid("4111111111111112")
    assert detect("card 4111 1111 1111 1112 declined") == []
    assert detect("4111111111111112") == []


def test_card_number_next_to_an_account_word_is_an_account() -> None:
    """A Luhn-valid number the customer calls an account is still protected, as an account identifier."""
    found = detect("my account 4111111111111111 is frozen")
    assert [f.kind for f in found] == [FindingKind.ACCOUNT_NUMBER]


@pytest.mark.parametrize(
    "text",
    [
        "card ending **** **** **** 1234 works?",
        "I used the card ending XXXX-XXXX-XXXX-5071 yesterday",
        "استخدمت البطاقة المنتهية بـ 3162 أمس",
        "payment on 2026-01-12 at 14:30 was declined",
        "not getting texts since 24/07/2026 at 03:38 PM",
        "the savings rate is 3.5% for 24 months",
        "نسبة التمويل ٥٫٦٧٪ لمدة ٢٤ شهر",
        "my order 553200710666 has not arrived",
        "tracking number 458420340433 for the new card",
        "order 0501234567 is late",
        "ref 2377154099 still open",
        "ref CMP-2017-749695 any update?",
        "رقم الشكوى 6781784998، هل من جديد؟",
        "الدفع للطلب 1Z6181287659 بتاريخ 2026-03-24 الساعة 14:51 ما زال معلقاً",
        "is branch 0134 open on saturday?",
        "I have 2 cards and 3 accounts",
    ],
)
def test_distractors_are_not_flagged(text: str) -> None:
    """Masked cards, dates, times, percentages, order/reference/tracking ids and branch numbers pass."""
    assert detect(text) == []


def _pan(prefix: str, length: int, body: str) -> str:
    partial = (prefix + body)[: length - 1].ljust(length - 1, "0")
    return partial + luhn.calc_check_digit(partial)


_ISSUERS = [  # (prefix, allowed lengths): real issuer ranges
    ("4", (13, 16, 19)),
    ("51", (16,)),
    ("55", (16,)),
    ("2221", (16,)),
    ("2720", (16,)),
    ("34", (15,)),
    ("37", (15,)),
    ("6011", (16, 19)),
    ("65", (16,)),
    ("3530", (16,)),
    ("62", (16, 17, 18, 19)),
    ("36", (14,)),
    ("6759", (16, 18, 19)),
    ("2200", (16,)),
]
_EN_WORDS = [
    "please",
    "block",
    "my",
    "new",
    "visa",
    "was",
    "charged",
    "twice",
    "on",
    "the",
    "hi",
    "thanks",
    "card",
]
_AR_WORDS = ["أرجو", "إيقاف", "بطاقتي", "الجديدة", "تم", "خصم", "مرتين", "من", "فضلك", "شكرا", "عاجل"]


@st.composite
def pan_in_text(draw: st.DrawFn) -> tuple[str, str]:
    prefix, lengths = draw(st.sampled_from(_ISSUERS))
    length = draw(st.sampled_from(lengths))
    pan = _pan(prefix, length, draw(st.text("0123456789", min_size=length, max_size=length)))
    assert luhn.is_valid(pan) and len(pan) == length
    layout = draw(st.sampled_from(["plain", "space", "dash"]))
    if layout == "plain":
        written = pan
    else:
        sep = " " if layout == "space" else "-"
        written = sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    script = draw(st.sampled_from(["ascii", "arabic", "persian"]))
    written = written.translate({"ascii": {}, "arabic": ARABIC_INDIC, "persian": PERSIAN}[script])
    words = draw(st.sampled_from([_EN_WORDS, _AR_WORDS, _EN_WORDS + _AR_WORDS]))
    before = draw(st.lists(st.sampled_from(words), max_size=6))
    after = draw(st.lists(st.sampled_from(words), max_size=6))
    return " ".join([*before, written, *after]), pan


@settings(max_examples=150, deadline=None)
@given(pan_in_text())
def test_any_luhn_valid_pan_in_random_text_is_found_and_removed(case: tuple[str, str]) -> None:
    """Any Luhn-valid PAN of a real issuer range, grouped or not, in any digit script, is found and redacted."""
    text, pan = case
    cards = [f for f in detect(text) if f.kind is FindingKind.CARD_NUMBER]
    assert len(cards) == 1
    assert to_ascii_digits(cards[0].value).replace(" ", "").replace("-", "") == pan
    redacted = redact(text)
    remaining = "".join(c for c in fold(redacted) if c.isdigit())
    assert remaining == pan[-4:]  # only the last four survive, inside the placeholder
    assert "[CARD •••• " in redacted


# --------------------------------------------------------------------------------------------------
# IBANs


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my iban SA03 8000 0000 6080 1016 7519 ok", "SA03 8000 0000 6080 1016 7519"),
        ("gb82west12345698765432 is my iban", "gb82west12345698765432"),
        ("GB82WEST12345698765432 failed yesterday", "GB82WEST12345698765432"),
        ("IBAN: AE07 0331 2345 6789 0123 456.", "AE07 0331 2345 6789 0123 456"),
        ("الآيبان SA٠٣٨٠٠٠٠٠٠٠٦٠٨٠١٠١٦٧٥١٩ صحيح؟", "SA٠٣٨٠٠٠٠٠٠٠٦٠٨٠١٠١٦٧٥١٩"),
        ("حول إلى GB82 WEST 1234 5698 7654 32 اليوم", "GB82 WEST 1234 5698 7654 32"),
    ],
)
def test_ibans_electronic_paper_lower_case_and_eastern(text: str, value: str) -> None:
    """IBANs are found in electronic, paper (groups of 4), lower-case and Eastern-digit forms."""
    assert only(text, FindingKind.IBAN) == value


def test_iban_with_wrong_check_digits_is_not_an_iban() -> None:
    """A mod-97 failure is not reported as an IBAN."""
    assert not stdnum_iban.is_valid("GB83WEST12345698765432")
    assert [k for k, _ in kinds("GB83WEST12345698765432 wrong")] == []


def _registry_countries() -> list[tuple[str, str]]:
    db = numdb.get("iban")
    out = []
    for first in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        for second in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            info = db.info(first + second)
            bban = info[0][1].get("bban") if info else None
            if bban:
                out.append((first + second, bban))
    return out


def _example_iban(country: str, layout: str) -> str:
    filler = {"n": "7", "a": "K", "c": "3"}
    bban = "".join(filler[kind] * int(count) for count, kind in re.findall(r"(\d+)!([nac])", layout))
    check = stdnum_iban.calc_check_digits(country + "00" + bban)
    return country + check + bban


def test_every_registry_country_is_recognised() -> None:
    """A valid IBAN of every country in the registry is found, electronic and paper format."""
    countries = _registry_countries()
    assert len(countries) > 70
    for country, layout in countries:
        number = _example_iban(country, layout)
        assert stdnum_iban.is_valid(number, check_country=False), number
        paper = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        for written in (number, paper, number.lower()):
            assert only(f"send it to {written} today", FindingKind.IBAN) == written


_COUNTRIES = _registry_countries()


@st.composite
def iban_like(draw: st.DrawFn) -> str:
    country, layout = draw(st.sampled_from(_COUNTRIES))
    alphabet = {
        "n": "0123456789",
        "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    }
    bban = "".join(
        draw(st.text(alphabet[kind], min_size=int(count), max_size=int(count)))
        for count, kind in re.findall(r"(\d+)!([nac])", layout)
    )
    if draw(st.booleans()):
        check = stdnum_iban.calc_check_digits(country + "00" + bban)
    else:
        check = draw(st.text("0123456789", min_size=2, max_size=2))
    return country + check + bban


@settings(max_examples=300, deadline=None)
@given(iban_like())
def test_iban_verdict_agrees_with_stdnum(number: str) -> None:
    """An IBAN-shaped string is reported exactly when python-stdnum (mod 97 + registry) says it is valid."""
    found = [v for k, v in kinds(f"pay to {number} please") if k is FindingKind.IBAN]
    assert bool(found) == stdnum_iban.is_valid(number, check_country=False)


# --------------------------------------------------------------------------------------------------
# Account numbers, routing numbers, SWIFT/BIC


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("account number 12345678 please", "12345678"),
        ("acct 19484965 shows the wrong balance", "19484965"),
        ("the direct debit keeps hitting 83617017861", "83617017861"),
        ("رقم حسابي ١٢٣٤٥٦٧٨٩٠ لو سمحت", "١٢٣٤٥٦٧٨٩٠"),
        ("حولوا من حساب التوفير 8696372561135 إلى الجاري", "8696372561135"),
        ("the ABA 021000021 doesn't work", "021000021"),
        ("routing number ٠٢١٠٠٠٠٢١", "٠٢١٠٠٠٠٢١"),
        ("my account WEST12345698765432 in London", "WEST12345698765432"),
    ],
)
def test_account_and_routing_numbers(text: str, value: str) -> None:
    """Digit runs (and GB BBANs) next to account or routing words are account identifiers."""
    assert only(text, FindingKind.ACCOUNT_NUMBER) == value


def test_long_number_without_account_context_is_not_an_account() -> None:
    """Without an account word a bare digit run is not called an account number."""
    assert detect("the number 12345678 was printed on the letter") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SWIFT code NWBKGB2L please", "NWBKGB2L"),
        ("send to bank BARCGB22XXX today", "BARCGB22XXX"),
        ("رمز السويفت RJHISARI صحيح؟", "RJHISARI"),
        ("beneficiary GB82WEST12345698765432 (NWBKGB2L) added?", "NWBKGB2L"),
    ],
)
def test_swift_bic_with_context(text: str, value: str) -> None:
    """BICs are found when the message talks about a bank, SWIFT/BIC, a transfer or carries an IBAN."""
    assert (FindingKind.SWIFT_BIC, value) in kinds(text)


def test_upper_case_words_are_not_bics() -> None:
    """Ordinary capitalised words with a BIC shape are not flagged without a SWIFT keyword."""
    assert detect("PLEASE HELP ME WITH MY BUSINESS ACCOUNT TRANSFER TODAY") == []
    assert detect("I work in BUSINESS development") == []


# --------------------------------------------------------------------------------------------------
# Amounts, phones, e-mail


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("I paid $1,250.50 yesterday", "$1,250.50"),
        ("transfer SAR 500 now", "SAR 500"),
        ("my balance shows 73,200.55 dollars", "73,200.55 dollars"),
        ("about 1.5 million dollars", "1.5 million dollars"),
        ("حولت ١٬٢٥٠٫٥٠ ر.س أمس", "١٬٢٥٠٫٥٠ ر.س"),
        ("رصيدي 300 درهم إماراتي فقط", "300 درهم إماراتي"),
        ("دفعت 20 دينار أردني", "20 دينار أردني"),
        ("المبلغ ٧٥ د.أ", "٧٥ د.أ"),
        ("سحبت 100 جنيه مصري", "100 جنيه مصري"),
        ("راتبي ٢٢٬٨٦٣ د.إ لم يصل", "٢٢٬٨٦٣ د.إ"),
        ("balance كم؟ last time كان SAR 85.83", "SAR 85.83"),
    ],
)
def test_amounts_with_symbols_codes_and_words(text: str, value: str) -> None:
    """Amounts are anchored on a currency symbol, ISO code or English/Arabic currency word."""
    assert only(text, FindingKind.AMOUNT) == value


def test_amount_category_is_documented_choice() -> None:
    """Amounts map to the documented category; the rest of the map follows the brief."""
    assert AMOUNT_CATEGORY is DataCategory.ACCOUNT_BALANCE
    assert CATEGORY_OF[FindingKind.AMOUNT] is AMOUNT_CATEGORY
    assert CATEGORY_OF[FindingKind.CARD_NUMBER] is DataCategory.CARD_NUMBER
    assert CATEGORY_OF[FindingKind.IBAN] is DataCategory.ACCOUNT_IDENTIFIER
    assert CATEGORY_OF[FindingKind.SWIFT_BIC] is DataCategory.ACCOUNT_IDENTIFIER
    assert CATEGORY_OF[FindingKind.PHONE] is DataCategory.CUSTOMER_CONTACT
    assert CATEGORY_OF[FindingKind.EMAIL] is DataCategory.CUSTOMER_CONTACT
    assert CATEGORY_OF[FindingKind.CREDENTIAL] is DataCategory.CREDENTIAL
    assert set(CATEGORY_OF) == set(FindingKind)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("call me on +966 50 123 4567", "+966 50 123 4567"),
        ("جوالي ٠٥٥١٢٣٤٥٦٧ من فضلكم", "٠٥٥١٢٣٤٥٦٧"),
        ("تواصلوا معي على ٠٠٩٧١ ٥٠ ٢٣٧ ٨٧٢٥", "٠٠٩٧١ ٥٠ ٢٣٧ ٨٧٢٥"),
        ("office +44 20 7946 0958 anytime", "+44 20 7946 0958"),
        ("call (202) 456-1111 tomorrow", "(202) 456-1111"),
        ("reach me at 001-470-835-8420x1419", "001-470-835-8420x1419"),
        ("jordan +962 7 9123 4567", "+962 7 9123 4567"),
        ("call me about my order on 0501234567", "0501234567"),
    ],
)
def test_phone_numbers(text: str, value: str) -> None:
    """Phones: international, Saudi mobiles, Gulf, UK and US layouts, Eastern digits, extensions."""
    assert only(text, FindingKind.PHONE) == value


def test_emails_in_english_and_arabic_text() -> None:
    """E-mail addresses are found inside English and Arabic sentences."""
    assert only("email ahmed.ali@example.com please", FindingKind.EMAIL) == "ahmed.ali@example.com"
    assert only("راسلني على sara_99@mail.example.org شكرا", FindingKind.EMAIL) == "sara_99@mail.example.org"


# --------------------------------------------------------------------------------------------------
# Credentials


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my PIN is 4821", "4821"),
        ("CVV: 123", "123"),
        ("exp 09/27 cvc 456", "456"),
        ("OTP 482913", "482913"),
        ("the verification code is 482913", "482913"),
        ("password: hunter2", "hunter2"),
        ("my passcode is 1234", "1234"),
        ("الرقم السري ٤٨٢١", "٤٨٢١"),
        ("رمز التحقق هو 482913", "482913"),
        ("كلمة المرور Ahmed@2024", "Ahmed@2024"),
        ("كلمة السر: ١٢٣٤٥٦", "١٢٣٤٥٦"),
        ("الرمز السري 9876", "9876"),
        ("رمز 482913", "482913"),
    ],
)
def test_credentials_in_both_languages(text: str, value: str) -> None:
    """A credential word followed closely by a value yields the value as a credential."""
    assert only(text, FindingKind.CREDENTIAL) == value
    assert contains_credential(text)


@pytest.mark.parametrize(
    "text",
    [
        "I forgot my PIN",
        "reset my password please",
        "My passcode won't work.",
        "OTP not received since 2026-01-12",
        "ما هو رمز السويفت؟",
        "نسيت كلمة المرور",
        "PIN changed on 12/05/2026",
    ],
)
def test_credential_words_without_a_value_are_not_credentials(text: str) -> None:
    """Talking about a PIN or password is not disclosing one."""
    assert not contains_credential(text)
    assert all(f.kind is not FindingKind.CREDENTIAL for f in detect(text))


def test_card_next_to_pin_stays_a_card() -> None:
    """A PAN followed by a PIN gives a card and a credential, not one swallowing the other."""
    assert kinds("my card 5105 1051 0510 5100 and pin 1234") == [
        (FindingKind.CARD_NUMBER, "5105 1051 0510 5100"),
        (FindingKind.CREDENTIAL, "1234"),
    ]


def test_finding_repr_hides_the_value() -> None:
    """Logging a finding never logs the secret it points at."""
    finding = detect("my PIN is 4821")[0]
    assert "4821" not in repr(finding)
    assert finding.value == "4821"


# --------------------------------------------------------------------------------------------------
# Redaction


def test_redaction_placeholders_keep_only_the_last_four_of_cards_and_ibans() -> None:
    """Cards and IBANs keep the last four characters; everything else keeps nothing."""
    pan = _pan("411111111111", 16, "")  # a valid Visa PAN
    grouped = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    text = (
        f"card {grouped} iban GB82WEST12345698765432 acct 12345678 bic NWBKGB2L "
        "$20 +966 50 123 4567 a@b.example pin 9876"
    )
    redacted = redact(text)
    assert redacted == (
        f"card [CARD •••• {pan[-4:]}] iban [IBAN •••• 5432] acct [ACCOUNT] bic [SWIFT] "
        "[AMOUNT] [PHONE] [EMAIL] pin [CREDENTIAL]"
    )


def test_redaction_keeps_eastern_last_four_in_the_customers_script() -> None:
    """The kept last four are the characters the customer typed (here Eastern digits)."""
    text = "بطاقتي " + to_eastern_digits("4111 1111 1111 1111") + " ضاعت"
    assert redact(text) == "بطاقتي [CARD •••• ١١١١] ضاعت"


def test_redact_with_given_findings_and_overlaps() -> None:
    """redact() uses the findings it is given and ignores overlapping or out-of-range ones."""
    text = "pay 4111111111111111 now"
    card = detect(text)[0]
    overlapping = Finding(FindingKind.AMOUNT, card.start + 2, card.end + 2, "x", DataCategory.ACCOUNT_BALANCE)
    outside = Finding(FindingKind.EMAIL, 100, 120, "x", DataCategory.CUSTOMER_CONTACT)
    assert redact(text, [overlapping, card, outside]) == "pay [CARD •••• 1111] now"
    assert redact(text, []) == text
    assert placeholder(card) == "[CARD •••• 1111]"


def test_declared_plain_word_password_is_a_credential() -> None:
    """A password declared with "is" is redacted even when it is a plain word; descriptions are not."""
    assert redact("my password is sunshine") == "my password is [CREDENTIAL]"
    assert redact("كلمة المرور هي قمر") == "كلمة المرور هي [CREDENTIAL]"
    assert redact("my password is wrong") == "my password is wrong"
    assert redact("I forgot my password") == "I forgot my password"


def test_arabic_tanween_after_password_word_is_not_a_secret() -> None:
    """ "لا تشارك كلمة المرور أبداً" (never share your password) is advice, not a password."""
    assert redact("لا تشارك كلمة المرور أبداً مع أحد") == "لا تشارك كلمة المرور أبداً مع أحد"


@pytest.mark.parametrize(
    "text",
    [
        "PIN1234",
        "pincode 1234",
        "my pin's 1234",
        "I set my pin to 1234",
        "the pin for my card is 1234",
        "1234 is my pin",
        "pin: 1 2 3 4",
        "pw: hunter2",
        "otp for login is 928301",
    ],
)
def test_more_ways_of_typing_a_credential(text: str) -> None:
    """Credentials written in the ways customers actually type them are redacted."""
    redacted = redact(text)
    assert "[CREDENTIAL]" in redacted
    assert "1234" not in redacted and "hunter2" not in redacted and "928301" not in redacted

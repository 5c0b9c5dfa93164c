"""Pure text helpers shared by every layer: digit normalisation and script detection."""

from __future__ import annotations

import unicodedata

# Arabic-Indic (U+0660..) and Extended Arabic-Indic / Persian (U+06F0..) digits to ASCII.
_DIGITS = {ord(c): str(i) for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")}
_DIGITS.update({ord(c): str(i) for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")})
_DIGITS[ord("\u066b")] = "."  # ARABIC DECIMAL SEPARATOR
_DIGITS[ord("\u066c")] = ","  # ARABIC THOUSANDS SEPARATOR
_TO_EASTERN = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def to_ascii_digits(text: str) -> str:
    """Replace Eastern Arabic and Persian digits (and Arabic separators) by ASCII ones."""
    return text.translate(_DIGITS)


def to_eastern_digits(text: str) -> str:
    """Replace ASCII digits by Eastern Arabic digits (for rendering and for leak searches)."""
    return text.translate(_TO_EASTERN)


def arabic_ratio(text: str) -> float:
    """Share of letters in ``text`` that are in the Arabic script."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    arabic = sum(1 for c in letters if "ARABIC" in unicodedata.name(c, ""))
    return arabic / len(letters)


def detect_language(text: str, default: str = "en") -> str:
    """Return ``"ar"`` when most letters are Arabic, ``"en"`` when most are Latin, else ``default``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return default
    return "ar" if arabic_ratio(text) >= 0.5 else "en"


_ARABIC_DIACRITICS = {ord(c): None for c in "\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652\u0640"}
_ARABIC_LETTER_FOLD = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ة": "ه", "ى": "ي", "ؤ": "و", "ئ": "ي"})


def normalize(text: str) -> str:
    """Fold text for matching: NFKC, lower case, ASCII digits, Arabic diacritics and letter variants."""
    text = unicodedata.normalize("NFKC", text)
    text = to_ascii_digits(text).lower()
    text = text.translate(_ARABIC_DIACRITICS).translate(_ARABIC_LETTER_FOLD)
    return " ".join(text.split())

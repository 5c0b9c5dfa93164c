"""Splitting and shortening text for platforms that cap message length.

Lengths are counted in **UTF-16 code units** (what Meta's limits are safest read as: a chunk that fits
in UTF-16 units also fits when counted in code points). Cuts never fall inside a surrogate pair (we cut
on code points) nor inside a grapheme cluster (combining marks, Arabic harakat, ZWJ emoji sequences,
variation selectors, skin-tone modifiers, flag pairs).

Cut preference, best first: paragraph break, line break, end of sentence (``. ! ? … ؟ ۔``), any
whitespace; a word is cut only when it alone exceeds the limit. Paragraph, line and sentence cuts are
taken only when they keep at least half of the allowed length in the chunk, so one early full stop does
not produce a tiny message.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from itertools import accumulate

# Sentence-final punctuation: Latin, ellipsis, Arabic question mark, Arabic (Urdu) full stop.
_SENTENCE = re.compile(r"[.!?…؟۔]+[\"'»”’)\]]*(?=\s)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_LINE = re.compile(r"\n")
_SPACE = re.compile(r"\s")

_ZWJ = "\u200d"
ELLIPSIS = "…"


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (astral characters such as emoji count 2)."""
    return len(text.encode("utf-16-le")) // 2


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _extends(char: str) -> bool:
    """True when ``char`` belongs to the grapheme cluster of the character before it."""
    code = ord(char)
    return (
        char == _ZWJ
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
    )


def _safe_cut(text: str, cut: int) -> bool:
    """True when cutting ``text`` before index ``cut`` does not split a grapheme cluster."""
    if cut <= 0 or cut >= len(text):
        return True
    if _extends(text[cut]) or text[cut - 1] == _ZWJ:
        return False
    if _is_regional_indicator(text[cut]) and _is_regional_indicator(text[cut - 1]):
        run = 0
        i = cut - 1
        while i >= 0 and _is_regional_indicator(text[i]):
            run += 1
            i -= 1
        return run % 2 == 0
    return True


class _Boundaries:
    """Candidate cut positions of one text, by preference level, plus UTF-16 prefix lengths."""

    def __init__(self, text: str) -> None:
        self.text = text
        # prefix[i] = UTF-16 units of text[:i]; strictly increasing.
        self.prefix = [0, *accumulate(_units(c) for c in text)]
        # A cut at position p means: chunk = text[:p], the rest starts at text[p:] (left-stripped).
        self.levels: list[list[int]] = [
            [m.start() for m in _PARAGRAPH.finditer(text)],
            [m.start() for m in _LINE.finditer(text)],
            [m.end() for m in _SENTENCE.finditer(text)],
            [m.start() for m in _SPACE.finditer(text)],
        ]

    def units(self, start: int, end: int) -> int:
        return self.prefix[end] - self.prefix[start]

    def forward_cut(self, start: int, limit: int) -> int:
        """The best end position for a chunk starting at ``start`` that fits in ``limit`` units."""
        hard = bisect_right(self.prefix, self.prefix[start] + limit) - 1  # max end index that fits
        half = start + max(1, (hard - start) // 2)
        for level, positions in enumerate(self.levels):
            low = start + 1 if level == len(self.levels) - 1 else half
            i = bisect_right(positions, hard) - 1
            if i >= 0 and positions[i] >= low:
                return positions[i]
        cut = hard
        while cut > start + 1 and not _safe_cut(self.text, cut):
            cut -= 1
        return max(cut, start + 1)

    def tail_cut(self, limit: int) -> int:
        """The earliest start position whose tail ``text[p:]`` fits in ``limit`` units, at a boundary."""
        end = len(self.text)
        lo = bisect_left(self.prefix, self.prefix[end] - limit)  # min start index that fits
        half = lo + (end - lo) // 2
        for level, positions in enumerate(self.levels):
            high = end - 1 if level == len(self.levels) - 1 else half
            i = bisect_left(positions, lo)
            if i < len(positions) and 0 < positions[i] <= high:
                return positions[i]
        cut = lo
        while cut < end - 1 and not _safe_cut(self.text, cut):
            cut += 1
        return cut


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` UTF-16 units, in order, at the best boundaries.

    Whitespace at the cuts is dropped; empty input gives ``[]``. Text that fits is returned unchanged
    (apart from surrounding whitespace).
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    text = text.strip()
    if not text:
        return []
    b = _Boundaries(text)
    chunks: list[str] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        if b.units(start, n) <= limit:
            chunks.append(text[start:].rstrip())
            break
        cut = b.forward_cut(start, limit)
        chunks.append(text[start:cut].rstrip())
        start = cut
    return chunks


def split_tail(text: str, limit: int) -> tuple[str, str]:
    """Split ``text`` into ``(head, tail)`` with ``tail`` fitting in ``limit`` units, cut at a boundary.

    Used when the last part of a message must go into a smaller field (a button template's text, an
    interactive message's body). ``head`` is ``""`` when the whole text fits.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    text = text.strip()
    if utf16_len(text) <= limit:
        return "", text
    cut = _Boundaries(text).tail_cut(limit)
    return text[:cut].rstrip(), text[cut:].strip()


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` UTF-16 units, else a deterministic prefix ending in ``…``."""
    text = " ".join(text.split())
    if utf16_len(text) <= limit:
        return text
    b = _Boundaries(text)
    cut = bisect_right(b.prefix, limit - 1) - 1  # leave one unit for the ellipsis
    while cut > 1 and not _safe_cut(text, cut):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS

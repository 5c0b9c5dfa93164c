"""Slot extraction: periods, counts, account kinds, merchants and categories, in English and Arabic.

Pure functions over normalised text (see :func:`amanah.domain.text.normalize`), so Eastern Arabic
digits and Arabic letter variants are already folded.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from amanah.app.i18n import format_day
from amanah.domain.banking import AccountKind
from amanah.domain.text import normalize, to_eastern_digits


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive
    label_en: str
    label_ar: str

    def label(self, language: str) -> str:
        return self.label_ar if language == "ar" else self.label_en


_MONTHS_EN = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS_EN.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS_EN["sept"] = 9
# Gulf/Egyptian names and Levantine (Syriac) names, already folded by normalize().
_MONTHS_AR = {
    normalize(k): v
    for k, v in {
        "يناير": 1,
        "فبراير": 2,
        "مارس": 3,
        "أبريل": 4,
        "ابريل": 4,
        "مايو": 5,
        "يونيو": 6,
        "يوليو": 7,
        "أغسطس": 8,
        "اغسطس": 8,
        "سبتمبر": 9,
        "أكتوبر": 10,
        "اكتوبر": 10,
        "نوفمبر": 11,
        "ديسمبر": 12,
        "كانون الثاني": 1,
        "شباط": 2,
        "آذار": 3,
        "اذار": 3,
        "نيسان": 4,
        "أيار": 5,
        "ايار": 5,
        "حزيران": 6,
        "تموز": 7,
        "آب": 8,
        "أيلول": 9,
        "ايلول": 9,
        "تشرين الأول": 10,
        "تشرين الاول": 10,
        "تشرين الثاني": 11,
        "كانون الأول": 12,
        "كانون الاول": 12,
    }.items()
}
_MONTH_NAMES_AR = {1: "يناير", 2: "فبراير", 3: "مارس", 4: "أبريل", 5: "مايو", 6: "يونيو", 7: "يوليو",
                   8: "أغسطس", 9: "سبتمبر", 10: "أكتوبر", 11: "نوفمبر", 12: "ديسمبر"}  # fmt: skip

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "twenty": 20,
    "واحد": 1, "اثنين": 2, "اثنتين": 2, "ثلاث": 3, "ثلاثه": 3, "اربع": 4, "اربعه": 4, "خمس": 5,
    "خمسه": 5, "ست": 6, "سته": 6, "سبع": 7, "سبعه": 7, "ثمان": 8, "ثماني": 8, "ثمانيه": 8,
    "تسع": 9, "تسعه": 9, "عشر": 10, "عشره": 10, "عشرين": 20,
}  # fmt: skip


def _month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _month_period(year: int, month: int) -> Period:
    start, end = _month_bounds(year, month)
    return Period(
        start,
        end,
        f"in {calendar.month_name[month]} {year}",
        f"في {_MONTH_NAMES_AR[month]} {to_eastern_digits(str(year))}",
    )


def _has(text: str, *phrases: str) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(normalize(p))}(?!\w)", text) for p in phrases)


def extract_period(text: str, today: date) -> Period | None:
    """The date range a message talks about, or ``None`` when it names none."""
    t = normalize(text)
    if _has(t, "last month", "previous month", "past month", "الشهر الماضي", "الشهر اللي فات",
            "الشهر السابق", "الشهر الفايت", "الشهر الي فات", "الشهر اللى فات"):  # fmt: skip
        first_this = today.replace(day=1)
        last_prev = first_this - timedelta(days=1)
        p = _month_period(last_prev.year, last_prev.month)
        return Period(p.start, p.end, "last month", "الشهر الماضي")
    if _has(t, "this month", "so far this month", "هذا الشهر", "هالشهر", "الشهر الحالي", "الشهر ده",
            "هاد الشهر"):  # fmt: skip
        return Period(today.replace(day=1), today, "this month", "هذا الشهر")
    if _has(t, "last week", "past week", "previous week", "الاسبوع الماضي", "الاسبوع اللي فات",
            "الاسبوع الفايت", "الاسبوع السابق"):  # fmt: skip
        start = today - timedelta(days=today.weekday() + 7)
        return Period(start, start + timedelta(days=6), "last week", "الأسبوع الماضي")
    if _has(t, "this week", "هذا الاسبوع", "هالاسبوع", "الاسبوع ده"):
        return Period(today - timedelta(days=today.weekday()), today, "this week", "هذا الأسبوع")
    if _has(t, "yesterday", "امس", "امبارح", "البارحه", "مبارح"):
        y = today - timedelta(days=1)
        return Period(y, y, "yesterday", "أمس")
    if _has(t, "today", "اليوم", "النهارده"):
        return Period(today, today, "today", "اليوم")
    if _has(t, "this year", "هذه السنه", "هذا العام", "هالسنه", "السنه دي"):
        return Period(date(today.year, 1, 1), today, "this year", "هذه السنة")
    if _has(t, "last year", "السنه الماضيه", "العام الماضي"):
        return Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31), "last year", "السنة الماضية")
    m = re.search(r"(?:last|past|اخر|في اخر|خلال اخر|خلال)\s+(\d{1,3})\s*(days?|ايام|يوم|يوما)", t)
    if m:
        n = max(1, min(int(m.group(1)), 366))
        return Period(
            today - timedelta(days=n - 1),
            today,
            f"in the last {n} days",
            f"في آخر {to_eastern_digits(str(n))} يوماً",
        )
    explicit = _explicit_range(t, today)
    if explicit is not None:
        return explicit
    month = _find_month(t)
    if month is not None:
        year = today.year if month <= today.month else today.year - 1
        ym = re.search(r"\b(20\d\d)\b", t)
        if ym:
            year = int(ym.group(1))
        return _month_period(year, month)
    return None


_RANGE = re.compile(
    r"(?:since|from|starting|منذ|من تاريخ|من|ابتداء من)\s+(?P<a>[^,.!?؟،]+?)"
    r"(?:\s+(?:to|until|till|through|and|-|الى|حتى|لغايه|لحد|ل)\s+(?P<b>[^,.!?؟،]+?))?\s*(?:$|[,.!?؟،])"
)
_ON_DAY = re.compile(
    r"(?:on|في|يوم|بتاريخ)\s+(?P<a>\d{1,2}(?:st|nd|rd|th)?\s+[^\s,.!?؟،]+(?:\s+20\d\d)?|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?)"
)


def _parse_day(text: str, today: date) -> date | None:
    text = text.strip()
    if not re.search(r"\d", text) and _find_month(text) is None:
        return None  # "from my savings", "من كارفور": not a date
    from datetime import datetime

    import dateparser  # imported lazily: it is slow to load and most messages name no date

    parsed = dateparser.parse(
        text,
        languages=["en", "ar"],
        settings={
            "RELATIVE_BASE": datetime(today.year, today.month, today.day),
            "PREFER_DATES_FROM": "past",
            "DATE_ORDER": "DMY",
            "STRICT_PARSING": False,
        },
    )
    if parsed is None:
        return None
    day = parsed.date()
    return day if day <= today else None


def _explicit_range(t: str, today: date) -> Period | None:
    """ "since 3 October", "from 1/10 to 15/10", "منذ ١ أكتوبر", "on 5 November"."""
    m = _RANGE.search(t)
    if m:
        start = _parse_day(m.group("a"), today)
        if start is not None:
            end = _parse_day(m.group("b"), today) if m.group("b") else today
            if end is not None and start <= end:
                return Period(
                    start,
                    end,
                    f"from {format_day(start, 'en')} to {format_day(end, 'en')}",
                    f"من {format_day(start, 'ar')} إلى {format_day(end, 'ar')}",
                )
    m = _ON_DAY.search(t)
    if m:
        day = _parse_day(m.group("a"), today)
        if day is not None:
            return Period(day, day, f"on {format_day(day, 'en')}", f"في {format_day(day, 'ar')}")
    return None


def _find_month(t: str) -> int | None:
    for name, num in sorted(_MONTHS_AR.items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"(?<!\w)(?:ب|في|و)?{re.escape(name)}(?!\w)", t):
            return num
    for word in re.findall(r"[a-z]+", t):
        if word in _MONTHS_EN and (
            len(word) > 3 or word in {"oct", "nov", "dec", "jan", "feb", "sep", "aug"}
        ):
            if word == "may" and not re.search(r"\b(in|during|for|of|since)\s+may\b", t):
                continue  # "may I ..." is not a month
            return _MONTHS_EN[word]
    m = re.search(r"(?:شهر|month)\s*(\d{1,2})\b", t)
    if m and 1 <= int(m.group(1)) <= 12:
        return int(m.group(1))
    return None


def extract_count(text: str, default: int | None = None, maximum: int = 20) -> int | None:
    """ "last 5 transactions" -> 5; "آخر ٣ عمليات" -> 3. Bounded by ``maximum``."""
    t = normalize(text)
    m = re.search(
        r"(?:last|latest|recent|past|top|first|show|اخر|احدث|عرض)\s+(\d{1,3})\b(?!\s*(?:days?|weeks?|months?|ايام|يوم|اسابيع|شهور|اشهر))",
        t,
    )
    if not m:
        m = re.search(r"\b(\d{1,3})\s+(?:transactions?|payments?|purchases?|عمليات|عمليه|حركات|معاملات)", t)
    if m:
        n = int(m.group(1))
        return max(1, min(n, maximum))
    for word, n in _NUMBER_WORDS.items():
        if re.search(rf"(?:last|latest|recent|اخر)\s+{word}(?!\w)", t):
            return min(n, maximum)
    return default


_SAVINGS = ("savings", "saving", "توفير", "التوفير", "ادخار", "الادخار")
_CURRENT = ("current", "checking", "cheque", "جاري", "الجاري", "الحساب الجاري")


def extract_account_kind(text: str) -> AccountKind | None:
    t = normalize(text)
    if _has(t, *_SAVINGS):
        return AccountKind.SAVINGS
    if _has(t, *_CURRENT):
        return AccountKind.CURRENT
    return None


# Arabic and common spellings of merchants, folded to the English name used by the core.
MERCHANT_ALIASES: dict[str, str] = {
    normalize(k): v
    for k, v in {
        "كارفور": "carrefour",
        "لولو": "lulu",
        "اللولو": "lulu",
        "التميمي": "tamimi",
        "تميمي": "tamimi",
        "بنده": "panda",
        "بندة": "panda",
        "امازون": "amazon",
        "أمازون": "amazon",
        "نون": "noon",
        "كريم": "careem",
        "اوبر": "uber",
        "أوبر": "uber",
        "ستاربكس": "starbucks",
        "ماكدونالدز": "mcdonald",
        "طلبات": "talabat",
        "هنقرستيشن": "hungerstation",
        "جاهز": "jahez",
        "نتفليكس": "netflix",
        "سبوتيفاي": "spotify",
        "ايكيا": "ikea",
        "زارا": "zara",
        "جرير": "jarir",
        "اكسترا": "extra",
        "شل": "shell",
        "ادنوك": "adnoc",
        "ارامكو": "aramco",
        "الدانوب": "danube",
        "سبينس": "spinneys",
        "سيفوي": "safeway",
        "زين": "zain",
        "اورنج": "orange",
        "اتصالات": "etisalat",
        "ديوا": "dewa",
        "ابل": "apple",
        "آبل": "apple",
        "جوجل": "google",
        "قوقل": "google",
    }.items()
}


def match_merchant(text: str, merchants: Iterable[str]) -> str | None:
    """The customer's merchant named in ``text`` (English or Arabic spelling), longest match first."""
    t = normalize(text)
    for alias, english in MERCHANT_ALIASES.items():
        if re.search(rf"(?<!\w)(?:ب|في|من|عند|لدى|ل)?{re.escape(alias)}(?!\w)", t):
            t += f" {english}"
    best: str | None = None
    for merchant in merchants:
        m = normalize(merchant)
        head = m.split()[0] if m.split() else m
        for candidate in {m, head}:
            if len(candidate) >= 3 and re.search(rf"(?<!\w){re.escape(candidate)}(?!\w)", t):
                if best is None or len(merchant) > len(best):
                    best = merchant
    return best


CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "groceries": ("groceries", "grocery", "supermarket", "supermarkets", "food shopping", "بقاله", "البقاله",
                  "سوبرماركت", "السوبرماركت", "مواد غذائيه", "المواد الغذائيه", "تموين", "خضار"),
    "dining": ("dining", "restaurants", "restaurant", "eating out", "takeaway", "coffee", "cafes", "مطاعم",
               "المطاعم", "مطعم", "اكل برا", "قهوه", "الكافيهات", "المقاهي"),
    "transport": ("transport", "transportation", "taxi", "taxis", "rides", "fuel", "petrol", "gas", "uber",
                  "مواصلات", "المواصلات", "تاكسي", "بنزين", "وقود", "البنزين"),
    "shopping": ("shopping", "online shopping", "clothes", "electronics", "تسوق", "التسوق", "ملابس", "مشتريات"),
    "utilities": ("utilities", "bills", "electricity", "water", "internet", "phone bill", "فواتير", "الفواتير",
                  "كهرباء", "الكهرباء", "ماء", "مياه", "انترنت"),
    "entertainment": ("entertainment", "subscriptions", "streaming", "cinema", "movies", "ترفيه", "الترفيه",
                      "اشتراكات", "سينما"),
    "travel": ("travel", "flights", "hotels", "airline", "سفر", "السفر", "طيران", "فنادق", "تذاكر"),
    "health": ("health", "pharmacy", "medical", "doctor", "صحه", "الصحه", "صيدليه", "الصيدليه", "علاج"),
    "cash": ("cash", "atm", "withdrawals", "كاش", "سحب", "صراف", "الصراف"),
    "education": ("education", "school", "tuition", "courses", "تعليم", "مدرسه", "رسوم دراسيه"),
}  # fmt: skip


def match_category(text: str, categories: Sequence[str]) -> str | None:
    """The spending category named in ``text``, among the customer's own categories."""
    t = normalize(text)
    known = {c.lower(): c for c in categories}
    for canonical, words in CATEGORY_SYNONYMS.items():
        if canonical in known and any(
            re.search(rf"(?<!\w)(?:ب|في|على|عال|لل|ال)?{re.escape(normalize(w))}(?!\w)", t) for w in words
        ):
            return known[canonical]
    for lower, original in known.items():
        if re.search(rf"(?<!\w){re.escape(lower)}(?!\w)", t):
            return original
    return None


def find_last4(text: str) -> str | None:
    """ "the card ending 1234" -> "1234"."""
    m = re.search(r"(?<!\d)(\d{4})(?!\d)", normalize(text))
    return m.group(1) if m else None

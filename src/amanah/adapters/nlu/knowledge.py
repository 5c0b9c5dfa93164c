"""The bank's FAQ from one TOML file, searched with TF-IDF character n-grams in English and Arabic.

The file (by default the packaged ``amanah/knowledge/faq.toml``) holds ``[[entries]]`` tables::

    [[entries]]
    id = "opening-hours"            # unique; lower-case letters, digits and dashes
    topic = "branches"
    questions.en = ["What are your opening hours?", ...]
    questions.ar = ["ما هي ساعات عمل الفروع؟", ...]
    answers.en = "..."
    answers.ar = "..."

Every entry must carry questions and an answer in both English and Arabic; anything else stops
start-up with a :class:`~amanah.domain.errors.ConfigurationError` naming the entry. Search compares
the customer's message with every question in every language, so an Arabic question finds the entry
and the caller answers from ``entry.answers[language]``.
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from amanah.app.ports import KbEntry, KbHit
from amanah.domain.errors import ConfigurationError
from amanah.domain.text import normalize

REQUIRED_LANGUAGES: tuple[str, ...] = ("en", "ar")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_LANG_RE = re.compile(r"^[a-z]{2}$")
_ENTRY_KEYS = frozenset({"id", "topic", "questions", "answers"})
_PUNCT_RE = re.compile(r"[^\w\s]+")
_LANGUAGE_NAMES = {"en": "English", "ar": "Arabic"}
_ENTRY_WEIGHT = 0.3  # share of the score from the whole entry; the rest from its best question


def match_text(text: str) -> str:
    """Fold ``text`` for matching: :func:`normalize`, then punctuation (Latin and Arabic) to spaces."""
    return " ".join(_PUNCT_RE.sub(" ", normalize(text)).replace("_", " ").split())


def _lang_name(code: str) -> str:
    return _LANGUAGE_NAMES.get(code, code)


class TomlKnowledgeBase:
    """A validated, searchable FAQ. Implements the ``KnowledgeBase`` port."""

    def __init__(self, entries: Iterable[KbEntry], source: str = "knowledge base") -> None:
        self._entries: tuple[KbEntry, ...] = tuple(entries)
        self._source = source
        _validate_entries(self._entries, source)
        self._by_id = {e.id: e for e in self._entries}
        owners: list[int] = []
        docs: list[str] = []
        entry_docs: list[str] = []
        for index, entry in enumerate(self._entries):
            folded = [match_text(q) for questions in entry.questions.values() for q in questions]
            docs.extend(folded)
            owners.extend([index] * len(folded))
            # One document per entry as well (all its questions together), so that an entry whose
            # phrasings jointly cover a question wins over one that shares a single generic phrase.
            entry_docs.append(" ".join(folded))
        self._owners = np.asarray(owners, dtype=np.int64)
        self._vectorizer = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=False, dtype=np.float64
        )
        self._vectorizer.fit(docs + entry_docs)
        self._matrix = self._vectorizer.transform(docs)
        self._entry_matrix = self._vectorizer.transform(entry_docs)

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def from_path(cls, path: Path | str) -> TomlKnowledgeBase:
        """Load and validate the TOML file at ``path``; raises ConfigurationError if it is unusable."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"knowledge base {p}: cannot read the file ({exc.strerror})") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"knowledge base {p}: not UTF-8 text ({exc.reason})") from exc
        return cls.from_toml(text, source=str(p))

    @classmethod
    def from_toml(cls, text: str, source: str = "knowledge base") -> TomlKnowledgeBase:
        """Parse and validate TOML text (what :meth:`from_path` reads)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{source}: not valid TOML: {exc}") from exc
        return cls(parse_entries(data, source), source=source)

    @classmethod
    def default(cls) -> TomlKnowledgeBase:
        """The packaged FAQ of Amanah Demo Bank, loaded once per process."""
        with _DEFAULT_LOCK:
            global _DEFAULT
            if _DEFAULT is None:
                ref = resources.files("amanah").joinpath("knowledge", "faq.toml")
                _DEFAULT = cls.from_toml(ref.read_text(encoding="utf-8"), source="amanah/knowledge/faq.toml")
            return _DEFAULT

    # --- the port --------------------------------------------------------------------------------

    def entries(self) -> Sequence[KbEntry]:
        return self._entries

    def get(self, entry_id: str) -> KbEntry | None:
        """The entry with this id, or None."""
        return self._by_id.get(entry_id)

    def search(self, text: str, language: str, limit: int = 3) -> Sequence[KbHit]:
        """Entries whose questions best match ``text``, best first, each with a cosine score in [0, 1].

        All questions in all languages are compared, so ``language`` does not restrict the search;
        the caller picks ``hit.entry.answers[language]``. Empty text or ``limit < 1`` gives no hits.
        """
        return self.search_many([text], limit)[0]

    def search_many(self, texts: Sequence[str], limit: int = 3) -> list[tuple[KbHit, ...]]:
        """:meth:`search` for several texts at once (one vectorisation: a worker's batch of messages)."""
        results: list[tuple[KbHit, ...]] = [() for _ in texts]
        if limit < 1 or not self._entries:
            return results
        folded = [match_text(t) for t in texts]
        wanted = [i for i, f in enumerate(folded) if f]
        if not wanted:
            return results
        queries = self._vectorizer.transform([folded[i] for i in wanted])
        sims = np.asarray((queries @ self._matrix.T).toarray())  # one row per text, one column per question
        whole = np.asarray((queries @ self._entry_matrix.T).toarray())
        for row, i in enumerate(wanted):
            best = np.zeros(len(self._entries), dtype=np.float64)
            np.maximum.at(best, self._owners, sims[row])
            best = (1.0 - _ENTRY_WEIGHT) * best + _ENTRY_WEIGHT * whole[row]
            order = sorted(range(len(best)), key=lambda j: (-best[j], j))
            hits: list[KbHit] = []
            for j in order[:limit]:
                score = float(min(1.0, max(0.0, best[j])))
                if score <= 0.0:
                    break
                hits.append(KbHit(entry=self._entries[j], score=round(score, 6)))
            results[i] = tuple(hits)
        return results

    def __repr__(self) -> str:
        return f"TomlKnowledgeBase({self._source!r}, {len(self._entries)} entries)"


_DEFAULT: TomlKnowledgeBase | None = None
_DEFAULT_LOCK = threading.Lock()


# --- parsing and validation ----------------------------------------------------------------------


def parse_entries(data: Mapping[str, Any], source: str = "knowledge base") -> list[KbEntry]:
    """Turn parsed TOML into entries, raising ConfigurationError that names the broken entry."""
    unknown_top = set(data) - {"entries"}
    if unknown_top:
        raise ConfigurationError(
            f"{source}: unknown top-level key(s) {sorted(unknown_top)}; expected [[entries]]"
        )
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ConfigurationError(f"{source}: no [[entries]] found")
    return [_parse_entry(raw, n, source) for n, raw in enumerate(raw_entries, start=1)]


def _parse_entry(raw: Any, n: int, source: str) -> KbEntry:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source}: entry #{n} is not a table")
    entry_id = raw.get("id")
    label = f"entry #{n} (id {entry_id!r})" if isinstance(entry_id, str) and entry_id else f"entry #{n}"

    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(f"{source}: {label}: {message}")

    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise fail(f"unknown key(s) {sorted(unknown)}; allowed: id, topic, questions, answers")
    if not isinstance(entry_id, str) or not _ID_RE.match(entry_id):
        raise fail("'id' must be lower-case letters, digits and dashes (at most 64 characters)")
    topic = raw.get("topic")
    if not isinstance(topic, str) or not topic.strip():
        raise fail("'topic' is missing or empty")

    questions_raw = raw.get("questions")
    if not isinstance(questions_raw, dict):
        raise fail(
            "'questions' must be a table of language -> list of questions (questions.en, questions.ar)"
        )
    questions: dict[str, tuple[str, ...]] = {}
    for lang, items in questions_raw.items():
        if not _LANG_RE.match(lang):
            raise fail(f"questions: {lang!r} is not a two-letter language code")
        if not isinstance(items, list) or not items:
            raise fail(f"questions.{lang} must be a non-empty list of strings")
        cleaned: list[str] = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise fail(f"questions.{lang} contains an empty or non-text question")
            cleaned.append(item.strip())
        questions[lang] = tuple(cleaned)

    answers_raw = raw.get("answers")
    if not isinstance(answers_raw, dict):
        raise fail("'answers' must be a table of language -> answer text (answers.en, answers.ar)")
    answers: dict[str, str] = {}
    for lang, answer in answers_raw.items():
        if not _LANG_RE.match(lang):
            raise fail(f"answers: {lang!r} is not a two-letter language code")
        if not isinstance(answer, str) or not answer.strip():
            raise fail(f"answers.{lang} is missing or empty")
        answers[lang] = answer.strip()

    return KbEntry(id=entry_id, topic=topic.strip(), questions=questions, answers=answers)


def _validate_entries(entries: Sequence[KbEntry], source: str) -> None:
    if not entries:
        raise ConfigurationError(f"{source}: no entries")
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries, start=1):
        label = f"entry #{n} (id {entry.id!r})"
        if entry.id in seen:
            raise ConfigurationError(
                f"{source}: {label}: duplicate id, already used by entry #{seen[entry.id]}"
            )
        seen[entry.id] = n
        for lang in REQUIRED_LANGUAGES:
            if not entry.questions.get(lang):
                raise ConfigurationError(
                    f"{source}: {label}: no {_lang_name(lang)} questions (questions.{lang})"
                )
            if not (entry.answers.get(lang) or "").strip():
                raise ConfigurationError(f"{source}: {label}: no {_lang_name(lang)} answer (answers.{lang})")
        for lang, questions in entry.questions.items():
            for question in questions:
                if not match_text(question):
                    raise ConfigurationError(
                        f"{source}: {label}: questions.{lang} has a question with no letters or digits"
                    )
        for lang in entry.answers:
            if lang not in entry.questions:
                raise ConfigurationError(f"{source}: {label}: answers.{lang} has no questions.{lang}")

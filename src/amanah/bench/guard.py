"""Benchmark of the guard detectors on a finpii-faker style JSONL file (optionally against Presidio).

The data file is read where it lies; nothing from it is copied or written anywhere. The core,
:func:`run_guard_bench`, returns a plain dict and prints nothing; :func:`format_guard_report` renders
it as a table and ends with a one-line JSON summary (the last line of output, for scripts).

Matching: a gold span counts as found when a finding of the mapped kind overlaps it (``recall``);
``recall_any`` also accepts a finding of another kind (what matters to a redactor, which removes
both). A finding is a true positive when it overlaps a gold span of a type that maps to its kind.
The false-positive rate is the share of messages without any gold entity that get any finding.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amanah.adapters.privacy.detectors import Finding, FindingKind, detect

__all__ = [
    "GOAL_RECALL",
    "GOAL_RECALL_TYPES",
    "GOAL_SPEEDUP",
    "GoldRecord",
    "evaluate",
    "format_guard_report",
    "guard_command",
    "load_records",
    "run_guard_bench",
]

GOLD_TO_KIND: dict[str, FindingKind | None] = {
    "CREDIT_CARD": FindingKind.CARD_NUMBER,
    "IBAN_CODE": FindingKind.IBAN,
    "BANK_ACCOUNT": FindingKind.ACCOUNT_NUMBER,
    "ABA_ROUTING": FindingKind.ACCOUNT_NUMBER,
    "SWIFT_CODE": FindingKind.SWIFT_BIC,
    "PHONE_NUMBER": FindingKind.PHONE,
    "EMAIL_ADDRESS": FindingKind.EMAIL,
    "AMOUNT": FindingKind.AMOUNT,
    "PERSON": None,  # names need NER; out of scope for rule-based detectors
}
# Presidio entity types that count as the same thing as a gold type (for its recall column).
GOLD_TO_PRESIDIO: dict[str, frozenset[str]] = {
    "CREDIT_CARD": frozenset({"CREDIT_CARD"}),
    "IBAN_CODE": frozenset({"IBAN_CODE"}),
    "BANK_ACCOUNT": frozenset({"US_BANK_NUMBER"}),
    "ABA_ROUTING": frozenset({"ABA_ROUTING_NUMBER", "US_BANK_NUMBER"}),
    "SWIFT_CODE": frozenset(),
    "PHONE_NUMBER": frozenset({"PHONE_NUMBER"}),
    "EMAIL_ADDRESS": frozenset({"EMAIL_ADDRESS"}),
    "AMOUNT": frozenset(),
    "PERSON": frozenset({"PERSON"}),
}
GOAL_RECALL = 0.995
GOAL_RECALL_TYPES = ("CREDIT_CARD", "IBAN_CODE", "SWIFT_CODE", "BANK_ACCOUNT", "ABA_ROUTING", "AMOUNT")
GOAL_FP_RATE = 0.01
GOAL_SPEEDUP = 30.0
OUR_PASSES = 7
PRESIDIO_PASSES = 5
MIN_PASS_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class GoldSpan:
    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class GoldRecord:
    """One message of the data set, reduced to what the benchmark needs."""

    id: str
    lang: str
    digits: str
    text: str
    entities: tuple[GoldSpan, ...]


def load_records(path: Path) -> list[GoldRecord]:
    """Read a finpii-faker JSONL file (one message per line)."""
    records: list[GoldRecord] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                records.append(
                    GoldRecord(
                        id=str(row["id"]),
                        lang=str(row.get("lang", "?")),
                        digits=str(row.get("digits", "ascii")),
                        text=str(row["text"]),
                        entities=tuple(
                            GoldSpan(str(e["type"]), int(e["start"]), int(e["end"]))
                            for e in row.get("entities", [])
                        ),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a finpii-faker record ({exc})") from exc
    return records


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _one_pass(run: Callable[[str], object], texts: Sequence[str], repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            run(text)
    elapsed = time.perf_counter() - started
    return repeat * len(texts) / elapsed if elapsed > 0 else float("inf")


def _repeats_for(run: Callable[[str], object], texts: Sequence[str], min_seconds: float) -> int:
    """How many times to go over ``texts`` so that one pass lasts about ``min_seconds``: short passes
    are at the mercy of a momentary load spike on a shared machine."""
    rate = _one_pass(run, texts)  # also warms up
    if not texts or rate == float("inf"):
        return 1
    return max(1, math.ceil(min_seconds * rate / len(texts)))


def _throughputs(
    runners: Sequence[tuple[Callable[[str], object], int]], texts: Sequence[str], min_pass_seconds: float
) -> list[dict[str, Any]]:
    """msgs/s of each runner, median of its passes; passes are interleaved (A, B, A, B, ...) so that
    both sides see the same machine load and the ratio stays fair on a shared machine."""
    rates: list[list[float]] = [[] for _ in runners]
    repeats = [_repeats_for(run, texts, min_pass_seconds) for run, _ in runners]
    for round_ in range(max(passes for _, passes in runners)):
        for index, (run, passes) in enumerate(runners):
            if round_ < passes:
                rates[index].append(_one_pass(run, texts, repeats[index]))
    return [
        {
            "msgs_per_s": round(statistics.median(r), 1),
            "passes": len(r),
            "messages_per_pass": repeat * len(texts),
            "per_pass": [round(x, 1) for x in r],
        }
        for r, repeat in zip(rates, repeats, strict=True)
    ]


def evaluate(
    records: Sequence[GoldRecord],
    findings: Sequence[Sequence[Finding]] | None = None,
) -> dict[str, Any]:
    """Accuracy figures of ``findings`` (default: :func:`detect` on each record) against the gold spans."""
    if findings is None:
        findings = [detect(r.text) for r in records]
    found: Counter[str] = Counter()
    found_any: Counter[str] = Counter()
    total: Counter[str] = Counter()
    by_group: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    kind_total: Counter[str] = Counter()
    kind_true: Counter[str] = Counter()
    clean = flagged = 0
    missed: dict[str, list[str]] = defaultdict(list)
    false_pos: dict[str, list[str]] = defaultdict(list)
    flagged_ids: list[str] = []

    for record, hits in zip(records, findings, strict=True):
        if not record.entities:
            clean += 1
            if hits:
                flagged += 1
                flagged_ids.append(record.id)
        for gold in record.entities:
            kind = GOLD_TO_KIND.get(gold.type)
            total[gold.type] += 1
            overlapping = [h for h in hits if _overlaps(h.start, h.end, gold.start, gold.end)]
            ok = kind is not None and any(h.kind is kind for h in overlapping)
            found[gold.type] += ok
            found_any[gold.type] += bool(overlapping)
            for group in (f"lang={record.lang}", f"digits={record.digits}"):
                cell = by_group[gold.type][group]
                cell[0] += ok
                cell[1] += 1
            if kind is not None and not ok:
                missed[gold.type].append(record.id)
        for hit in hits:
            kind_total[hit.kind.value] += 1
            good = any(
                GOLD_TO_KIND.get(g.type) is hit.kind and _overlaps(hit.start, hit.end, g.start, g.end)
                for g in record.entities
            )
            kind_true[hit.kind.value] += good
            if not good:
                false_pos[hit.kind.value].append(record.id)

    entities: dict[str, Any] = {}
    for gold_type in sorted(total, key=lambda t: (GOLD_TO_KIND.get(t) is None, t)):
        kind = GOLD_TO_KIND.get(gold_type)
        entities[gold_type] = {
            "kind": kind.value if kind else None,
            "covered": kind is not None,
            "n": total[gold_type],
            "recall": _ratio(found[gold_type], total[gold_type]) if kind else None,
            "recall_any": _ratio(found_any[gold_type], total[gold_type]),
            "by_group": {
                group: {"n": cell[1], "recall": _ratio(cell[0], cell[1]) if kind else None}
                for group, cell in sorted(by_group[gold_type].items())
            },
            "missed_ids": missed[gold_type][:20],
        }
    precision = {
        kind: {
            "findings": kind_total[kind],
            "true": kind_true[kind],
            "precision": _ratio(kind_true[kind], kind_total[kind]),
            "false_ids": false_pos[kind][:20],
        }
        for kind in sorted(kind_total)
    }
    return {
        "messages": len(records),
        "entities": entities,
        "precision": precision,
        "false_positives": {
            "messages_without_gold": clean,
            "flagged": flagged,
            "rate": _ratio(flagged, clean),
            "flagged_ids": flagged_ids[:20],
        },
    }


def _presidio_analyzer() -> Callable[[str], list[Any]]:
    """Presidio's analyzer, pattern recognizers only, with the no-op NLP engine (no spaCy model)."""
    try:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError(
            "--compare-presidio needs presidio-analyzer: pip install 'amanah[bench]' "
            "(or pip install presidio-analyzer)"
        ) from exc
    _tldextract_offline()
    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no-op"}])
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    # Keep rule-based recognizers only (regex/checksum and phonenumbers); drop anything needing a model.
    registry.recognizers = [
        r
        for r in registry.recognizers
        if not any(name in type(r).__name__ for name in ("Spacy", "Stanza", "Transformers", "GLiNER"))
    ]
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])

    def analyze(text: str) -> list[Any]:
        return list(engine.analyze(text=text, language="en"))

    return analyze


def _tldextract_offline() -> None:
    """Presidio's e-mail/URL recognizers call tldextract, which first tries to download the public
    suffix list; offline that costs a failed request and a logged traceback. Use its bundled snapshot."""
    try:
        import tldextract
        import tldextract.tldextract as tldextract_module
    except ImportError:  # pragma: no cover - presidio depends on it
        return
    tldextract_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())


def _presidio_recall(records: Sequence[GoldRecord], results: Sequence[Sequence[Any]]) -> dict[str, Any]:
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for record, hits in zip(records, results, strict=True):
        for gold in record.entities:
            types = GOLD_TO_PRESIDIO.get(gold.type, frozenset())
            total[gold.type] += 1
            found[gold.type] += any(
                h.entity_type in types and _overlaps(h.start, h.end, gold.start, gold.end) for h in hits
            )
    clean = [hits for record, hits in zip(records, results, strict=True) if not record.entities]
    return {
        "recall": {t: _ratio(found[t], total[t]) for t in sorted(total)},
        "false_positive_rate": _ratio(sum(1 for h in clean if h), len(clean)),
    }


def _progress(items: Sequence[GoldRecord], label: str, enabled: bool) -> Iterable[GoldRecord]:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=label, transient=True, console=_stderr_console())


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def run_guard_bench(
    data: Path,
    compare_presidio: bool = False,
    progress: bool = False,
    *,
    passes: int = OUR_PASSES,
    presidio_passes: int = PRESIDIO_PASSES,
    min_pass_seconds: float = MIN_PASS_SECONDS,
) -> dict[str, Any]:
    """Accuracy and throughput of :func:`detect` on ``data`` (and of Presidio with ``compare_presidio``).

    Throughput is the median msgs/s of ``passes`` passes over all messages, each pass long enough to
    last ``min_pass_seconds``; with Presidio the passes alternate between the two engines.
    """
    raw = data.read_bytes()
    records = load_records(data)
    texts = [r.text for r in records]
    analyze = _presidio_analyzer() if compare_presidio else None  # fail fast, before the long part

    findings = [detect(r.text) for r in _progress(records, "detect", progress)]
    result = evaluate(records, findings)
    result["data"] = {
        "path": str(data),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "messages": len(records),
        "mean_chars": round(statistics.fmean(len(t) for t in texts), 1) if texts else 0.0,
    }
    if analyze is None:
        result["throughput"] = _throughputs([(detect, passes)], texts, min_pass_seconds)[0]
        result["presidio"] = None
    else:
        presidio_results = [analyze(r.text) for r in _progress(records, "presidio", progress)]
        presidio = _presidio_recall(records, presidio_results)
        result["throughput"], presidio["throughput"] = _throughputs(
            [(detect, passes), (analyze, presidio_passes)], texts, min_pass_seconds
        )
        ours = result["throughput"]["msgs_per_s"]
        theirs = presidio["throughput"]["msgs_per_s"]
        presidio["speedup"] = round(ours / theirs, 1) if theirs else None
        presidio["version"] = _version("presidio-analyzer")
        result["presidio"] = presidio

    result["goals"] = _goals(result)
    result["machine"] = _machine()
    return result


def _goals(result: dict[str, Any]) -> dict[str, Any]:
    worst: dict[str, float | None] = {}
    for gold_type in GOAL_RECALL_TYPES:
        entry = result["entities"].get(gold_type)
        if entry is None:
            continue
        cells = [entry["recall"]] + [g["recall"] for g in entry["by_group"].values()]
        worst[gold_type] = min(c for c in cells if c is not None)
    presidio = result.get("presidio")
    speedup = presidio["speedup"] if presidio else None
    fp_rate = result["false_positives"]["rate"]
    return {
        "recall_min_by_type": worst,
        "recall_ok": all(v is not None and v >= GOAL_RECALL for v in worst.values()),
        "fp_ok": fp_rate is not None and fp_rate <= GOAL_FP_RATE,
        "speedup_ok": None if speedup is None else speedup >= GOAL_SPEEDUP,
    }


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _machine() -> dict[str, Any]:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The compact figures printed as the last line of the report."""
    presidio = result.get("presidio")
    return {
        "recall": {t: e["recall"] for t, e in result["entities"].items() if e["covered"]},
        "not_covered": [t for t, e in result["entities"].items() if not e["covered"]],
        "precision": {k: p["precision"] for k, p in result["precision"].items()},
        "fp_rate": result["false_positives"]["rate"],
        "msgs_per_s": result["throughput"]["msgs_per_s"],
        "presidio_msgs_per_s": presidio["throughput"]["msgs_per_s"] if presidio else None,
        "speedup": presidio["speedup"] if presidio else None,
        "goals": {k: v for k, v in result["goals"].items() if k != "recall_min_by_type"},
    }


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def format_guard_report(result: dict[str, Any]) -> None:
    """Print ``result`` as tables (rich), then the JSON summary as the very last line."""
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=150)
    groups = sorted({g for e in result["entities"].values() for g in e["by_group"]})
    table = Table(title=f"Guard detectors — {result['data']['messages']} messages ({result['data']['path']})")
    table.add_column("gold type")
    table.add_column("kind")
    table.add_column("n", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("any kind", justify="right")
    for group in groups:
        table.add_column(group.split("=", 1)[1], justify="right")
    presidio = result.get("presidio")
    if presidio:
        table.add_column("Presidio", justify="right")
    for gold_type, entry in result["entities"].items():
        row = [
            gold_type,
            entry["kind"] or "not covered",
            str(entry["n"]),
            _pct(entry["recall"]),
            _pct(entry["recall_any"]),
        ]
        row += [_pct(entry["by_group"][g]["recall"]) if g in entry["by_group"] else "" for g in groups]
        if presidio:
            row.append(_pct(presidio["recall"].get(gold_type)))
        table.add_row(*row)
    console.print(table)

    prec = Table(title="Precision per kind")
    prec.add_column("kind")
    prec.add_column("findings", justify="right")
    prec.add_column("precision", justify="right")
    for kind, entry in result["precision"].items():
        prec.add_row(kind, str(entry["findings"]), _pct(entry["precision"]))
    console.print(prec)

    fp = result["false_positives"]
    tp = result["throughput"]
    console.print(
        f"False positives: {fp['flagged']}/{fp['messages_without_gold']} messages without gold entity "
        f"({_pct(fp['rate'])})"
    )
    console.print(f"Throughput: {tp['msgs_per_s']:,.0f} msgs/s (median of {tp['passes']} passes, one core)")
    if presidio:
        ptp = presidio["throughput"]
        console.print(
            f"Presidio {presidio['version']} (pattern recognizers, no-op NLP engine): "
            f"{ptp['msgs_per_s']:,.0f} msgs/s (median of {ptp['passes']}), "
            f"false positives {_pct(presidio['false_positive_rate'])}; ours/Presidio = {presidio['speedup']}×"
        )
    goals = result["goals"]
    console.print(f"Goals: {goals}")
    sys.stdout.flush()
    print(json.dumps(summary(result), ensure_ascii=False, separators=(",", ":")))


def guard_command(data: Path, compare_presidio: bool = False) -> None:
    """Run the benchmark and print the report (the body of ``amanah bench guard``)."""
    if not data.is_file():
        raise SystemExit(f"no such data file: {data}")
    try:
        result = run_guard_bench(data, compare_presidio=compare_presidio, progress=sys.stderr.isatty())
    except (RuntimeError, ValueError) as exc:
        raise SystemExit(str(exc)) from exc
    format_guard_report(result)

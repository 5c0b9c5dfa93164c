"""The guard benchmark's scoring, on a tiny hand-written JSONL file (never the shared data set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amanah.bench.guard import evaluate, format_guard_report, guard_command, load_records, run_guard_bench

ROWS: list[dict[str, Any]] = [
    {  # a card and an amount, both found
        "id": "t-1",
        "lang": "en",
        "digits": "ascii",
        "text": "block card 4111 1111 1111 1111 after the $20 charge",
        "entities": [
            {"type": "CREDIT_CARD", "start": 11, "end": 30, "value": "4111 1111 1111 1111"},
            {"type": "AMOUNT", "start": 41, "end": 44, "value": "$20"},
        ],
    },
    {  # an Arabic IBAN in Eastern digits and a person (not covered)
        "id": "t-2",
        "lang": "ar",
        "digits": "arabic-indic",
        "text": "حولت لسارة إلى SA٠٣٨٠٠٠٠٠٠٠٦٠٨٠١٠١٦٧٥١٩",
        "entities": [
            {"type": "PERSON", "start": 5, "end": 10, "value": "لسارة"},
            {"type": "IBAN_CODE", "start": 15, "end": 39, "value": "SA٠٣٨٠٠٠٠٠٠٠٦٠٨٠١٠١٦٧٥١٩"},
        ],
    },
    {  # a phone the detectors miss on purpose (no context, not a valid number)
        "id": "t-3",
        "lang": "en",
        "digits": "ascii",
        "text": "it is 1234567",
        "entities": [{"type": "PHONE_NUMBER", "start": 6, "end": 13, "value": "1234567"}],
    },
    {"id": "t-4", "lang": "en", "digits": "ascii", "text": "what are your opening hours?", "entities": []},
    {"id": "t-5", "lang": "en", "digits": "ascii", "text": "my PIN is 4821", "entities": []},
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n", encoding="utf-8")
    for row in ROWS:  # the fixture itself must be consistent
        for e in row["entities"]:
            assert row["text"][e["start"] : e["end"]] == e["value"]
    return path


def test_recall_precision_and_false_positives(data: Path) -> None:
    """Recall per gold type, per language and digit script; precision per kind; FP rate on clean messages."""
    result = evaluate(load_records(data))
    entities = result["entities"]
    assert entities["CREDIT_CARD"]["recall"] == 1.0
    assert entities["IBAN_CODE"]["by_group"]["digits=arabic-indic"]["recall"] == 1.0
    assert entities["PHONE_NUMBER"]["recall"] == 0.0
    assert entities["PHONE_NUMBER"]["missed_ids"] == ["t-3"]
    assert entities["PERSON"]["covered"] is False and entities["PERSON"]["recall"] is None
    assert result["precision"]["card_number"]["precision"] == 1.0
    assert result["precision"]["credential"]["precision"] == 0.0  # no gold credential in this file
    assert result["false_positives"] == {
        "messages_without_gold": 2,
        "flagged": 1,
        "rate": 0.5,
        "flagged_ids": ["t-5"],
    }


def test_run_and_report_end_with_a_json_summary(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The full run adds throughput and goals; the report's last line is the JSON summary."""
    result = run_guard_bench(data, compare_presidio=False, passes=2, min_pass_seconds=0.0)
    assert result["throughput"]["passes"] == 2 and result["throughput"]["msgs_per_s"] > 0
    assert result["presidio"] is None and result["goals"]["speedup_ok"] is None
    assert result["goals"]["fp_ok"] is False  # 1 of 2 clean messages flagged
    format_guard_report(result)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["recall"]["CREDIT_CARD"] == 1.0
    assert summary["not_covered"] == ["PERSON"]
    assert summary["fp_rate"] == 0.5


def test_bad_input_is_a_clear_message(tmp_path: Path) -> None:
    """A missing file or a line that is not a record ends with a message, not a traceback."""
    with pytest.raises(SystemExit, match="no such data file"):
        guard_command(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match=r"bad\.jsonl:1: not a finpii-faker record"):
        guard_command(bad)

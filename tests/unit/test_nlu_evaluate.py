"""The NLU evaluation: calibration error, held-out estimate and external data-set checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from amanah.adapters.nlu import evaluate as ev
from amanah.adapters.nlu.tfidf import TfidfClassifier, training_examples
from amanah.domain.intents import Intent


@pytest.fixture(scope="module")
def clf() -> TfidfClassifier:
    return TfidfClassifier.load_default()


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A miniature data folder in the public data sets' formats, with sentences written for this test."""
    _write_csv(
        tmp_path / "banking77" / "train.csv",
        ["text", "category"],
        [
            ["my card got stolen on the train", "lost_or_stolen_card"],
            ["how much is the fee to exchange currency", "exchange_charge"],
            ["my transfer is still pending since monday", "pending_transfer"],
        ],
    )
    _write_csv(
        tmp_path / "arbanking77" / "Banking77_intents.csv",
        ["label_en", "label_ar"],
        [["lost or stolen card", "البطاقة المفقودة أو المسروقة"], ["exchange charge", "رسوم الصرف"]],
    )
    _write_csv(
        tmp_path / "arbanking77" / "Banking77_Arabized_MSA_PAL_train.csv",
        ["label", "text"],
        [["البطاقة المفقودة أو المسروقة", "انسرقت بطاقتي بالباص"], ["رسوم الصرف", "قديش رسوم صرف العملة"]],
    )
    return tmp_path


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    """Confidence 0.75 with three right answers out of four is perfectly calibrated."""
    assert ev.expected_calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)


def test_ece_measures_overconfidence() -> None:
    """Always 100% sure and right half the time gives a calibration error of one half."""
    assert ev.expected_calibration_error([1.0] * 4, [True, False, True, False]) == pytest.approx(0.5)


def test_banking77_mapping_uses_only_amanah_intents() -> None:
    """Mapped Banking77 labels land on card_lost or faq only; lost/stolen card is card_lost."""
    assert ev.BANKING77_TO_INTENT["lost_or_stolen_card"] is Intent.CARD_LOST
    assert set(ev.BANKING77_TO_INTENT.values()) == {Intent.CARD_LOST, Intent.FAQ}
    assert "pending_transfer" not in ev.BANKING77_TO_INTENT  # status of one operation: not scored


def test_held_out_reports_both_languages() -> None:
    """Cross-validation gives accuracy and macro-F1 in [0, 1] for English and Arabic."""
    examples = training_examples()[::3]  # a third of the data keeps the test quick
    report = ev.held_out(examples, folds=3)
    for lang in ("en", "ar"):
        figures = report["by_language"][lang]
        assert figures["n"] > 100
        assert 0.5 < figures["accuracy"] <= 1.0
        assert 0.0 <= figures["macro_f1"] <= 1.0
    assert 0.0 < report["calibration"]["fitted_temperature"] <= 1.0


def test_external_scores_mapped_rows_and_skips_the_rest(data_dir: Path, clf: TfidfClassifier) -> None:
    """Mapped rows are scored per language; unmapped ones are counted apart; CLINC150 absent is skipped."""
    report = ev.external(data_dir, clf)
    en = report["banking77"]
    assert (en["rows"], en["scored_rows"], en["unscored_rows"]) == (3, 2, 1)
    assert en["per_intent"]["card_lost"]["accuracy"] == 1.0
    ar = report["arbanking77"]
    assert ar["language"] == "ar"
    assert ar["scored_rows"] == 2
    assert ar["per_intent"]["card_lost"]["accuracy"] == 1.0
    assert "skipped" in report["clinc150"]


def test_clinc150_maps_out_of_scope_domains(tmp_path: Path, clf: TfidfClassifier) -> None:
    """CLINC150 rows from non-banking domains and ``oos`` count as out_of_scope."""
    folder = tmp_path / "clinc150"
    folder.mkdir()
    (folder / "domains.json").write_text(
        json.dumps({"utility": ["weather"], "banking": ["balance"], "small_talk": ["greeting"]})
    )
    (folder / "data_full_trainval.json").write_text(
        json.dumps(
            {
                "val": [["will it snow in amman on friday", "weather"], ["hey, good evening", "greeting"]],
                "oos_val": [["how many legs does a spider have", "oos"]],
                "train": [],
                "oos_train": [],
            }
        )
    )
    report = ev.external(tmp_path, clf)["clinc150"]
    assert report["scored_rows"] == 3
    assert report["per_intent"]["out_of_scope"]["n"] == 2
    assert "out_of_scope_rejected" in report["at_threshold"]


@pytest.mark.slow
def test_evaluate_without_data_dir_skips_external() -> None:
    """With no data folder the report still has the model and held-out figures, and says what it skipped."""
    report = ev.evaluate(None, folds=2)
    assert report["external"] == {"skipped": "no data directory given"}
    assert report["model"]["training_examples"]["ar"] > 500
    assert set(report["held_out"]["by_language"]) == {"en", "ar"}
    assert report["held_out"]["overall"]["accuracy"] > 0.5

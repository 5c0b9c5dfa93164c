"""How good is the intent classifier? Figures for ``amanah eval nlu``.

Two estimates:

* **held-out**: stratified k-fold cross-validation over the project's own examples (including the
  knowledge-base questions as ``faq``), per language: accuracy, macro-F1 and the expected calibration
  error (ECE) of the confidence. It also fits the softmax temperature that minimises held-out
  log-loss (:func:`calibrate`), which is how ``tfidf.TEMPERATURE`` was chosen.
* **knowledge base**: the same idea for retrieval: part of each entry's questions is held out and
  searched for (:func:`knowledge_held_out`), giving top-1 and top-3 accuracy per language.
* **external**: public data sets read at run time from ``data_dir`` (never copied into the repository):
  Banking77 (English) and ArBanking77 (Arabic, MSA + Palestinian) and, when present, CLINC150
  (English, with out-of-scope queries). Their labels are mapped onto Amanah's intents below; labels
  with no defensible single answer in Amanah are left out and counted separately.

Run ``python -m amanah.adapters.nlu.evaluate /path/to/data`` for a JSON report.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from amanah.adapters.nlu.knowledge import TomlKnowledgeBase
from amanah.adapters.nlu.tfidf import (
    TEMPERATURE,
    C,
    Example,
    TfidfClassifier,
    build_pipeline,
    features_text,
    training_examples,
)
from amanah.app.ports import KbEntry
from amanah.domain.intents import Intent

LANGUAGES = ("en", "ar")
CLARIFY_THRESHOLD = 0.45  # the default of Settings.clarify_threshold: below it the assistant asks again

# --- Banking77 -> Amanah -------------------------------------------------------------------------
# Banking77 is about one neobank's support questions. Its only label that matches an action of ours is
# lost_or_stolen_card. General questions about fees, limits, rates, cards, PINs, identity checks and how
# to dispute a payment are what Amanah answers from its knowledge base, so they count as ``faq``.
# Labels about the status of one specific pending/declined/failed operation, a compromised card (freeze,
# block or dispute are all right), a lost phone, or a card found again (linking) are excluded: faq,
# transactions, card_freeze or human_agent would each be a defensible reply.
BANKING77_TO_INTENT: dict[str, Intent] = {"lost_or_stolen_card": Intent.CARD_LOST}
BANKING77_TO_INTENT.update(
    dict.fromkeys(
        (
            "exchange_rate",
            "exchange_charge",
            "exchange_via_app",
            "fiat_currency_support",
            "supported_cards_and_currencies",
            "country_support",
            "age_limit",
            "visa_or_mastercard",
            "apple_pay_or_google_pay",
            "atm_support",
            "card_acceptance",
            "card_delivery_estimate",
            "card_about_to_expire",
            "activate_my_card",
            "change_pin",
            "passcode_forgotten",
            "pin_blocked",
            "order_physical_card",
            "get_physical_card",
            "getting_spare_card",
            "getting_virtual_card",
            "get_disposable_virtual_card",
            "disposable_card_limits",
            "top_up_limits",
            "automatic_top_up",
            "top_up_by_bank_transfer_charge",
            "top_up_by_card_charge",
            "top_up_by_cash_or_cheque",
            "topping_up_by_card",
            "transfer_timing",
            "receiving_money",
            "transfer_into_account",
            "verify_my_identity",
            "why_verify_identity",
            "verify_source_of_funds",
            "edit_personal_details",
            "terminate_account",
            "cancel_transfer",
            "cash_withdrawal_charge",
            "card_payment_fee_charged",
            "transfer_fee_charged",
            "request_refund",
            "transaction_charged_twice",
            "card_payment_not_recognised",
            "direct_debit_payment_not_recognised",
            "cash_withdrawal_not_recognised",
            "extra_charge_on_statement",
        ),
        Intent.FAQ,
    )
)

# --- CLINC150 -> Amanah --------------------------------------------------------------------------
# Intents outside banking (kitchen, home, travel, utility, work, most small talk and meta) and the
# ``oos`` rows are out_of_scope. Banking intents that ask for a customer-specific action Amanah does
# not perform (pay a bill, move money, credit score, rewards, blocked account) are excluded.
CLINC_TO_INTENT: dict[str, Intent] = {
    "balance": Intent.BALANCE,
    "transactions": Intent.TRANSACTIONS,
    "spending_history": Intent.SPENDING,
    "report_lost_card": Intent.CARD_LOST,
    "greeting": Intent.GREETING,
    "goodbye": Intent.GOODBYE,
    "thank_you": Intent.THANKS,
    "yes": Intent.AFFIRM,
    "no": Intent.DENY,
    "what_can_i_ask_you": Intent.HELP,
    "are_you_a_bot": Intent.HELP,
    "routing": Intent.FAQ,
    "interest_rate": Intent.FAQ,
    "order_checks": Intent.FAQ,
    "pin_change": Intent.FAQ,
    "international_fees": Intent.FAQ,
    "replacement_card_duration": Intent.FAQ,
    "damaged_card": Intent.FAQ,
    "exchange_rate": Intent.FAQ,
    "apr": Intent.FAQ,
}
CLINC_OUT_OF_SCOPE_DOMAINS = ("kitchen_and_dining", "home", "auto_and_commute", "travel", "utility", "work")
CLINC_EXCLUDED = frozenset(
    {
        "freeze_account",  # stopping a bank account, not a card
        "cancel",  # "stop please", "quit talking": deny or unlink
        "report_fraud",
        "transfer",
        "pay_bill",
        "bill_due",
        "bill_balance",
        "min_payment",
        "account_blocked",
        "card_declined",
        "credit_limit",
        "credit_limit_change",
        "credit_score",
        "improve_credit_score",
        "redeem_rewards",
        "rewards_balance",
        "application_status",
        "expiration_date",
        "new_card",
        "who_made_you",
        "who_do_you_work_for",
        "what_is_your_name",
        "change_language",
        "repeat",
        "maybe",
        "user_name",
    }
)


# --- metrics -------------------------------------------------------------------------------------


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Weighted mean |confidence - accuracy| over equal-width confidence bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        mask = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if mask.any():
            total += float(mask.mean()) * abs(float(conf[mask].mean()) - float(hit[mask].mean()))
    return total


def _softmax(scores: np.ndarray[Any, Any], temperature: float) -> np.ndarray[Any, Any]:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    result: np.ndarray[Any, Any] = e / e.sum(axis=1, keepdims=True)
    return result


def _scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any]:
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4) if y_true else None,
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 4)
        if y_true
        else None,
    }


# --- held-out estimate ---------------------------------------------------------------------------


def _cross_val_scores(
    examples: Sequence[Example], folds: int, seed: int
) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Out-of-fold SVM decision scores for every example, and the class order."""
    y = np.array([e.intent.value for e in examples])
    strata = np.array([f"{e.intent.value}|{e.language}" for e in examples])
    texts = [features_text(e.text) for e in examples]
    classes = sorted(set(y.tolist()))
    scores = np.zeros((len(examples), len(classes)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(examples)), strata):
        pipeline = build_pipeline(C)
        pipeline.fit([texts[i] for i in train], y[train])
        fold = np.asarray(pipeline.decision_function([texts[i] for i in test]))
        columns = [classes.index(str(c)) for c in pipeline.classes_]
        scores[np.ix_(test, columns)] = fold
    return scores, classes


def calibrate(examples: Sequence[Example] | None = None, folds: int = 5, seed: int = 0) -> dict[str, float]:
    """The softmax temperature minimising out-of-fold log-loss, with the ECE before and after."""
    examples = training_examples() if examples is None else examples
    scores, classes = _cross_val_scores(examples, folds, seed)
    return _fit_temperature(scores, classes, examples)


def _fit_temperature(
    scores: np.ndarray[Any, Any], classes: list[str], examples: Sequence[Example]
) -> dict[str, float]:
    truth = np.array([classes.index(e.intent.value) for e in examples])
    correct = scores.argmax(axis=1) == truth

    def nll(t: float) -> float:
        p = _softmax(scores, t)[np.arange(len(truth)), truth]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))

    grid = [round(0.05 + 0.01 * i, 2) for i in range(96)]  # 0.05 .. 1.00
    best = min(grid, key=nll)

    def ece(t: float) -> float:
        return expected_calibration_error(_softmax(scores, t).max(axis=1), correct)

    return {
        "fitted_temperature": best,
        "configured_temperature": TEMPERATURE,
        "ece_at_configured": round(ece(TEMPERATURE), 4),
        "ece_at_fitted": round(ece(best), 4),
        "log_loss_at_configured": round(nll(TEMPERATURE), 4),
        "log_loss_at_fitted": round(nll(best), 4),
    }


def held_out(examples: Sequence[Example] | None = None, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold cross-validation over the project's own examples, per language."""
    examples = training_examples() if examples is None else examples
    scores, classes = _cross_val_scores(examples, folds, seed)
    y = [e.intent.value for e in examples]
    pred = [classes[i] for i in scores.argmax(axis=1)]
    conf = _softmax(scores, TEMPERATURE).max(axis=1)
    correct = [a == b for a, b in zip(y, pred, strict=True)]
    report: dict[str, Any] = {
        "method": f"{folds}-fold stratified cross-validation (by intent and language), seed {seed}",
        "overall": {**_scores(y, pred), "ece": round(expected_calibration_error(conf, correct), 4)},
        "by_language": {},
        "per_intent_f1": {},
    }
    for lang in LANGUAGES:
        idx = [i for i, e in enumerate(examples) if e.language == lang]
        report["by_language"][lang] = {
            **_scores([y[i] for i in idx], [pred[i] for i in idx]),
            "ece": round(expected_calibration_error(conf[idx], [correct[i] for i in idx]), 4),
        }
    per_intent = f1_score(y, pred, labels=classes, average=None, zero_division=0)
    report["per_intent_f1"] = {c: round(float(f), 3) for c, f in zip(classes, per_intent, strict=True)}
    confusions = Counter((a, b) for a, b in zip(y, pred, strict=True) if a != b)
    report["top_confusions"] = [
        {"true": a, "predicted": b, "count": n} for (a, b), n in confusions.most_common(8)
    ]
    report["calibration"] = _fit_temperature(scores, classes, examples)
    return report


# --- knowledge-base retrieval --------------------------------------------------------------------


def knowledge_held_out(
    knowledge_base: TomlKnowledgeBase | None = None, folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Retrieval estimate: hold out a share of each entry's questions, search for them, per language.

    Each fold rebuilds the index without its held-out questions (an entry keeps at least one question
    per language) and counts how often the right entry comes first and within the top three.
    """
    kb = knowledge_base if knowledge_base is not None else TomlKnowledgeBase.default()
    rng = np.random.default_rng(seed)
    items = [
        (entry_index, lang, q_index)
        for entry_index, entry in enumerate(kb.entries())
        for lang, questions in entry.questions.items()
        for q_index in range(len(questions))
    ]
    fold_of = rng.integers(0, folds, size=len(items))
    top1: Counter[str] = Counter()
    top3: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for fold in range(folds):
        held = {item for item, f in zip(items, fold_of, strict=True) if f == fold}
        entries = []
        for entry_index, entry in enumerate(kb.entries()):
            questions: dict[str, tuple[str, ...]] = {}
            for lang, qs in entry.questions.items():
                kept = tuple(q for k, q in enumerate(qs) if (entry_index, lang, k) not in held)
                questions[lang] = kept or qs[:1]
            entries.append(KbEntry(entry.id, entry.topic, questions, dict(entry.answers)))
        index = TomlKnowledgeBase(entries, source="held-out fold")
        for entry_index, lang, k in held:
            entry = kb.entries()[entry_index]
            if entry.questions[lang][k] in index.entries()[entry_index].questions[lang]:
                continue  # kept because it was the entry's only question in that language
            hits = index.search(entry.questions[lang][k], lang, limit=3)
            total[lang] += 1
            top1[lang] += bool(hits) and hits[0].entry.id == entry.id
            top3[lang] += any(h.entry.id == entry.id for h in hits)
    return {
        "method": f"{folds}-fold split of each entry's questions, seed {seed}",
        "entries": len(kb.entries()),
        "by_language": {
            lang: {
                "n": total[lang],
                "top1_accuracy": round(top1[lang] / total[lang], 4) if total[lang] else None,
                "top3_accuracy": round(top3[lang] / total[lang], 4) if total[lang] else None,
            }
            for lang in LANGUAGES
        },
    }


# --- external data sets --------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_banking77(data_dir: Path) -> list[tuple[str, str]]:
    """(text, Banking77 label) from ``banking77/train.csv``."""
    return [(r["text"], r["category"]) for r in _read_csv(data_dir / "banking77" / "train.csv")]


def load_arbanking77(data_dir: Path) -> list[tuple[str, str]]:
    """(text, Banking77 label) from ArBanking77's MSA+Palestinian train split (Arabic labels mapped)."""
    folder = data_dir / "arbanking77"
    to_en = {
        r["label_ar"].strip(): r["label_en"].strip().replace(" ", "_")
        for r in _read_csv(folder / "Banking77_intents.csv")
    }
    rows = _read_csv(folder / "Banking77_Arabized_MSA_PAL_train.csv")
    return [(r["text"], to_en.get(r["label"].strip(), r["label"].strip())) for r in rows]


def load_clinc150(data_dir: Path) -> list[tuple[str, str]]:
    """(text, label) from CLINC150's validation split plus its out-of-scope validation rows."""
    folder = data_dir / "clinc150"
    data = json.loads((folder / "data_full_trainval.json").read_text(encoding="utf-8"))
    return [(str(t), str(label)) for t, label in [*data["val"], *data["oos_val"]]]


def _clinc_mapping(data_dir: Path) -> dict[str, Intent]:
    domains: dict[str, list[str]] = json.loads(
        (data_dir / "clinc150" / "domains.json").read_text(encoding="utf-8")
    )
    mapping = dict(CLINC_TO_INTENT)
    for domain, intents in domains.items():
        for label in intents:
            if label in mapping or label in CLINC_EXCLUDED:
                continue
            if domain in CLINC_OUT_OF_SCOPE_DOMAINS or domain in ("small_talk", "meta"):
                mapping[label] = Intent.OUT_OF_SCOPE
    mapping["oos"] = Intent.OUT_OF_SCOPE
    return mapping


def score_mapped(
    classifier: TfidfClassifier,
    rows: Sequence[tuple[str, str]],
    mapping: Mapping[str, Intent],
    language: str,
    threshold: float = CLARIFY_THRESHOLD,
) -> dict[str, Any]:
    """Accuracy on the rows whose label maps to an Amanah intent, overall and per mapped intent.

    ``at_threshold`` mirrors how the assistant acts: below ``threshold`` it asks the customer to
    rephrase instead of acting. Unmapped rows are not scored; the share of them predicted
    ``out_of_scope`` is reported (it should be low: they are banking questions even if no single
    intent is the right answer).
    """
    mapped = [(t, mapping[label]) for t, label in rows if label in mapping]
    unmapped = [t for t, label in rows if label not in mapping]
    predictions = classifier.classify_many([t for t, _ in mapped])
    y = [i.value for _, i in mapped]
    pred = [p.intent.value for p in predictions]
    conf = [p.confidence for p in predictions]
    correct = [a == b for a, b in zip(y, pred, strict=True)]
    per_intent: dict[str, Any] = {}
    for intent in sorted(set(y)):
        idx = [k for k, v in enumerate(y) if v == intent]
        wrong = Counter(pred[k] for k in idx if pred[k] != intent)
        per_intent[intent] = {
            "n": len(idx),
            "accuracy": round(sum(correct[k] for k in idx) / len(idx), 4),
            "most_often_instead": [w for w, _ in wrong.most_common(3)],
        }
    oos = Intent.OUT_OF_SCOPE.value
    in_scope = [k for k, v in enumerate(y) if v != oos]
    out_scope = [k for k, v in enumerate(y) if v == oos]
    at_threshold: dict[str, Any] = {"threshold": threshold}
    if in_scope:
        at_threshold["in_scope_acted_correctly"] = round(
            sum(correct[k] and conf[k] >= threshold for k in in_scope) / len(in_scope), 4
        )
        at_threshold["in_scope_acted_wrongly"] = round(
            sum(not correct[k] and conf[k] >= threshold and pred[k] != oos for k in in_scope) / len(in_scope),
            4,
        )
        at_threshold["in_scope_clarify_or_rejected"] = round(
            sum(conf[k] < threshold or pred[k] == oos for k in in_scope) / len(in_scope), 4
        )
    if out_scope:
        at_threshold["out_of_scope_rejected"] = round(
            sum(pred[k] == oos or conf[k] < threshold for k in out_scope) / len(out_scope), 4
        )
    unscored_oos = 0.0
    if unmapped:
        rejected = sum(p.intent is Intent.OUT_OF_SCOPE for p in classifier.classify_many(unmapped))
        unscored_oos = round(rejected / len(unmapped), 4)
    return {
        "language": language,
        "rows": len(rows),
        "scored_rows": len(mapped),
        "labels_scored": len({label for _, label in rows if label in mapping}),
        "accuracy": round(sum(correct) / len(correct), 4) if correct else None,
        "balanced_accuracy": round(float(np.mean([v["accuracy"] for v in per_intent.values()])), 4)
        if per_intent
        else None,
        "ece": round(expected_calibration_error(conf, correct), 4),
        "per_intent": per_intent,
        "at_threshold": at_threshold,
        "unscored_rows": len(unmapped),
        "unscored_predicted_out_of_scope": unscored_oos,
    }


def external(data_dir: Path, classifier: TfidfClassifier | None = None) -> dict[str, Any]:
    """Scores on Banking77 (en), ArBanking77 (ar) and CLINC150 (en), each skipped if its files are absent."""
    clf = classifier if classifier is not None else TfidfClassifier.load_default()
    report: dict[str, Any] = {}
    checks: list[tuple[str, Path, Any, Any, str]] = [
        (
            "banking77",
            data_dir / "banking77" / "train.csv",
            load_banking77,
            lambda: BANKING77_TO_INTENT,
            "en",
        ),
        (
            "arbanking77",
            data_dir / "arbanking77" / "Banking77_Arabized_MSA_PAL_train.csv",
            load_arbanking77,
            lambda: BANKING77_TO_INTENT,
            "ar",
        ),
        (
            "clinc150",
            data_dir / "clinc150" / "data_full_trainval.json",
            load_clinc150,
            lambda: _clinc_mapping(data_dir),
            "en",
        ),
    ]
    for name, required, loader, mapping, language in checks:
        if not required.is_file():
            report[name] = {"skipped": f"{required} not found"}
            continue
        try:
            rows = loader(data_dir)
            report[name] = score_mapped(clf, rows, mapping(), language)
        except (OSError, KeyError, ValueError, csv.Error) as exc:
            report[name] = {"skipped": f"could not read {name}: {exc}"}
    return report


def evaluate(data_dir: Path | None = None, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """All figures: the model, the held-out estimate and (when ``data_dir`` is given) external checks."""
    examples = training_examples()
    started = time.perf_counter()
    classifier = TfidfClassifier(examples)
    train_seconds = time.perf_counter() - started
    counts = Counter(e.language for e in examples)
    result: dict[str, Any] = {
        "model": {
            "name": "tfidf",
            "features": "TF-IDF char_wb 2-5 + word 1-2 n-grams over normalised text",
            "estimator": f"LinearSVC(C={C}, class_weight=balanced) + softmax(T={TEMPERATURE})",
            "training_examples": {lang: counts.get(lang, 0) for lang in LANGUAGES},
            "intents": len(classifier.intents),
            "train_seconds": round(train_seconds, 3),
        },
        "held_out": held_out(examples, folds=folds, seed=seed),
        "knowledge_base": knowledge_held_out(folds=folds, seed=seed),
    }
    if data_dir is None:
        result["external"] = {"skipped": "no data directory given"}
    else:
        result["external"] = external(Path(data_dir), classifier)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m amanah.adapters.nlu.evaluate [DATA_DIR]``: print the report as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    data_dir = Path(args[0]) if args else None
    print(json.dumps(evaluate(data_dir), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

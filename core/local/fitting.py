"""Fitting a mood head on features either engine gives: class-weighted L2 logistic regression
(scikit-learn) on standardized features, the layer (Transformers) and C chosen on a valid split,
probabilities temperature-scaled on it, so a threshold like `high_negative = 0.9` means about what
it says. `tonebot train-head` (bot/tools/train_head.py) and the background fit of a served model
with no head (core/local/autofit.py) both fit here.

Rows are split by a hash of their text: train 70% (fitting), valid 10% (choices), test 20% (only
reported). Two-class files (negative / positive only) train those two classes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from core.events import LABELS
from core.local.head import Identity, MoodHead, Pooling

Split = Literal["train", "valid", "test"]
SPLITS: tuple[tuple[Split, int], ...] = (("train", 70), ("valid", 10), ("test", 20))  # percent
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
TOLERANCE = 0.01  # of valid macro-F1 that a shallower layer or a smaller C may give up
SHIPPED_ROWS = Path(str(files("core.local").joinpath("training")))
"""The labelled rows that ship with tonebot (written for it; see its README): what a model with no
head is fitted on when nothing else is configured."""


def split_of(text: str) -> Split:
    """train 70% / valid 10% (choices while fitting) / test 20% (never trained on, reported)."""
    bucket = int.from_bytes(hashlib.sha256(text.strip().encode()).digest()[:4], "big") % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("the splits add up to 100")


def parts_of(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The rows by split: train, valid, test."""
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in SPLITS}
    for row in rows:
        parts[split_of(row["text"])].append(row)
    return parts


def read_rows(path: Path) -> list[dict[str, Any]]:
    """CSV with a `text` column, or JSON Lines with a `text` field."""
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str):
            raise ConfigError(f"{path}: row {number} has no 'text' field")
    return rows


def labelled(path: Path, split: Split | Literal["all"] = "all") -> list[dict[str, Any]]:
    """Rows with a `label` among negative / neutral / positive, of one split (or all)."""
    rows = read_rows(path)
    for number, row in enumerate(rows, 1):
        if row.get("label") not in LABELS:
            raise ConfigError(f"{path}: row {number} has no label negative, neutral or positive")
    return rows if split == "all" else [r for r in rows if split_of(r["text"]) == split]


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000)).fit(x, y)


def _logits(pipeline: Any, x: np.ndarray) -> np.ndarray:
    """Logits in LABELS order (a class missing from training gets -inf)."""
    raw = pipeline.decision_function(x)
    out = np.full((len(x), len(LABELS)), -np.inf)
    for column, label in enumerate(pipeline.classes_):
        out[:, LABELS.index(label)] = raw[:, column]
    return out


def metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over `labels`, precision / recall / F1 per class, and the confusion."""
    per_class = {}
    confusion: dict[str, dict[str, int]] = {g: dict.fromkeys(LABELS, 0) for g in labels}
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    for label in labels:
        tp = confusion[label][label]
        predicted = sum(confusion[g][label] for g in labels)
        actual = sum(confusion[label].values())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    return {
        "rows": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold),
        "macro_f1": statistics.fmean(c["f1"] for c in per_class.values()),
        "per_class": per_class,
        "confusion": confusion,
    }


def score(logits: np.ndarray, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per file (the `source` a row came from): accuracy, macro-F1, recall per class, confusion;
    two-class files scored negative against positive."""
    by_source: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_source.setdefault(str(row.get("source", "rows")), []).append(i)
    report = {}
    for source, index in sorted(by_source.items()):
        gold = [rows[i]["label"] for i in index]
        labels = LABELS if "neutral" in gold else ("negative", "positive")
        columns = [LABELS.index(label) for label in labels]
        pred = [labels[int(np.argmax(logits[i, columns]))] for i in index]
        found = metrics(gold, pred, labels)
        report[source] = {
            "rows": found["rows"],
            "accuracy": round(found["accuracy"], 4),
            "macro_f1": round(found["macro_f1"], 4),
            "recall": {k: round(v["recall"], 4) for k, v in found["per_class"].items()},
            "confusion": found["confusion"],
        }
    return report


def _mean_f1(report: dict[str, Any]) -> float:
    return statistics.fmean(r["macro_f1"] for r in report.values())


def temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The T that minimizes the negative log-likelihood of softmax(logits / T) on held-out rows."""
    from scipy.optimize import minimize_scalar

    target = np.array([LABELS.index(g) for g in gold])

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
        return float(-log_p[np.arange(len(z)), target].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def fit(
    identity: Identity,
    parts: Mapping[str, Sequence[Mapping[str, Any]]],
    features: Mapping[str, Mapping[int, np.ndarray]],
    pooling: Pooling,
    tokens: np.ndarray | None = None,
) -> tuple[MoodHead, dict[str, Any]]:
    """The head for rows split into train / valid / test (`parts`) with their features per layer:
    the shallowest (cheapest: the pass stops there) layer within TOLERANCE of the best valid
    macro-F1, there the strongest regularization (smallest C) within TOLERANCE — the simplest fit
    the valid split cannot tell from the best (small valid splits make the single best C noise)."""
    if {r["label"] for r in parts["train"]} != set(LABELS):
        raise ValueError("the training rows need all three labels (a three-class file among the inputs)")
    gold = {name: np.array([r["label"] for r in part]) for name, part in parts.items()}
    layers = sorted(features["train"])
    sweep: list[dict[str, Any]] = []
    for candidate in layers:
        for c in C_GRID:
            fitted = _fit(features["train"][candidate], gold["train"], c)
            valid = _mean_f1(score(_logits(fitted, features["valid"][candidate]), parts["valid"]))
            sweep.append({"layer": candidate, "C": c, "valid_macro_f1": round(valid, 4)})
    top = max(s["valid_macro_f1"] for s in sweep)
    near = [s for s in sweep if s["valid_macro_f1"] >= top - TOLERANCE]
    shallowest = min(s["layer"] for s in near)
    best = min((s for s in near if s["layer"] == shallowest), key=lambda s: s["C"])
    chosen: int = best["layer"]
    fitted = _fit(features["train"][chosen], gold["train"], best["C"])
    t = temperature(_logits(fitted, features["valid"][chosen]), gold["valid"])
    test = score(_logits(fitted, features["test"][chosen]), parts["test"]) if len(parts["test"]) else {}
    scaler, classifier = fitted.steps[0][1], fitted.steps[1][1]
    weight = np.zeros((len(LABELS), scaler.mean_.shape[0]), dtype=np.float32)
    bias = np.full((len(LABELS),), -1e4, dtype=np.float32)
    for row, label in enumerate(classifier.classes_):
        weight[LABELS.index(label)] = classifier.coef_[row]
        bias[LABELS.index(label)] = float(classifier.intercept_[row])
    identity = Identity(**{**identity.__dict__, "layer": chosen, "pooling": pooling})
    report = {"model": identity.model, "layer": chosen, "pooling": pooling, "C": best["C"], "temperature": round(t, 4),
              "rows": {name: len(part) for name, part in parts.items()}, "test": test, "sweep": sweep}  # fmt: skip
    head = MoodHead(
        identity, weight=weight, bias=bias, mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32), temperature=t,
        report=json.dumps({k: v for k, v in report.items() if k != "sweep"}), tokens=tokens,
    )  # fmt: skip
    return head, report


def head_path(directory: Path, identity: Identity) -> Path:
    """Where a fitted head is saved for "auto" to find: named after the model, weights and prompt."""
    import re

    name = re.sub(r"[^A-Za-z0-9.-]+", "-", identity.model).strip("-").lower()
    return directory / f"{name}-{identity.fingerprint}-{identity.prompt}.safetensors"

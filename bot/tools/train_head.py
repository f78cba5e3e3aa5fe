"""`tonebot train-head`: fit the mood head on labelled rows with the configured model and prompt,
report it on rows it never saw, and save it bound to that model and prompt.

Rows are split by a hash of their text (bot/tools/datasets.py): train (fitting), valid (choosing the layer
and the regularization, fitting the temperature), test (never used here but for the report). The
head is class-weighted L2 logistic regression (scikit-learn) on standardized features; its
probabilities are temperature-scaled on the valid split, so a threshold like `high_negative = 0.9`
means about what it says. Two-class files (negative / positive only) train those two classes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.app import engine_kind
from bot.config import Settings
from bot.tools.datasets import labelled, sample, split_of
from bot.tools.evaluate import metrics, score_cells, score_header
from core.events import LABELS
from core.local.head import Identity, MoodHead, Pooling, logprob_features
from core.local.llamacpp import TOP_FEATURES, LlamaCppEngine

if TYPE_CHECKING:  # imported when used: torch loads OpenMP, and llama.cpp wants it loaded its way
    from core.local.engine import TransformersEngine

    Engine = TransformersEngine | LlamaCppEngine

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
TOLERANCE = 0.01  # of valid macro-F1 that a shallower layer or a smaller C may give up
BATCH = 32


def candidate_layers(depth: int) -> list[int]:
    """Every other layer from a third of the way down to the last."""
    return sorted({*range(depth // 3, depth + 1, 2), depth})


# Heads are fitted on either in-process engine's own features: Transformers' hidden state at any
# layer, or under llama.cpp the next-token log-probabilities of the `TOKENS` tokens most often among
# the training rows' top ones (a linear function of the final state; no early exit there).
TOKENS = 1000


def identity_of(engine: Engine) -> Identity:
    return engine.identity if isinstance(engine, LlamaCppEngine) else engine.reader.identity


def depth_of(engine: Engine) -> int:
    return -1 if isinstance(engine, LlamaCppEngine) else engine.reader.depth


async def extract(
    engine: TransformersEngine, texts: Sequence[str], layers: Sequence[int], pooling: Pooling
) -> dict[int, np.ndarray]:
    """Features of every text at every layer, on the model's thread; batches of similar length."""
    from tqdm import tqdm

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    found: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    with tqdm(total=len(texts), unit="row", file=sys.stderr, desc="features") as bar:
        for start in range(0, len(order), BATCH):
            chunk = [texts[i] for i in order[start : start + BATCH]]
            parts = await engine.worker.run(functools.partial(engine.reader.layer_features, chunk, layers, pooling))
            batch = {layer: part.numpy() for layer, part in parts.items()}
            for layer in layers:
                found[layer].append(batch[layer])
            bar.update(len(chunk))
    unsort = np.argsort(order)
    return {layer: np.concatenate(parts)[unsort] for layer, parts in found.items()}


async def top_logprobs(engine: LlamaCppEngine, texts: Sequence[str]) -> list[dict[int, tuple[str, float]]]:
    from tqdm import tqdm

    return [await asyncio.to_thread(engine.top_logprobs, text, TOP_FEATURES)
            for text in tqdm(texts, unit="row", file=sys.stderr, desc="log-probabilities")]  # fmt: skip


def common_tokens(tops: Sequence[dict[int, tuple[str, float]]], n: int) -> np.ndarray:
    """The `n` tokens most often among the rows' top ones."""
    counts = Counter(token for top in tops for token in top)
    return np.array([token for token, _ in counts.most_common(n)], dtype=np.int64)


async def label_scoring(engine: TransformersEngine, texts: Sequence[str], final: np.ndarray) -> np.ndarray:
    """The baseline a head must beat, (n, 3) probabilities: label-token scoring on the same texts."""
    import torch

    return engine.reader.label_scores(torch.tensor(final)).numpy()


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


def score(logits: np.ndarray, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per file (the `source` a row came from): accuracy, macro-F1, neutral recall; two-class
    files scored negative against positive."""
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


async def train(
    engine: Engine,
    files: Sequence[Path],
    layer: int | None = None,
    pooling: Pooling = "last",
    limit: int | None = None,
) -> tuple[MoodHead, dict[str, Any]]:
    """Fit on the train split, choose layer and C on valid, report on test; `limit` rows at most
    from each file (a reproducible sample), so that no file outweighs the others."""
    rows = [{**row, "source": path.stem} for path in files for row in sample(labelled(path), limit)]
    parts = {name: [r for r in rows if split_of(r["text"]) == name] for name in ("train", "valid", "test")}
    if {r["label"] for r in parts["train"]} != set(LABELS):
        raise ValueError("the training rows need all three labels (a three-class file among the inputs)")
    depth = depth_of(engine)
    tokens = None
    if isinstance(engine, LlamaCppEngine):
        layers, pooling = [depth], "logprobs"
        tops = {name: await top_logprobs(engine, [r["text"] for r in part]) for name, part in parts.items()}
        tokens = common_tokens(tops["train"], TOKENS)
        features = {name: {depth: logprob_features([{i: lp for i, (_, lp) in t.items()} for t in top], tokens)}
                    for name, top in tops.items()}  # fmt: skip
        baseline = score(np.log(engine.probabilities(tops["test"])), parts["test"])  # no head: label scoring
    else:
        layers = [layer] if layer else candidate_layers(depth)
        features = {name: await extract(engine, [r["text"] for r in p], layers, pooling) for name, p in parts.items()}
        if pooling == "last" and depth in layers:  # label scoring reads the same final state: no second pass
            final = features["test"][depth]
        else:
            final = (await extract(engine, [r["text"] for r in parts["test"]], [depth], "last"))[depth]
        baseline = score(np.log(await label_scoring(engine, [r["text"] for r in parts["test"]], final)), parts["test"])
    gold = {name: np.array([r["label"] for r in part]) for name, part in parts.items()}

    sweep: list[dict[str, Any]] = []
    for candidate in layers:
        for c in C_GRID:
            fitted = _fit(features["train"][candidate], gold["train"], c)
            valid = _mean_f1(score(_logits(fitted, features["valid"][candidate]), parts["valid"]))
            sweep.append({"layer": candidate, "C": c, "valid_macro_f1": round(valid, 4)})
    # the shallowest (cheapest: the pass stops there) layer within TOLERANCE of the best, and there
    # the strongest regularization (smallest C) within TOLERANCE: the simplest fit the valid split
    # cannot tell from the best (small valid splits make the single best C noise)
    top = max(s["valid_macro_f1"] for s in sweep)
    near = [s for s in sweep if s["valid_macro_f1"] >= top - TOLERANCE]
    shallowest = min(s["layer"] for s in near)
    best = min((s for s in near if s["layer"] == shallowest), key=lambda s: s["C"])
    chosen: int = best["layer"]
    fitted = _fit(features["train"][chosen], gold["train"], best["C"])
    t = temperature(_logits(fitted, features["valid"][chosen]), gold["valid"])
    test = score(_logits(fitted, features["test"][chosen]), parts["test"])

    scaler, classifier = fitted.steps[0][1], fitted.steps[1][1]
    weight = np.zeros((len(LABELS), scaler.mean_.shape[0]), dtype=np.float32)
    bias = np.full((len(LABELS),), -1e4, dtype=np.float32)
    for row, label in enumerate(classifier.classes_):
        weight[LABELS.index(label)] = classifier.coef_[row]
        bias[LABELS.index(label)] = float(classifier.intercept_[row])
    identity = Identity(**{**identity_of(engine).__dict__, "layer": best["layer"], "pooling": pooling})
    report = {
        "model": identity.model,
        "layer": best["layer"],
        "depth": depth,
        "pooling": pooling,
        "C": best["C"],
        "temperature": round(t, 4),
        "rows": {name: len(part) for name, part in parts.items()},
        "test": test,
        "label_scoring_test": baseline,
        "sweep": sweep,
    }
    head = MoodHead(
        identity,
        weight=weight,
        bias=bias,
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        temperature=t,
        report=json.dumps({k: v for k, v in report.items() if k != "sweep"}),
        tokens=tokens,
    )
    return head, report


async def run(
    settings: Settings, files: Sequence[Path], layer: int | None, pooling: Pooling, limit: int | None,
    output: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Load the configured model with no head (a head is fitted on the bare model), fit, save."""
    sentiment = dataclasses.replace(settings.sentiment, head="")
    kind = await asyncio.to_thread(engine_kind, settings.model)
    engine: Engine
    if kind == "llamacpp":
        engine = await LlamaCppEngine.load(settings.model, sentiment)
    else:
        from core.local.engine import TransformersEngine

        engine = await TransformersEngine.load(settings.model, sentiment)
    try:
        head, report = await train(engine, files, layer, pooling, limit)
    finally:
        await engine.aclose()
    identity = head.identity
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", identity.model).strip("-").lower()
    path = output or settings.model.cache_dir / "heads" / f"{name}-{identity.fingerprint}-{identity.prompt}.safetensors"
    head.save(path)
    return {**report, "saved": str(path)}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"head for {report['model']}: layer {report['layer']} of {report['depth']}, {report['pooling']} token, "
        f"C={report['C']}, temperature {report['temperature']}; rows train/valid/test: "
        + "/".join(str(n) for n in report["rows"].values()),
        score_header("held-out (test split)", 28) + "  recall",
    ]
    for source, r in report["test"].items():
        recall = " ".join(f"{k} {v:.2f}" for k, v in r["recall"].items())
        base = report["label_scoring_test"][source]
        lines.append(
            score_cells(source, 28, r) + f"  {recall}  (label scoring {base['accuracy']:.3f} / {base['macro_f1']:.3f})"
        )
    if "saved" in report:
        lines.append(f'saved to {report["saved"]} (sentiment.head = "auto" finds it there)')
    return "\n".join(lines)

"""`tonebot train-head`: fit the mood head on labelled rows with the configured model and prompt,
report it on rows it never saw, and save it bound to that model and prompt.

Rows are split by a hash of their text: train (fitting), valid (choosing the layer and the
regularization, fitting the temperature), test (never used here but for the report). The fit is
core/local/fitting.py's, on either engine's features: Transformers' hidden state at the candidate
layers, or llama.cpp's next-token log-probabilities (core/local/autofit.py: read two at a time
over the mood slots and cached by text hash, so a second fit reads only new rows).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.app import engine_kind
from bot.config import Settings
from bot.tools.datasets import labelled, sample
from bot.tools.evaluate import score_cells, score_header
from core.local import autofit, fitting
from core.local.head import Identity, MoodHead, Pooling
from core.local.llamacpp import SENTIMENT_SLOTS, LlamaCppEngine

if TYPE_CHECKING:  # imported when used: torch loads OpenMP, and llama.cpp wants it loaded its way
    from core.local.engine import TransformersEngine

    Engine = TransformersEngine | LlamaCppEngine

BATCH = 32


def candidate_layers(depth: int) -> list[int]:
    """Every other layer from a third of the way down to the last."""
    return sorted({*range(depth // 3, depth + 1, 2), depth})


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


async def label_scoring(engine: TransformersEngine, texts: Sequence[str], final: np.ndarray) -> np.ndarray:
    """The baseline a head must beat, (n, 3) probabilities: label-token scoring on the same texts."""
    import torch

    return engine.reader.label_scores(torch.tensor(final)).numpy()


def rows_of(files: Sequence[Path], limit: int | None = None) -> list[dict[str, Any]]:
    """`limit` rows at most from each file (a reproducible sample), so that no file outweighs the others."""
    return [{**row, "source": path.stem} for path in files for row in sample(labelled(path), limit)]


async def train(
    engine: Engine, rows: Sequence[dict[str, Any]], layer: int | None = None, pooling: Pooling = "last"
) -> tuple[MoodHead, dict[str, Any]]:
    """Fit on the train split, choose layer and C on valid, report on test."""
    depth, parts = depth_of(engine), fitting.parts_of(rows)
    if isinstance(engine, LlamaCppEngine):
        from tqdm import tqdm

        with tqdm(unit="row", file=sys.stderr, desc="log-probabilities") as bar:
            head, report, tops = await autofit.fit(
                engine, parts, SENTIMENT_SLOTS, lambda done, total: _tick(bar, total)
            )
        baseline = fitting.score(np.log(engine.label_probabilities(tops["test"])), parts["test"])
        return head, {**report, "depth": depth, "label_scoring_test": baseline}
    layers = [layer] if layer else candidate_layers(depth)
    features = {name: await extract(engine, [r["text"] for r in p], layers, pooling) for name, p in parts.items()}
    if pooling == "last" and depth in layers:  # label scoring reads the same final state: no second pass
        final = features["test"][depth]
    else:
        final = (await extract(engine, [r["text"] for r in parts["test"]], [depth], "last"))[depth]
    test_texts = [r["text"] for r in parts["test"]]
    baseline = fitting.score(np.log(await label_scoring(engine, test_texts, final)), parts["test"])
    head, report = fitting.fit(identity_of(engine), parts, features, pooling)
    return head, {**report, "depth": depth, "label_scoring_test": baseline}


def _tick(bar: Any, total: int) -> None:
    bar.total = total
    bar.update(1)


async def _load(settings: Settings, head: str) -> Engine:
    sentiment = dataclasses.replace(settings.sentiment, head=head, fit_automatically=False)
    if await asyncio.to_thread(engine_kind, settings.model) == "llamacpp":
        return await LlamaCppEngine.load(settings.model, sentiment)
    from core.local.engine import TransformersEngine

    return await TransformersEngine.load(settings.model, sentiment)


async def run(
    settings: Settings, files: Sequence[Path], layer: int | None, pooling: Pooling, limit: int | None,
    output: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Load the configured model with no head (a head is fitted on the bare model), fit, save."""
    engine = await _load(settings, head="")
    try:
        head, report = await train(engine, rows_of(files, limit), layer, pooling)
    finally:
        await engine.aclose()
    path = output or fitting.head_path(settings.model.cache_dir / "heads", head.identity)
    head.save(path)
    return {**report, "saved": str(path)}


async def ensure(settings: Settings) -> dict[str, Any] | None:
    """`download-model`'s last step: a head for the configured model and prompt, fitted on
    `sentiment.fit_files` (default: the rows that ship with tonebot) unless one fits already
    (None then). What `serve` would otherwise fit in the background at its first start."""
    engine = await _load(settings, head="auto")
    try:
        if (engine.head if isinstance(engine, LlamaCppEngine) else engine.reader.head) is not None:
            return None
        head, report = await train(engine, autofit.fit_rows(settings.sentiment.fit_files))
    finally:
        await engine.aclose()
    path = fitting.head_path(settings.model.cache_dir / "heads", head.identity)
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

"""`tonebot eval`: sentiment quality and speed of the configured model on a labelled JSONL file.

With `--vs-generate` it also runs the seed's method on the same rows with the same weights
(an instruction prompt, then greedy generation of up to 8 tokens, parsed for a label word), so
the two are compared in one process.
"""

from __future__ import annotations

import functools
import random
import re
import statistics
import time
from collections.abc import Sequence
from typing import Any

from core.events import LABELS
from core.local.engine import TransformersEngine

SEED_PROMPT = "Classify the sentiment of the following text as negative, neutral or positive.\nText: {text}\nSentiment:"


def sample(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """A reproducible random sample (the files are sorted by source, so the head is not representative)."""
    if limit is None or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)


def metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
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


def generate_label(model: Any, tokenizer: Any, text: str, two_class: bool) -> str:
    """The seed's method: ask, generate up to 8 tokens greedily, take the first label word."""
    import torch

    chat = [{"role": "user", "content": SEED_PROMPT.format(text=text)}]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
            temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.eos_token_id,
        )  # fmt: skip
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).lower()
    allowed = "negative|positive" if two_class else "negative|neutral|positive"
    found = re.search(allowed, answer)
    return found.group(0) if found else "neutral"


async def evaluate(engine: TransformersEngine, rows: list[dict[str, Any]], vs_generate: bool) -> dict[str, Any]:
    gold = [r["label"] for r in rows]
    two_class = "neutral" not in gold
    labels = ("negative", "positive") if two_class else LABELS
    texts = [r["text"] for r in rows]

    latencies: list[float] = []
    pred: list[str] = []
    started = time.perf_counter()
    for text in texts:  # one at a time: the per-message latency a chat user sees
        t = time.perf_counter()
        [mood] = await engine.classify([text])
        latencies.append(time.perf_counter() - t)
        scores = mood.scores
        pred.append(max(labels, key=scores.__getitem__))
    report: dict[str, Any] = {
        "method": "label-token scoring",
        **metrics(gold, pred, labels),
        "p50_ms": 1000 * statistics.median(latencies),
        "rows_per_s": len(texts) / (time.perf_counter() - started),
    }
    if not vs_generate:
        return report
    latencies, pred = [], []
    for text in texts:
        t = time.perf_counter()
        pred.append(
            await engine.worker.run(functools.partial(generate_label, engine.model, engine.tokenizer, text, two_class))
        )
        latencies.append(time.perf_counter() - t)
    baseline = {
        "method": "generate (seed)",
        **metrics(gold, pred, labels),
        "p50_ms": 1000 * statistics.median(latencies),
    }
    return {**report, "baseline": baseline, "speedup_p50": baseline["p50_ms"] / report["p50_ms"]}


def table(report: dict[str, Any]) -> str:
    lines = [f"{'method':<22}{'rows':>6}{'accuracy':>10}{'macro-F1':>10}{'p50 ms':>9}"]
    for r in (report, report.get("baseline")):
        if r:
            lines.append(
                f"{r['method']:<22}{r['rows']:>6}{r['accuracy']:>10.3f}{r['macro_f1']:>10.3f}{r['p50_ms']:>9.1f}"
            )
    if "speedup_p50" in report:
        lines.append(f"classify p50 speed-up over the seed's generate method: {report['speedup_p50']:.1f}x")
    return "\n".join(lines)

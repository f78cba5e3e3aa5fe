"""`tonebot eval`: sentiment quality and speed of the configured model on a labelled JSONL file, on
any engine: in this process, or a running OpenAI-compatible server (`model.engine = "openai"`).

Every method runs on the same rows, in one process, with the same weights: the configured one (the
mood head, or label scoring for a model without one), label-token scoring as a baseline, and with
`--vs-generate` the seed's method (an instruction prompt, then greedy generation of up to 8 tokens,
parsed for a label word).
"""

from __future__ import annotations

import asyncio
import functools
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot.config import Settings
from bot.tools.datasets import labelled, sample
from core import loading
from core.engine import Engine
from core.errors import ConfigError
from core.events import LABELS
from core.local.fitting import metrics
from core.local.llamacpp import TOP_FEATURES, TOP_LABELS, LlamaCppEngine
from core.remote import OpenAICompatEngine

if TYPE_CHECKING:  # imported when used: torch loads OpenMP, and llama.cpp wants it loaded its way
    from core.local.engine import TransformersEngine

    Local = TransformersEngine | LlamaCppEngine  # the engines that read the mood in this process

SEED_PROMPT = "Classify the sentiment of the following text as negative, neutral or positive.\nText: {text}\nSentiment:"


def generate_label(model: Any, tokenizer: Any, text: str, two_class: bool = False) -> str:
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


NAMES = {"head": "mood head", "labels": "label-token scoring", "generate": "generate (seed)"}


Scorer = Callable[[str], Sequence[float]]  # blocking: one text -> probabilities in LABELS order


def scorers(engine: Local) -> dict[str, Scorer]:
    """The engine's configured method first (the head, or label scoring), then label scoring."""
    if isinstance(engine, LlamaCppEngine):
        found: dict[str, Scorer] = {}
        if engine.head is not None:
            found["head"] = lambda text: engine.probabilities([engine.top_logprobs(text, TOP_FEATURES)])[0].tolist()
        found["labels"] = lambda text: engine.label_probabilities([engine.top_logprobs(text, TOP_LABELS)])[0].tolist()
        return found
    reader = engine.reader
    found = {reader.method: lambda text: reader.probabilities([text], reader.method)[0].tolist()}
    if reader.method == "head":
        found["labels"] = lambda text: reader.probabilities([text], "labels")[0].tolist()
    return found


async def evaluate(engine: Local, rows: list[dict[str, Any]], vs_generate: bool, settings: Settings) -> dict[str, Any]:
    """One report per method, the configured one first; two-class rows are scored negative vs positive.
    Every method reads the texts one at a time: the per-message latency a chat user sees."""
    gold = [r["label"] for r in rows]
    two_class = "neutral" not in gold
    labels = ("negative", "positive") if two_class else LABELS
    texts = [r["text"] for r in rows]

    def timed(predict: Callable[[str], str]) -> Callable[[], tuple[list[str], list[float]]]:
        def run() -> tuple[list[str], list[float]]:
            pred, latencies = [], []
            for text in texts:
                started = time.perf_counter()
                pred.append(predict(text))
                latencies.append(time.perf_counter() - started)
            return pred, latencies

        return run

    def labelled_by(score: Scorer) -> Callable[[str], str]:
        return lambda text: max(labels, key=lambda name: float(score(text)[LABELS.index(name)]))

    async def on_model_thread(job: Callable[[], tuple[list[str], list[float]]]) -> tuple[list[str], list[float]]:
        return await (asyncio.to_thread(job) if isinstance(engine, LlamaCppEngine) else engine.worker.run(job))

    runs = {method: await on_model_thread(timed(labelled_by(score))) for method, score in scorers(engine).items()}
    if vs_generate:  # the seed's method: Transformers in fp32 on the same weights
        if not isinstance(engine, LlamaCppEngine):
            seed = functools.partial(generate_label, engine.model, engine.tokenizer, two_class=two_class)
            runs["generate"] = await on_model_thread(timed(seed))
        else:  # its own thread, as the model it loads
            from core.local.worker import in_own_thread

            model, tokenizer = await in_own_thread(functools.partial(seed_model, settings))
            seed = functools.partial(generate_label, model, tokenizer, two_class=two_class)
            runs["generate"] = await in_own_thread(timed(seed))
    reports = [{"method": NAMES[method], **metrics(gold, pred, labels), "p50_ms": 1000 * statistics.median(latencies)}
               for method, (pred, latencies) in runs.items()]  # fmt: skip
    report: dict[str, Any] = {**reports[0], "baselines": reports[1:]}
    if vs_generate:
        report["speedup_p50"] = reports[-1]["p50_ms"] / reports[0]["p50_ms"]
    return report


async def evaluate_remote(engine: OpenAICompatEngine, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`evaluate` over an OpenAI-compatible server: the head (when the server gives what it reads),
    then label scoring; one request at a time, so the latency is a chat user's."""
    gold = [r["label"] for r in rows]
    labels = LABELS if "neutral" in gold else ("negative", "positive")
    methods: dict[str, Callable[[str], Awaitable[Sequence[float] | None]]] = {}
    if engine.head is not None:
        methods["head"] = engine.head_scores
    methods["labels"] = lambda text: _in_order(engine.label_scores(text))
    reports = []
    for method, score in methods.items():
        pred, latencies = [], []
        for row in rows:
            started = time.perf_counter()
            found = await score(row["text"])
            if found is None:  # the server cannot give the head its features: label scoring is what serves
                break
            pred.append(max(labels, key=lambda name: float(found[LABELS.index(name)])))
            latencies.append(time.perf_counter() - started)
        if len(pred) == len(rows):
            reports.append({"method": NAMES[method], **metrics(gold, pred, labels),
                            "p50_ms": 1000 * statistics.median(latencies)})  # fmt: skip
    return {**reports[0], "baselines": reports[1:]}


async def _in_order(scores: Awaitable[dict[str, float]]) -> list[float]:
    found = await scores
    return [found[label] for label in LABELS]


def seed_model(settings: Settings) -> tuple[Any, Any]:
    """The configured weights in Transformers, fp32 (a GGUF file dequantized once into the cache)."""
    import torch

    model = settings.model
    source = loading.resolve(model.id, model.gguf_file, model.fallback_to_embedded)
    return loading.load(source, torch.float32, model.cache_dir)


async def run(settings: Settings, path: Path, limit: int | None, split: str, vs_generate: bool) -> dict[str, Any]:
    """On the engine that serves (`model.engine`): llama.cpp for a .gguf file, else Transformers."""
    from bot.app import open_engine

    rows = sample(labelled(path, split), limit)  # type: ignore[arg-type]
    engine: Engine = await open_engine(settings.model, settings.sentiment, settings.secrets.inference_api_key)
    try:
        if isinstance(engine, OpenAICompatEngine):  # a running server: what it serves, as tonebot reads it
            if vs_generate:
                raise ConfigError("--vs-generate loads the weights in this process: not with model.engine 'openai'")
            return {"file": str(path), "split": split, "engine": "openai", **await evaluate_remote(engine, rows)}
        kind = "llamacpp" if isinstance(engine, LlamaCppEngine) else "transformers"
        return {
            "file": str(path),
            "split": split,
            "engine": kind,
            **await evaluate(cast("Local", engine), rows, vs_generate, settings),
        }
    finally:
        await engine.aclose()


def score_header(first: str, width: int) -> str:
    """The column heads that every score table starts with (eval and train-head)."""
    return f"{first:<{width}}{'rows':>6}{'accuracy':>10}{'macro-F1':>10}"


def score_cells(name: str, width: int, r: dict[str, Any]) -> str:
    return f"{name:<{width}}{r['rows']:>6}{r['accuracy']:>10.3f}{r['macro_f1']:>10.3f}"


def table(report: dict[str, Any]) -> str:
    lines = [score_header("method", 22) + f"{'neutral R':>11}{'p50 ms':>9}"]
    for r in (report, *report["baselines"]):
        neutral = r["per_class"].get("neutral", {}).get("recall")
        lines.append(
            score_cells(r["method"], 22, r) + f"{'—' if neutral is None else f'{neutral:.3f}':>11}{r['p50_ms']:>9.1f}"
        )
    if "speedup_p50" in report:
        lines.append(f"classify p50 speed-up over the seed's generate method: {report['speedup_p50']:.1f}x")
    return "\n".join(lines)

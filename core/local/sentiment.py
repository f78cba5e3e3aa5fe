"""Mood from one forward pass over a cached instruction prefix.

The instruction (and any in-context examples) are rendered with the model's own chat template
around a placeholder. Everything before the placeholder is run through the model once; its KV
cache is reused for every message, so a message costs only its own tokens plus the few tokens that
close the user turn. The mood is then read from the hidden state:
- by the learned head (core/local/head.py), at the layer it was fitted on: the pass stops there,
  the layers after it are never run;
- for a model without a head, by label-token scoring: the next-token distribution at the last
  position, restricted to the first tokens of the three label words.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from core.events import LABELS, Mood
from core.local import head, internals
from core.local.head import Identity, Pooling
from core.prompts import capped, sentiment_prompt
from core.settings import SentimentSettings

Method = Literal["head", "labels"]
log = logging.getLogger(__name__)


class MoodReader:
    """Blocking; call it from the model worker thread only."""

    def __init__(
        self, model: Any, tokenizer: Any, settings: SentimentSettings, name: str = "", heads: Path | None = None
    ) -> None:
        self.tokenizer, self.max_tokens = tokenizer, settings.max_text_tokens
        prefix, self._suffix = sentiment_prompt(tokenizer, settings)
        self.prefix_ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt").input_ids
        self._decoder = model.get_decoder()
        self.depth = len(self._decoder.layers)
        self._label_rows = model.get_output_embeddings().weight
        self._label_tokens = label_token_ids(tokenizer)
        self._caches: dict[int, Any] = {}
        self.identity = Identity(
            model=name or getattr(model, "name_or_path", ""),
            fingerprint=head.fingerprint(model),
            dtype=str(model.dtype).removeprefix("torch."),
            hidden_size=int(self._label_rows.shape[1]),
            layer=self.depth,
            pooling="last",
            prompt=head.prompt_hash(prefix, self._suffix),
        )
        self.head = head.find(settings.head, self.identity, heads)
        if self.head is None and settings.head == "auto":
            log.warning(
                "no mood head fits %s and this prompt: reading the mood by label scoring "
                "(fit one with `tonebot train-head FILE.jsonl...`)", self.identity.model
            )  # fmt: skip

    @property
    def method(self) -> Method:
        return "head" if self.head else "labels"

    def classify(self, texts: Sequence[str]) -> list[Mood]:
        probs = self.probabilities(texts, self.method).tolist()
        return [Mood.from_scores(dict(zip(LABELS, row, strict=True))) for row in probs]

    @torch.inference_mode()
    def probabilities(self, texts: Sequence[str], method: Method, use_prefix_cache: bool = True) -> torch.Tensor:
        """Probabilities over LABELS, shape (len(texts), 3)."""
        if method == "head":
            assert self.head is not None, "no mood head is loaded"
            layer, pooling = self.head.identity.layer, self.head.identity.pooling
            features = self.features(texts, layer, pooling, use_prefix_cache)
            return torch.from_numpy(self.head.probabilities(features.numpy()))
        return self.label_scores(self.features(texts, self.depth, "last", use_prefix_cache))

    @torch.inference_mode()
    def label_scores(self, last: torch.Tensor) -> torch.Tensor:
        """Label-token scoring from the final hidden state at the last position: (n, 3) probabilities."""
        scores = [torch.logsumexp(last @ self._label_rows[ids].float().T, dim=-1) for ids in self._label_tokens]
        return torch.softmax(torch.stack(scores, dim=-1), dim=-1)

    @torch.inference_mode()
    def features(
        self, texts: Sequence[str], layer: int, pooling: Pooling = "last", use_prefix_cache: bool = True
    ) -> torch.Tensor:
        """The (final-normed) hidden state after `layer` decoder layers, at the last position or
        averaged over the message's positions: shape (len(texts), hidden_size), float32."""
        ids, mask = self._encode(texts)
        n, prefix_len = len(texts), self.prefix_ids.shape[1]
        full_mask = torch.cat([torch.ones(n, prefix_len, dtype=mask.dtype), mask], dim=1)
        with internals.truncated(self._decoder, layer):
            if use_prefix_cache:
                cache = copy.deepcopy(self._prefix_cache(layer))
                cache.batch_repeat_interleave(n)
                hidden = self._decoder(ids, attention_mask=full_mask, cache=cache).last_hidden_state
            else:
                full_ids = torch.cat([self.prefix_ids.expand(n, -1), ids], dim=1)
                hidden = self._decoder(full_ids, attention_mask=full_mask).last_hidden_state[:, prefix_len:]
        return _pool(hidden.float(), mask, pooling)

    @torch.inference_mode()
    def layer_features(self, texts: Sequence[str], layers: Sequence[int], pooling: Pooling) -> dict[int, torch.Tensor]:
        """`features` at several layers from one pass (for fitting a head): the same values, since
        a pass that stops at a layer ends with the same final norm over that layer's output."""
        ids, mask = self._encode(texts)
        n, deepest = len(texts), max(layers)
        full_mask = torch.cat([torch.ones(n, self.prefix_ids.shape[1], dtype=mask.dtype), mask], dim=1)
        with internals.truncated(self._decoder, deepest):
            cache = copy.deepcopy(self._prefix_cache(deepest))
            cache.batch_repeat_interleave(n)
            states = self._decoder(ids, attention_mask=full_mask, cache=cache, output_hidden_states=True).hidden_states
        found = {}
        for layer in layers:
            hidden = (states[layer] if layer == deepest else self._decoder.norm(states[layer])).float()
            found[layer] = _pool(hidden, mask, pooling)
        return found

    def _prefix_cache(self, layer: int) -> Any:
        if layer not in self._caches:
            with internals.truncated(self._decoder, layer):
                self._caches[layer] = self._decoder(self.prefix_ids, use_cache=True).cache
        return self._caches[layer]

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        suffix = self.tokenizer.encode(self._suffix, add_special_tokens=False)
        rows = [capped(self.tokenizer.encode(t, add_special_tokens=False), self.max_tokens) + suffix for t in texts]
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return ids, mask


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling == "mean":
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return hidden[torch.arange(hidden.shape[0]), mask.sum(1) - 1]


def label_token_ids(tokenizer: Any) -> list[list[int]]:
    """First tokens of each label's spellings ("negative", " Negative", ...), none shared."""
    first: list[set[int]] = []
    for label in LABELS:
        spellings = {label, label.capitalize(), " " + label, " " + label.capitalize()}
        first.append({tokenizer.encode(s, add_special_tokens=False)[0] for s in spellings})
    shared = set.union(*(a & b for i, a in enumerate(first) for b in first[i + 1 :]))
    ids = [sorted(tokens - shared) for tokens in first]
    if not all(ids):
        raise ValueError("this tokenizer cannot tell the sentiment labels apart by their first token")
    return ids

"""Sentiment by scoring the label tokens in one forward pass over a cached instruction prefix.

The instruction (and any in-context examples) are rendered with the model's own chat template
around a placeholder. Everything before the placeholder is run through the model once; its KV
cache is reused for every message, so a message costs only its own tokens plus the few tokens
that close the user turn. The next-token distribution is read at the last position, restricted
to the first tokens of the label words, and calibrated against content-free inputs
(contextual calibration, Zhao et al. 2021) so that a label the prompt favours by itself does
not win by default.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from core.events import LABELS, Mood
from core.prompts import sentiment_prompt
from core.settings import SentimentSettings

_CONTENT_FREE = ("", "N/A", "[text]", "ok")


class LabelScorer:
    """Blocking scorer; call it from the model worker thread only."""

    def __init__(self, model: Any, tokenizer: Any, settings: SentimentSettings) -> None:
        self.model, self.tokenizer = model, tokenizer
        prefix_text, self._suffix_text = sentiment_prompt(tokenizer, settings)
        self.prefix_ids = tokenizer(prefix_text, add_special_tokens=False, return_tensors="pt").input_ids
        self._label_tokens = self._label_token_ids()
        self._decoder = model.get_decoder()
        self._label_rows = model.get_output_embeddings().weight
        with torch.inference_mode():
            self._prefix_cache = self._decoder(self.prefix_ids, use_cache=True).cache
        self._bias = torch.zeros(len(LABELS))
        if settings.calibrate:
            self._bias = self.log_probs(list(_CONTENT_FREE)).exp().mean(0).log()

    def _label_token_ids(self) -> list[list[int]]:
        """First tokens of each label's spellings ("negative", " Negative", ...), none shared."""
        first: list[set[int]] = []
        for label in LABELS:
            spellings = {label, label.capitalize(), " " + label, " " + label.capitalize()}
            first.append({self.tokenizer.encode(s, add_special_tokens=False)[0] for s in spellings})
        shared = set.union(*(a & b for i, a in enumerate(first) for b in first[i + 1 :]))
        ids = [sorted(tokens - shared) for tokens in first]
        if not all(ids):
            raise ValueError("this tokenizer cannot tell the sentiment labels apart by their first token")
        return ids

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.tokenizer.encode(t + self._suffix_text, add_special_tokens=False) for t in texts]
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        return ids, mask

    @torch.inference_mode()
    def log_probs(self, texts: Sequence[str], use_prefix_cache: bool = True) -> torch.Tensor:
        """Uncalibrated log-probabilities over LABELS, shape (len(texts), 3)."""
        ids, mask = self._encode(texts)
        n, prefix_len = len(texts), self.prefix_ids.shape[1]
        full_mask = torch.cat([torch.ones(n, prefix_len, dtype=mask.dtype), mask], dim=1)
        if use_prefix_cache:
            cache = copy.deepcopy(self._prefix_cache)
            cache.batch_repeat_interleave(n)
            hidden = self._decoder(ids, attention_mask=full_mask, cache=cache).last_hidden_state
        else:
            full_ids = torch.cat([self.prefix_ids.expand(n, -1), ids], dim=1)
            hidden = self._decoder(full_ids, attention_mask=full_mask).last_hidden_state[:, prefix_len:]
        last = hidden[torch.arange(n), mask.sum(1) - 1].float()
        scores = torch.stack(
            [torch.logsumexp(last @ self._label_rows[tokens].float().T, dim=-1) for tokens in self._label_tokens],
            dim=-1,
        )
        return torch.log_softmax(scores, dim=-1)

    def classify(self, texts: Sequence[str]) -> list[Mood]:
        probs = torch.softmax(self.log_probs(texts) - self._bias, dim=-1).tolist()
        return [Mood.from_scores(dict(zip(LABELS, row, strict=True))) for row in probs]

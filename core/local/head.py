"""The mood head: a linear read-out of the model's own hidden state (3 x hidden_size weights), or
under llama.cpp of the next-token log-probabilities of a fixed set of tokens (`tokens`): those are
a linear function of the final hidden state, read from the same cached-prefix pass as the reply's.

Bound to what it was fitted on: the model's weights (a fingerprint of their values), the layer it
reads, how it pools, and the sentiment prompt. `check` refuses a head that does not match the
loaded model with a clear error; it is never silently used on another model. Stored as
safetensors: the tensors plus the identity as metadata (`tonebot train-head` writes them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ConfigError
from core.events import LABELS

Pooling = Literal["last", "mean", "logprobs"]
SHIPPED = files("core.local").joinpath("heads")


@dataclass(frozen=True)
class Identity:
    """What a head was fitted on."""

    model: str  # the model's name, for people
    fingerprint: str  # of the weights' values, see `fingerprint`
    dtype: str
    hidden_size: int  # pooling "logprobs": the vocabulary's size
    layer: int  # hidden state after this many decoder layers (-1: the last)
    pooling: Pooling
    prompt: str  # hash of the rendered sentiment prompt

    def mismatch(self, other: Identity) -> list[str]:
        """The fields that differ, named for an error message (the model's name may differ)."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{key}: head {mine[key]!r}, loaded {theirs[key]!r}" for key in ("fingerprint", "dtype", "hidden_size",
                "prompt") if mine[key] != theirs[key]]  # fmt: skip


def fingerprint(model: Any) -> str:  # a torch model: only the Transformers engine calls this
    """A hash of the weights' values: every parameter's name, shape and first 256 values. Two
    fine-tunes of one architecture differ here; the same weights from any file format agree."""
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        digest.update(f"{name}{tuple(parameter.shape)}".encode())
        digest.update(parameter.detach().flatten()[:256].float().numpy().tobytes())
    return digest.hexdigest()[:16]


def prompt_hash(prefix: str, suffix: str) -> str:
    return hashlib.sha256(f"{prefix}\x00{suffix}".encode()).hexdigest()[:16]


def logprob_features(tops: Sequence[dict[int, float]], tokens: np.ndarray) -> np.ndarray:
    """(n, len(tokens)) features from each text's top next-token log-probabilities {id: logprob}; a
    token not among a text's top ones gets that text's lowest log-probability, less one."""
    out = np.empty((len(tops), len(tokens)), dtype=np.float32)
    for row, top in enumerate(tops):
        floor = min(top.values(), default=0.0) - 1.0
        out[row] = [top.get(int(token), floor) for token in tokens]
    return out


@dataclass(frozen=True)
class MoodHead:
    """p(label | x) = softmax(W ((x - mean) / scale) + b) / temperature), labels in LABELS order."""

    identity: Identity
    weight: np.ndarray  # (3, hidden)
    bias: np.ndarray  # (3,)
    mean: np.ndarray  # (hidden,)
    scale: np.ndarray  # (hidden,)
    temperature: float = 1.0
    report: str = "{}"  # the held-out evaluation it was shipped with (JSON)
    tokens: np.ndarray | None = None  # pooling "logprobs": the token ids whose log-probabilities it reads

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, hidden) features -> (n, 3) probabilities; numpy, so no engine needs torch for it."""
        logits = ((np.asarray(features, dtype=np.float32) - self.mean) / self.scale) @ self.weight.T + self.bias
        z = logits / self.temperature
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)

    def check(self, loaded: Identity) -> None:
        if problems := self.identity.mismatch(loaded):
            raise ConfigError(
                f"the mood head for {self.identity.model!r} does not fit the loaded model {loaded.model!r} "
                f'({"; ".join(problems)}): train one with `tonebot train-head`, or set sentiment.head = "" '
                "for label scoring"
            )

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"weight": self.weight, "bias": self.bias, "mean": self.mean, "scale": self.scale}
        metadata = {"identity": json.dumps(asdict(self.identity)), "temperature": repr(self.temperature),
                    "labels": json.dumps(LABELS), "report": self.report}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
        if self.tokens is not None:
            arrays["tokens"] = np.ascontiguousarray(self.tokens, dtype=np.int64)
        save_file(arrays, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: Path) -> MoodHead:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta, tensors = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
            if json.loads(meta["labels"]) != list(LABELS):
                raise ValueError(f"labels {meta['labels']} are not {list(LABELS)}")
            identity = Identity(**json.loads(meta["identity"]))
            return cls(identity, temperature=float(meta["temperature"]), report=meta.get("report", "{}"), **tensors)
        except (OSError, KeyError, TypeError, ValueError, SafetensorError) as exc:
            raise ConfigError(f"cannot read the mood head {path}: {exc}") from exc


def candidates(trained: Path | None) -> list[Path]:
    """The heads "auto" looks at: those shipped in the package, then those `train-head` wrote."""
    shipped = sorted(Path(str(p)) for p in SHIPPED.iterdir() if p.name.endswith(".safetensors"))
    return shipped + (sorted(trained.glob("*.safetensors")) if trained else [])


def find(setting: str, loaded: Identity, trained: Path | None = None) -> MoodHead | None:
    """The head `sentiment.head` names: "" none (label scoring); "auto" a head fitted on the loaded
    model and prompt, shipped or trained into `trained` (none if there is no such head); else a
    file, which must fit."""
    if not setting:
        return None
    if setting != "auto":
        head = MoodHead.load(Path(setting).expanduser())
        head.check(loaded)
        return head
    for path in candidates(trained):
        head = MoodHead.load(path)
        if not head.identity.mismatch(loaded):
            return head
    return None

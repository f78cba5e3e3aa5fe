"""The one module that touches Transformers internals: the continuous batching manager, and a
decoder's layer list (to stop a sentiment pass early).

Transformers has no public hook for running work on the manager's thread, so `run_before_each_step`
wraps its loop step (`_generation_loop_body`) and rings its wake-up event (`_wake_up_loop`). Those
names change between minor releases: `TESTED` is the minor they were checked on, pyproject.toml
admits only that minor, and tests/core/local/test_internals.py fails on any other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from core.errors import EngineError
from core.loading import transformers as _transformers
from core.settings import ModelSettings

log = logging.getLogger(__name__)
transformers = _transformers()  # imported with its logs routed to ours
TESTED = "5.24"
PAGE_TOKENS = 64
KV_TOKENS = 4096  # the paged KV cache when model.kv_cache_tokens is 0 (~46 KB/token: 0.19 GB)


def drop_result_handler(batcher: Any, request_id: str) -> None:
    """A cancelled request never finishes, so the manager never drops its result handler (it does
    only on a finished result): drop it here, or every abandoned reply leaks one."""
    router = batcher.output_router
    with router._lock:
        router.result_handlers.pop(request_id, None)


def minor(version: str = transformers.__version__) -> str:
    return ".".join(version.split(".")[:2])


def start(model: Any, tokenizer: Any, settings: ModelSettings) -> Any:
    """Transformers' continuous batching manager, started: its own thread, a paged KV cache of
    `kv_cache_tokens` (KV_TOKENS when 0; never less than one full context), and new requests joining the running
    batch; when the cache is full, new replies wait for blocks to free up."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    if minor() != TESTED:
        log.warning("transformers %s is untested here (tested: %s.x)", transformers.__version__, TESTED)
    s = settings
    sampling = {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p} if s.temperature else {}
    generation = GenerationConfig(
        max_new_tokens=s.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        **sampling,
    )
    batching = ContinuousBatchingConfig(
        page_size=PAGE_TOKENS,
        num_blocks=-(-max(s.kv_cache_tokens or KV_TOKENS, s.context_tokens) // PAGE_TOKENS),
        max_batch_tokens=s.prefill_chunk_tokens,
        max_requests_per_batch=s.max_concurrent_replies,
        use_cuda_graph=False,
    )
    batcher = model.init_continuous_batching(generation_config=generation, continuous_batching_config=batching)
    batcher.start()
    return batcher


def run_before_each_step(batcher: Any, before: Callable[[], None]) -> Callable[[], None]:
    """Call `before` on the manager's thread ahead of every step of its loop; returns a function
    that wakes the loop up (it idles up to 0.1 s when it has no requests)."""
    step, wake_up = getattr(batcher, "_generation_loop_body", None), getattr(batcher, "_wake_up_loop", None)
    if step is None or not isinstance(wake_up, threading.Event):
        raise EngineError(f"transformers {transformers.__version__} changed its batching loop (tested: {TESTED})")

    def body(*args: Any, **kwargs: Any) -> Any:
        before()
        return step(*args, **kwargs)

    batcher._generation_loop_body = body
    return wake_up.set


def thread(batcher: Any) -> threading.Thread | None:
    """The manager's generation thread (every forward pass runs on it)."""
    return getattr(batcher, "_generation_thread", None)


def failure(batcher: Any) -> str:
    """Why the manager's loop is not running ("" while it is)."""
    status = getattr(batcher, "background_thread_status", None)
    if (error := getattr(status, "fatal_error", None)) is not None:
        return f"the generation loop failed: {error!r}"
    return "" if batcher.is_running() else "the generation loop is not running"


@contextlib.contextmanager
def truncated(decoder: Any, layers: int) -> Iterator[None]:
    """Run only the decoder's first `layers` layers (its final norm still applies): a forward
    pass that stops there costs that fraction of a whole one. On the batcher's thread only, like
    every pass, so no other pass sees the decoder shortened."""
    whole = decoder.layers
    if layers >= len(whole):
        yield
        return
    decoder.layers = whole[:layers]
    try:
        yield
    finally:
        decoder.layers = whole

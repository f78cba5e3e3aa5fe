"""`tonebot bench`: one process, one model load, one run; a table on stdout and JSON on disk.

Everything is measured on the configured model in the same process: classify latency next to
the seed's method (instruction + greedy generation of up to 8 tokens, fp32), reply speed, the
decode roofline from this machine's measured memory bandwidth, throughput under concurrent
conversations through the real pipeline, peak RSS and cold start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import platform
import resource
import socket
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import migrate
from bot.config import Settings
from bot.evaluate import generate_label
from core import loading
from core.bot import Bot
from core.errors import ConfigError
from core.events import ChatMessage, ConversationKey, IncomingMessage
from core.local.engine import TransformersEngine
from core.local.worker import in_own_thread
from core.memory import Memory

# Support-chat style messages, written for the benchmark (not taken from the evaluation sets).
SAMPLE = [
    "Hi, where is my order? It was supposed to arrive yesterday.",
    "Thanks a lot, that fixed it!",
    "This is the third time the app crashed today. I am fed up.",
    "Can I change the delivery address?",
    "Great support, you were really quick.",
    "Nobody answers my emails and I want a refund now.",
    "What are your opening hours on Sunday?",
    "The new update is fantastic, well done!",
    "我的订单还没到，已经等了一个星期了。",
    "谢谢，问题解决了，非常满意！",
    "太差了，再也不买了。",
    "请问可以开发票吗？",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> dict[str, Any]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def memory_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second of a large tensor copy (read + write), the best of a few runs."""
    import torch

    source = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.numel() * source.element_size() / best


def weight_bytes(model: Any, per_token: bool = False) -> int:
    """Bytes of weights held in memory, or (`per_token`) read to decode one token: every linear
    layer and norm; an embedding table only as the one row it reads then."""
    import torch

    total, seen = 0, set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen and not (per_token and isinstance(module, torch.nn.Embedding)):
                seen.add(id(p))  # tied weights count once
                total += p.numel() * p.element_size()
    return total


def timed_decode(engine: TransformersEngine, new_tokens: int) -> dict[str, float]:
    """Time to first token and decode speed for exactly `new_tokens` tokens, through the same
    continuous batcher that serves replies (blocking; run it off the event loop)."""
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Tell me about the sea.")]
    ids = engine.prompt_ids(chat)
    started = time.perf_counter()
    request = engine.batcher.add_request(ids, "bench-decode", new_tokens, record_timestamps=True, eos_token_id=-1)
    while (output := engine.batcher.get_result(request, timeout=1.0)) is None or not output.is_finished():
        pass
    marks = output.timestamps or [started]
    return {
        "ttft_s": marks[0] - started,
        "decode_tokens_per_s": (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 else 0.0,
        "prompt_tokens": len(ids),
    }


async def classify_latencies(engine: TransformersEngine, texts: list[str]) -> list[float]:
    latencies = []
    for text in texts:
        started = time.perf_counter()
        await engine.classify([text])
        latencies.append(time.perf_counter() - started)
    return latencies


async def seed_latencies(engine: TransformersEngine, texts: list[str]) -> list[float]:
    """The seed's method on the same weights in fp32, as the seed ran it (a copy if we serve another dtype)."""
    import torch

    model, tokenizer = engine.model, engine.tokenizer
    if model.dtype != torch.float32:
        source = loading.resolve(engine.settings.id, engine.settings.gguf_file, engine.settings.fallback_to_embedded)
        model, tokenizer = await in_own_thread(lambda: loading.load(source, torch.float32, engine.settings.cache_dir))
    latencies = []
    for text in texts:
        started = time.perf_counter()
        await engine.worker.run(functools.partial(generate_label, model, tokenizer, text, False))
        latencies.append(time.perf_counter() - started)
    return latencies


async def cold_start_without_cache(settings: Settings) -> float:
    """Cold start on an empty converted-weights cache: what the very first start costs."""
    with tempfile.TemporaryDirectory() as tmp:
        model = dataclasses.replace(settings.model, cache_dir=Path(tmp))
        started = time.perf_counter()
        engine = await TransformersEngine.load(model, settings.sentiment)
        elapsed = time.perf_counter() - started
        await engine.aclose()
    return elapsed


async def load_test(
    engine: TransformersEngine, settings: Settings, conversations: int, messages: int
) -> dict[str, float]:
    """`conversations` users at once, each sending `messages` in turn, through the whole pipeline."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        await asyncio.to_thread(migrate.upgrade, url)
        memory = Memory.open(url)
        bot = Bot(engine, memory, settings.prompts, settings.memory)
        latencies: list[float] = []

        async def user(n: int) -> None:
            for i in range(messages):
                msg = IncomingMessage(ConversationKey("bench", f"c{n}"), f"u{n}", SAMPLE[(n + i) % len(SAMPLE)])
                started = time.perf_counter()
                await bot.handle(msg)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(user(n) for n in range(conversations)))
        wall = time.perf_counter() - started
        await memory.aclose()
    return {
        "conversations": conversations,
        "messages": len(latencies),
        "messages_per_s": len(latencies) / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 0.95),
    }


def llamacpp_server(gguf: Path, parallel: int = 1, context: int = 2048) -> Any:
    """llama.cpp's OpenAI-compatible server (xllamacpp wheel) in this process, on a free loopback
    port, with every core; `server.listening_address` is its base URL, `del server` stops it."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigError("llama.cpp's server needs its Python wheel: pip install xllamacpp") from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_parallel, params.n_ctx = parallel, context
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = os.cpu_count() or 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        params.port = probe.getsockname()[1]
    params.hostnames = ["127.0.0.1"]
    return xllamacpp.Server(params)


def llamacpp_decode(settings: Settings, new_tokens: int) -> dict[str, Any]:
    """The same GGUF under llama.cpp's server (xllamacpp wheel), on loopback: the anchor a CPU user
    would otherwise pick. Its own timings of one greedy completion of exactly `new_tokens` tokens."""
    source = loading.resolve(settings.model.id, settings.model.gguf_file, settings.model.fallback_to_embedded)
    if not source.gguf_file:
        raise ConfigError("--vs-llamacpp compares GGUF weights; the configured model is not a .gguf file")
    server = llamacpp_server(source.path / source.gguf_file)
    prompt = "<|im_start|>user\nTell me about the sea.<|im_end|>\n<|im_start|>assistant\n"
    body = {"prompt": prompt, "max_tokens": new_tokens, "temperature": 0, "ignore_eos": True}
    timings: dict[str, float] = {}
    for _ in range(2):  # the first run warms up
        request = urllib.request.Request(
            f"{server.listening_address}/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            timings = json.loads(response.read())["timings"]
    del server
    return {
        "weights": source.gguf_file,
        "decode_tokens_per_s": float(timings["predicted_per_second"]),
        "prompt_tokens_per_s": float(timings["prompt_per_second"]),
    }


async def run(settings: Settings, quick: bool, vs_llamacpp: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    engine = await TransformersEngine.load(settings.model, settings.sentiment)
    cold_start = time.perf_counter() - started
    try:
        texts = SAMPLE[:4] if quick else SAMPLE * 4
        ours = await classify_latencies(engine, texts)
        decode = await asyncio.to_thread(timed_decode, engine, 8 if quick else 64)
        reply_tokens = 8 if quick else 64
        engine.settings = dataclasses.replace(engine.settings, max_new_tokens=reply_tokens)
        one = await load_test(engine, settings, 1, 1 if quick else 3)
        levels = (1, 2) if quick else (1, 4, 8, 16)
        load = [await load_test(engine, settings, c, 1 if quick else 2) for c in levels]
        weights, per_token = weight_bytes(engine.model), weight_bytes(engine.model, per_token=True)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the seed's fp32 copy
        seed = await seed_latencies(engine, texts[:4] if quick else texts[:24])
        bandwidth = memory_bandwidth(64 if quick else 512)
        first_start = None if quick else await cold_start_without_cache(settings)
        llamacpp = await asyncio.to_thread(llamacpp_decode, settings, reply_tokens) if vs_llamacpp else None
        roofline = bandwidth / per_token
        base = load[0]["messages_per_s"]
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
            "machine": machine(),
            "model": {
                "name": engine.source_name,
                "dtype": str(engine.model.dtype).removeprefix("torch."),
                "weight_bytes": weights,
                "bytes_read_per_token": per_token,
            },
            "cold_start_s": cold_start,
            "cold_start_first_run_s": first_start,
            "llamacpp": llamacpp,
            "classify": {
                "p50_ms": 1000 * statistics.median(ours),
                "p95_ms": 1000 * percentile(ours, 0.95),
                "messages": len(ours),
            },
            "seed_generate": {
                "p50_ms": 1000 * statistics.median(seed),
                "p95_ms": 1000 * percentile(seed, 0.95),
                "messages": len(seed),
                "dtype": "float32",
            },
            "classify_speedup_p50": statistics.median(seed) / statistics.median(ours),
            "reply": {**decode, "end_to_end_s": one["p50_s"], "reply_tokens": reply_tokens},
            "roofline": {
                "bandwidth_gb_s": bandwidth / 1e9,
                "tokens_per_s": roofline,
                "achieved": decode["decode_tokens_per_s"] / roofline,
            },
            "load": [{**level, "speedup": level["messages_per_s"] / base} for level in load],
            "peak_rss_bytes": peak_rss,
            "peak_rss_over_weights": peak_rss / weights,
        }
    finally:
        await engine.aclose()


def table(r: dict[str, Any]) -> str:
    c, s, rep, roof = r["classify"], r["seed_generate"], r["reply"], r["roofline"]
    lines = [
        f"model {r['model']['name']} ({r['model']['dtype']}, {r['model']['weight_bytes'] / 1e6:.0f} MB) "
        f"on {r['machine']['cpu']} x{r['machine']['cores']}",
        f"cold start to ready (converted-weights cache): {r['cold_start_s']:.1f} s"
        + (f"; first run, empty cache: {r['cold_start_first_run_s']:.1f} s" if r["cold_start_first_run_s"] else ""),
        f"classify p50 / p95:            {c['p50_ms']:7.1f} / {c['p95_ms']:7.1f} ms",
        f"seed generate p50 / p95 (fp32): {s['p50_ms']:7.1f} / {s['p95_ms']:7.1f} ms",
        f"classify p50 speed-up over the seed's method: {r['classify_speedup_p50']:.1f}x",
        f"reply: first token {rep['ttft_s'] * 1000:.0f} ms, decode {rep['decode_tokens_per_s']:.1f} tok/s, "
        f"message -> {rep['reply_tokens']}-token reply {rep['end_to_end_s']:.2f} s",
        f"decode roofline: {roof['bandwidth_gb_s']:.1f} GB/s / {r['model']['bytes_read_per_token'] / 1e6:.0f} MB "
        f"per token -> {roof['tokens_per_s']:.1f} tok/s; "
        f"achieved {roof['achieved']:.0%}",
        "concurrent conversations | messages/s | p95 s | vs one",
        *(
            f"{lv['conversations']:>24} | {lv['messages_per_s']:10.2f} | {lv['p95_s']:5.2f} | {lv['speedup']:.2f}x"
            for lv in r["load"]
        ),
        f"peak RSS {r['peak_rss_bytes'] / 1e9:.2f} GB = {r['peak_rss_over_weights']:.1f}x the weights",
    ]
    if r["llamacpp"]:
        cpp = r["llamacpp"]
        lines.append(
            f"llama.cpp on {cpp['weights']}: decode {cpp['decode_tokens_per_s']:.1f} tok/s, "
            f"prompt {cpp['prompt_tokens_per_s']:.0f} tok/s (ours: {rep['decode_tokens_per_s']:.1f} tok/s)"
        )
    return "\n".join(lines)


def write(report: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"bench-{report['when'].replace(':', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path

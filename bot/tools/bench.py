"""`tonebot bench`: one process, one model load, one run; a table on stdout and JSON on disk.

Everything is measured on the configured model (or `--model`), with the engine serving would pick
(llama.cpp for a .gguf file, Transformers otherwise), in the same process: classify latency next to
the seed's method (instruction + greedy generation of up to 8 tokens, Transformers fp32 on the same
weights), the reply as a user gets it (first token, decode speed), message -> reply through the
whole pipeline, throughput under concurrent conversations, the decode roofline from this machine's
measured memory bandwidth, peak RSS and cold start; with --vs-llamacpp, llama.cpp's own server on
the same GGUF as the anchor. Torch is imported only for the seed's method, after RSS is read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot import migrate
from bot.app import engine_kind, open_engine
from bot.config import Settings
from core import loading
from core.bot import Bot
from core.engine import Engine
from core.errors import ConfigError
from core.events import ChatMessage, ConversationKey, IncomingMessage
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
SEA = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Tell me about the sea.")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_now() -> int:
    """Resident set size now, in bytes (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    flags = next((line for line in _cpuinfo() if line.startswith("flags")), "")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def memory_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes per second of a large array copy (read + write), the best of a few runs."""
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * source.nbytes / best


def weights(engine: Engine) -> tuple[int, int]:
    """(bytes of weights the process holds, bytes read to decode one token). A GGUF file under
    llama.cpp: the file (memory-mapped). A Transformers model: every parameter, and per token every
    linear layer and norm, an embedding table only as the one row it reads then."""
    if not hasattr(engine, "model"):
        size = Path(getattr(engine, "gguf_path", "")).stat().st_size
        return size, size
    import torch

    held, read, seen = 0, 0, set()
    for module in engine.model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))  # tied weights count once
                held += p.numel() * p.element_size()
                read += 0 if isinstance(module, torch.nn.Embedding) else p.numel() * p.element_size()
    return held, read


async def timed_reply(engine: Engine, new_tokens: int) -> dict[str, float]:
    """A reply as its user gets it: time to the first text, decode speed over the rest (tokens
    counted by the model's tokenizer), on a fixed prompt."""
    engine.settings = dataclasses.replace(engine.settings, max_new_tokens=new_tokens)  # type: ignore[attr-defined]
    started, marks, text = time.perf_counter(), [], ""
    async for chunk in engine.reply(SEA):
        marks.append(time.perf_counter())
        text += chunk
    tokens = len(engine.tokenizer.encode(text))  # type: ignore[attr-defined]
    span = marks[-1] - marks[0] if len(marks) > 1 else 0.0
    return {"ttft_s": marks[0] - started, "decode_tokens_per_s": (tokens - 1) / span if span else 0.0,
            "tokens": tokens, "total_s": marks[-1] - started}  # fmt: skip


async def classify_latencies(engine: Engine, texts: list[str]) -> list[float]:
    latencies = []
    for text in texts:
        started = time.perf_counter()
        await engine.classify([text])
        latencies.append(time.perf_counter() - started)
    return latencies


async def seed_latencies(settings: Settings, texts: list[str]) -> list[float]:
    """The seed's method as the seed ran it: Transformers, fp32, the same weights (dequantized)."""
    from bot.tools.evaluate import generate_label, seed_model
    from core.local.worker import in_own_thread

    model, tokenizer = await in_own_thread(lambda: seed_model(settings))

    def timed() -> list[float]:
        latencies = []
        for text in texts:
            started = time.perf_counter()
            generate_label(model, tokenizer, text, False)
            latencies.append(time.perf_counter() - started)
        return latencies

    return await in_own_thread(timed)


def cache_files(cache_dir: Path) -> set[Path]:
    return set(cache_dir.rglob("*")) if cache_dir.exists() else set()


FIRST_START = """
import asyncio, os, time
from bot.app import open_engine
from bot.config import load_settings
async def main():
    s = load_settings(environ=os.environ)
    started = time.perf_counter()
    engine = await open_engine(s.model, s.sentiment)
    print(time.perf_counter() - started)
    await engine.aclose()
asyncio.run(main())
"""


def model_env(model: Any, cache_dir: Path) -> dict[str, str]:
    """This environment, with the model settings a `tonebot` process of its own should use."""
    return {**os.environ, "TONEBOT_MODEL__ID": model.id, "TONEBOT_MODEL__GGUF_FILE": model.gguf_file,
            "TONEBOT_MODEL__ENGINE": model.engine, "TONEBOT_MODEL__CACHE_DIR": str(cache_dir)}  # fmt: skip


def free_port() -> int:
    """A loopback port free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cold_start_without_cache(settings: Settings) -> float:
    """The very first start: a fresh process (nothing imported yet, as `tonebot serve`), an empty
    cache (requantized or converted weights, the extracted tokenizer); seconds to a ready engine."""
    with tempfile.TemporaryDirectory() as tmp:
        model = settings.model
        env = model_env(model, Path(tmp))
        done = subprocess.run([sys.executable, "-c", FIRST_START], env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"the first start failed: {done.stderr[-2000:]}")
        return float(done.stdout.split()[-1])


async def pipeline(engine: Engine, settings: Settings) -> tuple[Bot, Memory, tempfile.TemporaryDirectory[str]]:
    """A Bot on the engine and a fresh SQLite file: sentiment, storage and reply, as served."""
    tmp = tempfile.TemporaryDirectory()
    url = f"sqlite:///{tmp.name}/bench.db"
    await asyncio.to_thread(migrate.upgrade, url)
    memory = Memory.open(url)
    return Bot(engine, memory, settings.prompts, settings.memory), memory, tmp


async def load_test(engine: Engine, settings: Settings, conversations: int, messages: int) -> dict[str, float]:
    """`conversations` users at once, each sending `messages` in turn, through the whole pipeline."""
    bot, memory, tmp = await pipeline(engine, settings)
    latencies: list[float] = []
    tokens: list[int] = []

    async def user(n: int) -> None:
        for i in range(messages):
            msg = IncomingMessage(ConversationKey("bench", f"c{n}"), f"u{n}", SAMPLE[(n + i) % len(SAMPLE)])
            started = time.perf_counter()
            reply = await bot.handle(msg)
            latencies.append(time.perf_counter() - started)
            tokens.append(len(engine.tokenizer.encode(reply.text)))  # type: ignore[attr-defined]

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(conversations)))
    wall = time.perf_counter() - started
    await memory.aclose()
    tmp.cleanup()
    return {
        "conversations": conversations,
        "messages": len(latencies),
        "messages_per_s": len(latencies) / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 0.95),
        "reply_tokens_mean": statistics.fmean(tokens),  # replies may end before max_new_tokens
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
    params.n_parallel, params.n_ctx, params.verbosity = parallel, context, 0
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = os.cpu_count() or 1
    params.port = free_port()
    params.hostnames = ["127.0.0.1"]
    return xllamacpp.Server(params)


def llamacpp_decode(settings: Settings, new_tokens: int) -> dict[str, Any]:
    """The same GGUF under llama.cpp's own server (xllamacpp wheel), on loopback: the anchor a CPU
    user would otherwise pick. Its own timings of one greedy completion of exactly `new_tokens`."""
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
    kind = await asyncio.to_thread(engine_kind, settings.model)
    cached = cache_files(settings.model.cache_dir)
    started = time.perf_counter()
    engine = await open_engine(settings.model, settings.sentiment)
    cold_start = time.perf_counter() - started
    cache_was = "warm" if cache_files(settings.model.cache_dir) == cached else "filled by this start"
    texts = SAMPLE[:4] if quick else SAMPLE * 4
    reply_tokens = 8 if quick else 64
    try:
        ours = await classify_latencies(engine, texts)
        reply = await timed_reply(engine, reply_tokens)
        one = await load_test(engine, settings, 1, 1 if quick else 5)
        levels = (1, 2) if quick else (1, 4, 8)
        load = [await load_test(engine, settings, c, 1 if quick else 2) for c in levels]
        held, per_token = weights(engine)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # before the seed's own copy
        name = getattr(engine, "source_name", settings.model.id)
        served = Path(getattr(engine, "gguf_path", None) or "").name or None  # llama.cpp: maybe a requantized copy
    finally:
        await engine.aclose()
    seed = await seed_latencies(settings, texts[:4] if quick else texts[:24])
    bandwidth = memory_bandwidth(64 if quick else 512)
    first_start = None if quick else await asyncio.to_thread(cold_start_without_cache, settings)
    llamacpp = await asyncio.to_thread(llamacpp_decode, settings, reply_tokens) if vs_llamacpp else None
    roofline = bandwidth / per_token
    base = load[0]["messages_per_s"]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "engine": kind,
        "model": {"name": name, "served_file": served, "weight_bytes": held, "bytes_read_per_token": per_token},
        "cold_start_s": cold_start,
        "cold_start_cache": cache_was,  # "filled by this start": that was a first start
        "cold_start_first_run_s": first_start,
        "llamacpp": llamacpp,
        "decode_vs_llamacpp": reply["decode_tokens_per_s"] / llamacpp["decode_tokens_per_s"] if llamacpp else None,
        "classify": latency(ours),
        "seed_generate": {**latency(seed), "dtype": "float32"},
        "classify_speedup_p50": statistics.median(seed) / statistics.median(ours),
        "reply": {
            **reply,
            "end_to_end_s": one["p50_s"],
            "end_to_end_p95_s": one["p95_s"],
            "end_to_end_reply_tokens": one["reply_tokens_mean"],
            "reply_tokens": reply_tokens,
        },
        "roofline": {
            "bandwidth_gb_s": bandwidth / 1e9,
            "tokens_per_s": roofline,
            "achieved": reply["decode_tokens_per_s"] / roofline,
        },
        "load": [{**level, "speedup": level["messages_per_s"] / base} for level in load],
        "peak_rss_bytes": peak_rss,
        "peak_rss_over_weights": peak_rss / held,
    }


def latency(seconds: list[float]) -> dict[str, float]:
    return {"p50_ms": 1000 * statistics.median(seconds), "p95_ms": 1000 * percentile(seconds, 0.95),
            "messages": len(seconds)}  # fmt: skip


def table(r: dict[str, Any]) -> str:
    c, s, rep, roof = r["classify"], r["seed_generate"], r["reply"], r["roofline"]
    first = r["cold_start_first_run_s"]
    lines = [
        f"model {r['model']['name']} ({r['engine']}"
        + (f", serving {r['model']['served_file']}" if r["model"].get("served_file") else "")
        + f", {r['model']['weight_bytes'] / 1e6:.0f} MB of weights) "
        f"on {r['machine']['cpu']} x{r['machine']['cores']}",
        f"cold start to ready: {r['cold_start_s']:.1f} s, the cache (converted weights, tokenizer) "
        + ("warm" if r["cold_start_cache"] == "warm" else "empty: a first start")
        + (f"; first start, empty cache: {first:.1f} s" if first else ""),
        f"classify p50 / p95:            {c['p50_ms']:7.1f} / {c['p95_ms']:7.1f} ms",
        f"seed generate p50 / p95 (fp32): {s['p50_ms']:7.1f} / {s['p95_ms']:7.1f} ms",
        f"classify p50 speed-up over the seed's method: {r['classify_speedup_p50']:.1f}x",
        f"reply: first token {rep['ttft_s'] * 1000:.0f} ms, decode {rep['decode_tokens_per_s']:.1f} tok/s; "
        f"message -> {rep['reply_tokens']}-token reply (sentiment and storage included) "
        f"p50 {rep['end_to_end_s']:.2f} s (replies averaged {rep['end_to_end_reply_tokens']:.0f} tokens)",
        f"decode roofline: {roof['bandwidth_gb_s']:.1f} GB/s / {r['model']['bytes_read_per_token'] / 1e6:.0f} MB "
        f"per token -> {roof['tokens_per_s']:.1f} tok/s; achieved {roof['achieved']:.0%}",
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
            f"llama.cpp's own server on {cpp['weights']}: decode {cpp['decode_tokens_per_s']:.1f} tok/s, prompt "
            f"{cpp['prompt_tokens_per_s']:.0f} tok/s; tonebot's decode is {r['decode_vs_llamacpp']:.2f}x that"
        )
    return "\n".join(lines)


def write(report: dict[str, Any], out_dir: Path, kind: str = "bench") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}-{report['when'].replace(':', '')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path

"""`tonebot bench --capacity N,N,...`: how many customers one box serves at once.

A closed loop per level N: N customers each write a message, wait for the whole answer, think
(`think` seconds on average, 0.5-1.5x, the same seeded draws on both sides), and write the next turn
of their conversation (bot/tools/support_chats.py), for `duration` seconds. Two servers get the same
load in one run, one after the other:

- tonebot as users run it: `tonebot serve` in its own process on loopback (HTTP, the mood pass,
  SQLite, the reply), each answer streamed from `POST /v1/chat/stream`;
- llama.cpp's own server on the same GGUF file with N parallel slots, sent the whole conversation
  every turn (system prompt, history, message) on `/v1/chat/completions`, streamed, no mood pass:
  what a user would run behind a thin bot instead.

Both cap replies at `tokens`. Per level and side: answers per minute, p50 / p95 latency (message to
the answer's end), first-token p95, errors; tonebot's own split of the time from its /metrics (the
mood pass, first token, the reply); the ratios; and per side the largest N whose p95 <= P95_TARGET_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings
from bot.tools.bench import free_port, llamacpp_server, machine, model_env, percentile
from bot.tools.support_chats import CHATS
from core import loading
from core.errors import ConfigError

P95_TARGET_S = 3.0
CONTEXT_PER_SLOT = 4096  # llama.cpp's server: room for a whole conversation in each of its N slots
# Send = (customer, text, history) -> the answer's text; it records its own timings into a Turn.
Send = Callable[[int, str, list[dict[str, str]], "Turn"], Awaitable[str]]


@dataclass
class Turn:
    started: float = 0.0
    first: float | None = None
    ended: float | None = None
    error: str = ""
    chars: int = 0


async def customers(n: int, duration: float, think: float, send: Send) -> dict[str, Any]:
    """The closed loop: n customers, each its own conversation, until `duration` has passed."""
    turns: list[Turn] = []
    began = time.perf_counter()
    deadline = time.monotonic() + duration

    async def customer(k: int) -> None:
        rng, chat = random.Random(k), CHATS[k % len(CHATS)]
        history: list[dict[str, str]] = []
        await asyncio.sleep(rng.uniform(0, think))  # customers do not all arrive in the same instant
        i = 0
        while time.monotonic() < deadline:
            text, turn = chat[i % len(chat)], Turn(started=time.perf_counter())
            turns.append(turn)
            try:
                answer = await send(k, text, history, turn)
                turn.chars = len(answer)
                history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                turn.error = f"{type(exc).__name__}: {exc}"[:200]
            turn.ended = time.perf_counter()
            i += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)

    await asyncio.gather(*(customer(k) for k in range(n)))
    return summary(turns, began, duration)


def summary(turns: list[Turn], began: float, duration: float) -> dict[str, Any]:
    """Answers per minute counts those finished within `duration`; latencies count every answer."""
    done = [t for t in turns if not t.error and t.ended is not None]
    latency = [t.ended - t.started for t in done if t.ended is not None]
    first = [t.first - t.started for t in done if t.first is not None]
    in_time = [t for t in done if t.ended is not None and t.ended - began <= duration]
    return {
        "answers": len(done),
        "answers_per_min": 60 * len(in_time) / duration,
        "p50_s": statistics.median(latency) if latency else None,
        "p95_s": percentile(latency, 0.95) if latency else None,
        "first_token_p95_s": percentile(first, 0.95) if first else None,
        "answer_chars_mean": statistics.fmean(t.chars for t in done) if done else 0.0,
        "errors": len(turns) - len(done),
        "error_sample": next((t.error for t in turns if t.error), ""),
    }


@contextlib.asynccontextmanager
async def tonebot_server(settings: Settings, tokens: int) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`tonebot serve` in a process of its own: web on a free loopback port, a fresh SQLite file, the
    benchmark's model and reply cap; no rate limit (one address is every customer here)."""
    port, model = free_port(), settings.model
    with tempfile.TemporaryDirectory() as tmp:
        env = {**model_env(model, model.cache_dir), "TONEBOT_MODEL__MAX_NEW_TOKENS": str(tokens),
               "TONEBOT_MEMORY__URL": f"sqlite:///{tmp}/bench.db", "TONEBOT_WEB__PORT": str(port),
               "TONEBOT_WEB__RATE_LIMIT": ""}  # fmt: skip
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, stdout=out, stderr=out)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                for _ in range(3000):  # a first start may requantize the model: minutes
                    if server.poll() is not None:
                        raise RuntimeError(f"tonebot serve exited: {log.read_text()[-2000:]}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
                else:
                    raise RuntimeError("tonebot serve did not become ready in 10 minutes")
            await head_fitted(log)
            yield base, server
        finally:
            server.terminate()
            await asyncio.to_thread(server.wait, 60)


async def head_fitted(log: Path) -> None:
    """A first start with no mood head for the model fits one in the background (README "Mood"):
    measured is the steady state, so the load waits until that fit has ended."""
    while "fitting one in the background" in (text := log.read_text()) and not any(
        done in text for done in ("mood head ready", "background mood-head fit failed")
    ):
        await asyncio.sleep(1)


def tonebot_send(client: httpx.AsyncClient, level: int) -> Send:
    async def send(k: int, text: str, _: list[dict[str, str]], turn: Turn) -> str:
        body = {"conversation_id": f"n{level}-c{k}", "user_id": f"customer{k}", "text": text}
        async with client.stream("POST", "/v1/chat/stream", json=body) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    if event == "token" and turn.first is None:
                        turn.first = time.perf_counter()
                elif line.startswith("data:") and event in ("done", "error"):
                    data = json.loads(line[5:])
                    if event == "error" or data.get("failed"):
                        raise ValueError(f"tonebot failed: {data}")
                    return str(data["reply"])
        raise ValueError("the stream ended without its done event")

    return send


def llamacpp_send(client: httpx.AsyncClient, system: str, tokens: int) -> Send:
    async def send(_: int, text: str, history: list[dict[str, str]], turn: Turn) -> str:
        messages = [{"role": "system", "content": system}, *history, {"role": "user", "content": text}]
        body = {"messages": messages, "max_tokens": tokens, "stream": True, "temperature": 0, "cache_prompt": True}
        answer = ""
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                    continue
                for choice in json.loads(line[5:]).get("choices") or ():
                    if piece := (choice.get("delta") or {}).get("content"):
                        turn.first = turn.first or time.perf_counter()
                        answer += piece
        return answer

    return send


METRICS = ("tonebot_classify_seconds", "tonebot_first_token_seconds", "tonebot_reply_seconds")


async def split(client: httpx.AsyncClient) -> dict[str, tuple[float, float]]:
    """tonebot's own histograms: {name: (sum, count)}."""
    text = (await client.get("/metrics")).text
    found = {}
    for name in METRICS:
        total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
        count = re.search(rf"^{name}_count (\S+)$", text, re.M)
        found[name] = (float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0)
    return found


def where_time_goes(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, Any]:
    mean = {}
    for name in METRICS:
        n = after[name][1] - before[name][1]
        mean[name.removeprefix("tonebot_").removesuffix("_seconds") + "_mean_s"] = (
            (after[name][0] - before[name][0]) / n if n else None
        )
    return mean


async def run(settings: Settings, levels: list[int], duration: float, think: float, tokens: int) -> dict[str, Any]:
    source = await asyncio.to_thread(
        loading.resolve, settings.model.id, settings.model.gguf_file, settings.model.fallback_to_embedded
    )
    if not source.gguf_file:
        raise ConfigError("--capacity compares with llama.cpp's server: the model must be a .gguf file")
    gguf = source.path / source.gguf_file
    results: dict[int, dict[str, Any]] = {n: {"customers": n} for n in levels}
    async with tonebot_server(settings, tokens) as (base, server):
        async with httpx.AsyncClient(base_url=base, timeout=600) as client:
            for n in levels:
                before = await split(client)
                ours = await customers(n, duration, think, tonebot_send(client, n))
                results[n]["tonebot"] = {**ours, **where_time_goes(before, await split(client))}
        peak_rss = peak_rss_of(server.pid)
    for n in levels:
        held = [await asyncio.to_thread(llamacpp_server, gguf, n, n * CONTEXT_PER_SLOT)]
        try:
            async with httpx.AsyncClient(base_url=held[0].listening_address, timeout=600) as client:
                send = llamacpp_send(client, settings.prompts.normal, tokens)
                results[n]["llamacpp"] = await customers(n, duration, think, send)
        finally:
            await asyncio.to_thread(held.clear)  # the server stops with its last reference (joins its loop)
    for row in results.values():
        ours, theirs = row["tonebot"], row["llamacpp"]
        row["throughput_ratio"] = (
            ours["answers_per_min"] / theirs["answers_per_min"] if theirs["answers_per_min"] else None
        )
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": source.name,
        "duration_s": duration,
        "think_s": think,
        "reply_tokens": tokens,
        "tonebot_peak_rss_bytes": peak_rss,
        "levels": list(results.values()),
        "p95_target_s": P95_TARGET_S,
        "served_within_target": {side: served(results, side) for side in ("tonebot", "llamacpp")},
    }


def served(results: dict[int, dict[str, Any]], side: str) -> int:
    """The most customers at which this side's p95 stayed within the target (0: not even the fewest)."""
    ok = [n for n, row in results.items() if row[side]["p95_s"] is not None and row[side]["p95_s"] <= P95_TARGET_S]
    return max(ok, default=0)


def peak_rss_of(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def table(r: dict[str, Any]) -> str:
    def side(s: dict[str, Any]) -> str:
        return (f"{s['answers_per_min']:6.1f} | {s['p50_s'] or 0:5.2f} | {s['p95_s'] or 0:5.2f} | "
                f"{s['first_token_p95_s'] or 0:5.2f} | {s['errors']:>3}")  # fmt: skip

    lines = [
        f"capacity: {r['model']} on {r['machine']['cpu']} x{r['machine']['cores']}; customers think "
        f"{r['think_s']:g} s, {r['duration_s']:g} s per level, replies <= {r['reply_tokens']} tokens",
        "        |            tonebot (mood, SQLite, HTTP)          |          llama.cpp server, same file",
        "      N | ans/min | p50 s | p95 s | 1st p95 | err | ans/min | p50 s | p95 s | 1st p95 | err | ratio",
    ]
    for row in r["levels"]:
        ratio = row["throughput_ratio"]
        lines.append(f"{row['customers']:>7} | {side(row['tonebot'])} | {side(row['llamacpp'])} | "
                     + (f"{ratio:.2f}" if ratio else "-"))  # fmt: skip
    lines.append("tonebot's time per answer (its /metrics, means): "
                 + "; ".join(f"N={row['customers']}: mood {fmt(row['tonebot']['classify_mean_s'])}, first token "
                             f"{fmt(row['tonebot']['first_token_mean_s'])}, reply {fmt(row['tonebot']['reply_mean_s'])}"
                             for row in r["levels"]))  # fmt: skip
    within = r["served_within_target"]
    lines.append(f"most customers with p95 <= {r['p95_target_s']:g} s: tonebot {within['tonebot']}, "
                 f"llama.cpp server {within['llamacpp']}")  # fmt: skip
    if r["tonebot_peak_rss_bytes"]:
        lines.append(f"tonebot serve peak RSS {r['tonebot_peak_rss_bytes'] / 1e9:.2f} GB")
    return "\n".join(lines)


def fmt(seconds: float | None) -> str:
    return f"{seconds:.2f} s" if seconds is not None else "-"

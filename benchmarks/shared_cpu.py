"""A reply on a shared CPU: the embedded model's classify + 64-token reply, alone and beside one
busy neighbour process, for OpenMP's spinning and passive waits (and one thread), each in a
fresh process (the wait policy is read once, when torch loads OpenMP).

    .venv/bin/python benchmarks/shared_cpu.py
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CONFIGS = [("2", "ACTIVE"), ("2", "PASSIVE"), ("1", "PASSIVE")]


def spin() -> None:
    while True:
        pass


async def measure(threads: str) -> float:
    from bot.config import load_settings
    from core.events import ChatMessage
    from core.local.engine import TransformersEngine

    environ = {
        "TONEBOT_MODEL__ID": "embedded",
        "TONEBOT_MODEL__MAX_NEW_TOKENS": "64",
        "TONEBOT_MODEL__THREADS": threads,
    }
    settings = load_settings(environ=environ)
    engine = await TransformersEngine.load(settings.model, settings.sentiment)
    text = "My parcel is late, what can I do?"
    chat = [ChatMessage("system", settings.prompts.normal), ChatMessage("user", text)]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        await engine.classify([text])
        async for _chunk in engine.reply(chat):
            pass
        times.append(time.perf_counter() - started)
    await engine.aclose()
    return statistics.median(times)


def run(threads: str, policy: str) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, __file__, "--one", threads], env=env, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = []
    for neighbour in (False, True):
        other = multiprocessing.Process(target=spin, daemon=True) if neighbour else None
        if other:
            other.start()
        try:
            rows += [(neighbour, t, p, run(t, p)) for t, p in CONFIGS]
        finally:
            if other:
                other.terminate()
    base = {n: s for n, t, p, s in rows if (t, p) == ("2", "ACTIVE")}
    print("neighbour | threads | OMP_WAIT_POLICY | classify + 64-token reply, median of 3 | vs spinning")
    for neighbour, threads, policy, seconds in rows:
        ratio = base[neighbour] / seconds
        print(f"{'busy' if neighbour else 'none':>9} | {threads:>7} | {policy:>15} | {seconds:8.2f} s | {ratio:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(asyncio.run(measure(sys.argv[2])))
    else:
        main()

"""`tonebot serve` as a real process: ready only once the model is in, refuses an open API on a
non-loopback address, on SIGTERM lets an in-flight reply finish before exiting cleanly, and on a
GGUF never loads torch or Transformers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auxil.servers import free_port


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TONEBOT_MODEL__ID": "embedded",
        "TONEBOT_MODEL__MAX_NEW_TOKENS": "48",
        "TONEBOT_MEMORY__URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "TONEBOT_LOG_FORMAT": "json",
    }


# `python -m bot`, and at exit one JSON line naming the heavy libraries the process had loaded
WITH_MODULES = """
import atexit, json, runpy, sys
loaded = lambda: {"message": "modules at exit", **{m: m in sys.modules for m in ("torch", "transformers")}}
atexit.register(lambda: print(json.dumps(loaded()), flush=True))
sys.argv = ["bot", *sys.argv[1:]]
runpy.run_module("bot", run_name="__main__")
"""


@pytest.fixture
def server(environ: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WITH_MODULES, "serve", "--port", str(port)], env=environ,
                                stdout=out, stderr=out)  # fmt: skip
        try:
            yield proc, f"http://127.0.0.1:{port}", log
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_refuses_a_non_loopback_bind_without_api_tokens(environ: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "serve", "--host", "0.0.0.0"],
                            env=environ, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "API_TOKENS" in result.stderr


def test_ready_after_loading_and_sigterm_finishes_the_reply_in_flight(
    server: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    proc, url, log = server
    seen: set[str] = set()
    with httpx.Client(base_url=url, timeout=5) as client:
        for _ in range(600):
            try:
                status = client.get("/readyz").json()["status"]
            except httpx.TransportError:
                status = "down"
            seen.add(status)
            if status == "ready":
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert "ready" in seen and "model loading" in seen, seen

        body = {"conversation_id": "bye", "text": "Please describe the sea in a few sentences."}
        events = []
        with client.stream("POST", "/v1/chat/stream", json=body, timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    events.append(line.removeprefix("event: "))
                    if events.count("token") == 1:
                        proc.send_signal(signal.SIGTERM)  # mid-reply
    assert events[0] == "mood" and events[-1] == "done" and events.count("token") > 1
    assert proc.wait(timeout=60) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON
    handled = [rec for rec in lines if rec.get("message") == "message handled"]
    assert (
        len(handled) == 1
        and handled[0]["platform"] == "web"
        and handled[0]["mood"] in ("negative", "neutral", "positive")
    )
    assert "text" not in handled[0] and "classify_ms" in handled[0]  # message text stays out of the logs
    assert any("shutting down" in rec.get("message", "") for rec in lines)
    # serving a GGUF (the embedded model, llama.cpp in process) never loads torch or Transformers
    assert [rec for rec in lines if rec.get("message") == "modules at exit"] == [
        {"message": "modules at exit", "torch": False, "transformers": False}
    ]

"""Scale-out as deployed: two `tonebot serve` processes (replicas) on one PostgreSQL database,
answering through one OpenAI-compatible inference server (llama.cpp on loopback). Telegram
redelivers the same update, and a load balancer hands one copy to each replica: one reply."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.events import ConversationKey
from core.memory import Memory
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.postgres import postgres_database
from tests.auxil.servers import eventually, free_port, serve_asgi
from tests.bot.adapters.test_telegram_e2e import ALICE, ME, TOKEN, private

SECRET = "hook-secret"


@pytest.fixture
async def replicas(llama_server: str, tmp_path: Path) -> AsyncIterator[tuple[FakeBotAPI, list[str], str]]:
    api = FakeBotAPI(me=ME)
    async with postgres_database() as db_url, serve_asgi(api.app()) as telegram_url:
        env = {
            **os.environ,
            "TONEBOT_MODEL__ID": "embedded",
            "TONEBOT_MODEL__ENGINE": "openai",
            "TONEBOT_MODEL__BASE_URL": llama_server,
            "TONEBOT_MODEL__MAX_NEW_TOKENS": "32",
            "TONEBOT_MEMORY__URL": db_url,
            "TONEBOT_TELEGRAM__ENABLED": "true",
            "TONEBOT_TELEGRAM__MODE": "webhook",
            "TONEBOT_TELEGRAM__BASE_URL": f"{telegram_url}/bot",
            "TONEBOT_TELEGRAM__WEBHOOK_URL": "https://bot.example/telegram/webhook",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TONEBOT_LOG_FORMAT": "json",
        }
        tonebot = [sys.executable, "-m", "bot"]
        upgrade = subprocess.run([*tonebot, "db", "upgrade"], env=env, capture_output=True, text=True)  # once, a job
        assert upgrade.returncode == 0, upgrade.stderr
        ports = [free_port(), free_port()]
        logs = [(tmp_path / f"replica-{n}.log").open("wb") for n in range(2)]
        procs = [
            subprocess.Popen([*tonebot, "serve", "--no-upgrade", "--port", str(port)], env=env, stdout=log, stderr=log)
            for port, log in zip(ports, logs, strict=True)
        ]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            async with httpx.AsyncClient() as client:

                async def all_ready() -> bool:
                    for proc in procs:
                        assert proc.poll() is None, (tmp_path / "replica-0.log").read_text() + (
                            tmp_path / "replica-1.log"
                        ).read_text()
                    try:
                        codes = [(await client.get(f"{url}/readyz")).status_code for url in urls]
                    except httpx.TransportError:
                        return False
                    return codes == [200, 200]

                await eventually(all_ready, timeout=120, what="both replicas ready")
            yield api, urls, db_url
        finally:
            for proc in procs:
                proc.terminate()  # SIGTERM: the graceful path
            codes = [proc.wait(timeout=60) for proc in procs]
            for log in logs:
                log.close()
            assert codes == [0, 0], [p.read_text()[-2000:] for p in sorted(tmp_path.glob("replica-*.log"))]


async def test_a_redelivered_update_reaching_both_replicas_is_answered_once(
    replicas: tuple[FakeBotAPI, list[str], str],
) -> None:
    api, urls, db_url = replicas
    update = private("Hello! Where is my parcel?", message_id=77)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(*(client.post(f"{url}/telegram/webhook", json=update, headers=headers)
                                           for url in urls))  # fmt: skip
    assert [r.status_code for r in responses] == [200, 200]

    memory = Memory.open(db_url)
    try:
        key = ConversationKey("telegram", str(ALICE))

        async def answered() -> bool:
            stored = await memory.messages(key)
            return bool(stored) and stored[-1].role == "assistant"

        await eventually(answered, timeout=90, what="the reply stored")
        await asyncio.sleep(2)  # room for a second, wrong reply to show up
        stored = await memory.messages(key)
    finally:
        await memory.aclose()
    assert [m.role for m in stored] == ["user", "assistant"]
    replies = [m for m in api.sent_to(ALICE) if m.get("reply_to") == 77]
    assert len(replies) == 1 and replies[0]["text"] == stored[-1].text

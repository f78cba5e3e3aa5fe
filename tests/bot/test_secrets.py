"""No configured credential ever reaches a log line or the CLI's output (#25): a full `tonebot serve`
at DEBUG on PostgreSQL (password in the URL), with Telegram polling (the token is in every Bot API
URL), Slack over HTTP, a signed helpdesk webhook whose URL is a credential, API tokens, an operator
token; customers write on every platform and one escalates; then `config show`, `config check` and
`db upgrade` as a user would run them. Every byte written is searched for every secret."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.auxil.fake_slack import FakeSlackAPI
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.postgres import postgres_database
from tests.auxil.receiver import Receiver
from tests.auxil.servers import eventually, free_port, serve_asgi
from tests.bot.adapters.test_slack_e2e import signed
from tests.bot.test_chaos import until_ok

DATA = Path(__file__).resolve().parents[1] / "data"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": "987654:TOKEN-never-in-logs-Aa1",
    "SLACK_BOT_TOKEN": "xoxb-never-in-logs-slack-Bb2",
    "SLACK_SIGNING_SECRET": "slack-signing-never-in-logs-Cc3",
    "ESCALATION_WEBHOOK_SECRET": "webhook-hmac-never-in-logs-Dd4",
    "OPERATOR_TOKEN": "operator-never-in-logs-Ee5-long-enough",
    "API_TOKENS": "api-token-never-in-logs-Ff6",
    "WEB_SESSION_SECRET": "session-never-in-logs-Gg7",
}


def run_cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bot", "--log-level", "DEBUG", *args], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


async def test_no_secret_in_the_logs_or_the_cli_output_of_a_full_run(tmp_path: Path) -> None:
    me = json.loads((DATA / "telegram" / "me.json").read_text())
    telegram, slack, hook = FakeBotAPI(me=me), FakeSlackAPI(), Receiver()
    async with (
        postgres_database() as db_url,
        serve_asgi(telegram.app()) as telegram_url,
        serve_asgi(slack.app()) as slack_url,
        serve_asgi(hook.app()) as hook_url,
    ):
        webhook = f"{hook_url}/hook?key=hook-url-never-in-logs-Hh8"
        password = db_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        secrets = [*SECRETS.values(), webhook, "hook-url-never-in-logs-Hh8", password]
        port, log = free_port(), tmp_path / "serve.log"
        env = {
            **os.environ, **SECRETS,
            "TONEBOT_MODEL__ID": "embedded", "TONEBOT_MODEL__MAX_NEW_TOKENS": "8",
            "TONEBOT_MEMORY__URL": db_url, "TONEBOT_WEB__RATE_LIMIT": "",
            "TONEBOT_TELEGRAM__ENABLED": "true", "TONEBOT_TELEGRAM__BASE_URL": f"{telegram_url}/bot",
            "TONEBOT_SLACK__ENABLED": "true", "TONEBOT_SLACK__MODE": "http",
            "TONEBOT_SLACK__API_BASE_URL": f"{slack_url}/api/",
            "TONEBOT_NOTIFY__WEBHOOK_URLS": webhook, "TONEBOT_SLACK__SUPPORT_CHANNEL": "C0SUPPORT1",
        }  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "bot", "--log-level", "DEBUG", "serve", "--port",
                                     str(port)], env=env, stdout=out, stderr=out)  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

                async def ready() -> bool:
                    assert proc.poll() is None, log.read_text()[-3000:]
                    try:
                        return (await client.get("/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await eventually(ready, timeout=180, what="ready")
                sender = {"id": 301, "is_bot": False, "first_name": "Customer"}
                telegram.push({"update_id": 1, "message": {"message_id": 5, "from": sender, "date": int(time.time()),
                               "chat": {"id": 301, "type": "private"}, "text": "Where is my parcel?"}})  # fmt: skip
                ts = "1763769600.000100"
                event = {"type": "app_mention", "user": "U0CUSTOMER", "text": "<@U0BOT00001> my invoice?",
                         "ts": ts, "channel": "C0CUSTOMER", "event_ts": ts}  # fmt: skip
                raw = json.dumps({"type": "event_callback", "event_id": "Ev0001", "team_id": "T0TEAM0001",
                                  "event": event}).encode()  # fmt: skip
                headers = {"content-type": "application/json", **signed(raw, SECRETS["SLACK_SIGNING_SECRET"])}
                await until_ok(lambda: client.post("/slack/events", content=raw, headers=headers),
                               lambda r: r.status_code == 200)  # fmt: skip
                auth = {"Authorization": f"Bearer {SECRETS['API_TOKENS']}"}
                body = {"conversation_id": "c1", "user_id": "u1", "text": "I want to talk to a human right now."}
                answer = await client.post("/v1/chat", json=body, headers=auth)
                assert answer.status_code == 200 and answer.json()["escalated"], answer.text
                operator = {"Authorization": f"Bearer {SECRETS['OPERATOR_TOKEN']}"}
                assert (await client.get("/v1/escalations", headers=operator)).status_code == 200
                await eventually(lambda: telegram.sent_to(301), what="the Telegram answer")
                await eventually(lambda: slack.in_thread("C0CUSTOMER", ts), what="the Slack answer")
                await eventually(lambda: hook.received, what="the webhook notice")
                await eventually(lambda: slack.called("chat.postMessage"), what="the Slack notice")
                await asyncio.sleep(3)  # a few more polling rounds of getUpdates (the token is in that URL)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        output = log.read_text()
        for args in (("config", "show"), ("config", "check"), ("db", "upgrade")):
            output += run_cli(env, *args)
    assert "message handled" in output and "is up to date" in output
    leaked = [secret for secret in secrets if secret in output]
    assert leaked == [], [line for line in output.splitlines() if any(s in line for s in leaked)][:5]

"""The real python-telegram-bot Application against a fake Bot API on loopback, on the real model."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.adapters.telegram import TelegramSettings
from bot.adapters.telegram.adapter import MENU, TelegramAdapter
from bot.adapters.web import create_app
from bot.config import Settings
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import eventually, serve_asgi
from tests.auxil.spy import SpyEngine

DATA = Path(__file__).resolve().parents[2] / "data" / "telegram"
ME = json.loads((DATA / "me.json").read_text())
ALICE = 111
GROUP = -1001234567890
TOKEN = "123456:TEST-TOKEN"
_update_ids = iter(range(600_000, 700_000))


def private(text: str, message_id: int, update_id: int | None = None) -> dict[str, Any]:
    update = json.loads((DATA / "private.json").read_text())
    update["update_id"] = update_id or next(_update_ids)
    update["message"].update(message_id=message_id, text=text)
    return update


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeBotAPI, str]]:
    api = FakeBotAPI(me=ME)
    async with serve_asgi(api.app()) as url:
        yield api, url


def telegram_settings(url: str, **changes: Any) -> TelegramSettings:
    return TelegramSettings(**{"enabled": True, "base_url": f"{url}/bot", "edit_interval": 0.2, **changes})


async def answered(api: FakeBotAPI, testbot: Bot, chat_id: int, message_id: int) -> str:
    """Wait until the stored answer to `message_id` is the text of the bot's message in the chat."""

    async def final() -> str | None:
        stored = await testbot.memory.messages(ConversationKey("telegram", str(chat_id)))
        replies = [m for m in api.sent_to(chat_id) if m.get("reply_to") == message_id]
        if stored and stored[-1].role == "assistant" and replies and replies[0]["text"] == stored[-1].text:
            return str(replies[0]["text"])
        return None

    return await eventually(final, what=f"the answer to message {message_id}")


async def test_polling_two_turns_group_silence_duplicates_and_429(
    fake: tuple[FakeBotAPI, str], testbot: Bot, spy: SpyEngine, settings: Settings
) -> None:
    api, url = fake
    secrets = dict(TELEGRAM_BOT_TOKEN=TOKEN)
    async with TelegramAdapter(testbot, telegram_settings(url), secrets):
        assert [c["command"] for c in api.called("setMyCommands")[0]["commands"]] == [c.command for c in MENU]

        api.push(private("Hi, my name is Ada and my invoice number is 7731.", message_id=1))
        first = await answered(api, testbot, ALICE, 1)
        assert first

        group_update = json.loads((DATA / "group_no_mention.json").read_text())
        api.push(group_update, private("What is my invoice number?", message_id=2))
        await answered(api, testbot, ALICE, 2)
        assert spy.chats[-1][1].content == "Hi, my name is Ada and my invoice number is 7731."
        assert spy.chats[-1][2].content == first
        assert api.sent_to(GROUP) == []

        twice = private("Are you still there?", message_id=3)
        api.push(twice, dict(twice))  # Telegram redelivers the same update_id
        await answered(api, testbot, ALICE, 3)
        assert len([m for m in api.sent_to(ALICE) if m.get("reply_to") == 3]) == 1

        api.throttle["sendMessage"] = 1
        api.push(private("One more question, please.", message_id=4))
        await answered(api, testbot, ALICE, 4)
        assert api.throttle["sendMessage"] == 0  # the 429 was answered and waited out
        assert api.called("sendChatAction")

    stored = await testbot.memory.messages(ConversationKey("telegram", str(ALICE)))
    assert [m.role for m in stored] == ["user", "assistant"] * 4


async def test_streaming_edits_one_message_and_non_text_gets_one_line(
    fake: tuple[FakeBotAPI, str], testbot: Bot
) -> None:
    api, url = fake
    async with TelegramAdapter(testbot, telegram_settings(url, edit_interval=0.05), dict(TELEGRAM_BOT_TOKEN=TOKEN)):
        api.push(private("Please explain in a few sentences how to reset a password.", message_id=5))
        await answered(api, testbot, ALICE, 5)
        [reply] = [m for m in api.sent_to(ALICE) if m.get("reply_to") == 5]
        assert reply.get("edits", 0) >= 1

        photo = json.loads((DATA / "photo.json").read_text())
        photo["update_id"] = next(_update_ids)
        api.push(photo)
        await eventually(lambda: [m for m in api.sent_to(ALICE) if m.get("reply_to") == 11], what="the not-text line")
        assert "only read text" in next(m for m in api.sent_to(ALICE) if m.get("reply_to") == 11)["text"]


async def test_commands_and_the_allowlist(fake: tuple[FakeBotAPI, str], testbot: Bot) -> None:
    api, url = fake
    only_bob = telegram_settings(url, allowed_user_ids=("222",))
    async with TelegramAdapter(testbot, only_bob, dict(TELEGRAM_BOT_TOKEN=TOKEN)):
        api.push(private("hello?", message_id=6), private("anyone?", message_id=7))
        await eventually(lambda: len(api.sent_to(ALICE)) >= 1, what="the refusal")
        command = json.loads((DATA / "group_command.json").read_text())
        command["update_id"] = next(_update_ids)
        api.push(command)
        await eventually(lambda: api.sent_to(GROUP), what="the /mood answer")
    assert len(api.sent_to(ALICE)) == 1 and "private" in api.sent_to(ALICE)[0]["text"]
    assert await testbot.memory.messages(ConversationKey("telegram", str(ALICE))) == []
    assert "not read any" in api.sent_to(GROUP)[0]["text"]


async def test_webhook_checks_the_secret(fake: tuple[FakeBotAPI, str], testbot: Bot) -> None:
    api, url = fake
    hook = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
    secrets = dict(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET="s3cret")
    async with TelegramAdapter(testbot, hook, secrets) as adapter:
        assert api.called("setWebhook")[0]["secret_token"] == "s3cret"
        transport = httpx.ASGITransport(app=create_app(testbot, adapter.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
            update = private("Is the webhook working?", message_id=8)
            wrong = await client.post(
                "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
            )
            missing = await client.post("/telegram/webhook", json=update)
            assert wrong.status_code == missing.status_code == 403
            right = await client.post(
                "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            )
            assert right.status_code == 200
            await answered(api, testbot, ALICE, 8)
    stored = await testbot.memory.messages(ConversationKey("telegram", str(ALICE)))
    assert [m.text for m in stored if m.role == "user"] == ["Is the webhook working?"]


async def test_a_message_that_is_only_the_mention_gets_the_error_tables_line(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot
) -> None:
    """Regression: it answered "Sorry, something went wrong" (and nothing at all on Slack)."""
    api, url = fake
    update = json.loads((DATA / "group_mention.json").read_text())
    update["update_id"] = next(_update_ids)
    update["message"]["text"] = "@tonebot_test_bot"
    async with TelegramAdapter(scriptbot, telegram_settings(url), dict(TELEGRAM_BOT_TOKEN=TOKEN)):
        api.push(update)
        [answer] = await eventually(lambda: api.sent_to(GROUP), what="the answer in the group")
    assert answer["text"] == "The message has no text: please write what you would like to say."
    assert answer["reply_to"] == update["message"]["message_id"]


async def test_a_message_that_arrives_while_the_model_is_full_is_stored_and_answered_when_it_has_room(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Polling confirms an update once it is stored; a full model does not turn it into a "busy,
    try again" line (a chat user would have to type it again): recovery answers it, once."""
    from bot.recovery import Recovery
    from core.settings import RecoverySettings

    api, url = fake
    scripted.busy = True
    key = ConversationKey("telegram", str(ALICE))
    async with TelegramAdapter(scriptbot, telegram_settings(url), dict(TELEGRAM_BOT_TOKEN=TOKEN)) as adapter:
        api.push(private("Hello?", message_id=30))
        await eventually(lambda: scriptbot.memory.messages(key), what="the stored message")
        await asyncio.sleep(0.5)  # its handler found the model full
        assert api.sent_to(ALICE) == []
        scripted.busy = False
        recovery = Recovery(scriptbot, RecoverySettings(), {"telegram": adapter.channel})
        assert await recovery.once() == 1
        assert await recovery.once() == 0  # owed once, answered once
    [answer] = api.sent_to(ALICE)
    assert answer["text"] == "You said: Hello?" and answer["reply_to"] == 30
    assert [m.role for m in await scriptbot.memory.messages(key)] == ["user", "assistant"]


def test_missing_token_is_a_clear_error(testbot: Bot) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        TelegramAdapter(testbot, TelegramSettings(enabled=True), dict())


async def test_a_message_over_the_limit_is_stored_and_answered_with_the_limit(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression (#14 C.12): 4,001-4,096 characters (Telegram allows 4,096) got "something went
    wrong" and were not stored."""
    from core.bot import TOO_LONG

    api, url = fake
    text = ("My order is late. " * 227).strip()  # 4,085 characters
    async with TelegramAdapter(scriptbot, telegram_settings(url), dict(TELEGRAM_BOT_TOKEN=TOKEN)):
        api.push(private(text, message_id=40))
        [answer] = await eventually(lambda: api.sent_to(ALICE), what="the limit line")
    limit = scriptbot.limits.max_text_chars
    assert answer["text"] == TOO_LONG.format(limit=limit) and answer["reply_to"] == 40
    stored = await scriptbot.memory.messages(ConversationKey("telegram", str(ALICE)))
    assert [(m.role, m.text) for m in stored] == [("user", text), ("assistant", answer["text"])]
    assert scripted.chats == []  # the model was not asked


async def test_a_webhook_update_while_the_model_is_busy_is_a_503_and_its_redelivery_answered(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression (#14 A.3/A.4): the webhook answered 200 for an update it could not answer."""
    api, url = fake
    hook = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
    secrets = dict(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET="s3cret")
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    update = private("Is anyone there?", message_id=50)
    async with TelegramAdapter(scriptbot, hook, secrets) as adapter:
        transport = httpx.ASGITransport(app=create_app(scriptbot, adapter.routes()))
        async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
            scripted.busy = True
            refused = await client.post("/telegram/webhook", json=update, headers=headers)
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert api.sent_to(ALICE) == []
            scripted.busy = False
            assert (await client.post("/telegram/webhook", json=update, headers=headers)).status_code == 200
            [answer] = await eventually(lambda: api.sent_to(ALICE), what="the answer")
    assert answer["text"] == "You said: Is anyone there?"


class FlakyStore:
    """`Ledger.store` that fails its first `failures` calls, as a database that is briefly down."""

    def __init__(self, bot: Bot, failures: int) -> None:
        self.store, self.failures, self.calls = bot.ledger.store, failures, 0

    async def __call__(self, msg: IncomingMessage) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("database briefly down")
        return await self.store(msg)


async def test_a_webhook_update_is_stored_before_its_200_and_one_that_cannot_be_stored_is_not_acked(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (#14 A.3): the webhook answered 200 once the update was queued in memory, before
    it was stored, so a crash in between lost it."""
    api, url = fake
    hook = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
    secrets = dict(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET="s3cret")
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
    update, key = private("Did my refund go through?", message_id=60), ConversationKey("telegram", str(ALICE))
    monkeypatch.setattr(scriptbot.ledger, "store", FlakyStore(scriptbot, failures=1))
    async with TelegramAdapter(scriptbot, hook, secrets) as adapter:
        # a 500 is answered (the error table) and the exception raised on to the server, which logs it
        transport = httpx.ASGITransport(app=create_app(scriptbot, adapter.routes()), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
            refused = await client.post("/telegram/webhook", json=update, headers=headers)
            assert refused.status_code >= 500  # Telegram redelivers what was not acked
            assert await scriptbot.memory.messages(key) == []
            assert (await client.post("/telegram/webhook", json=update, headers=headers)).status_code == 200
            assert [m.text for m in await scriptbot.memory.messages(key)][:1] == [update["message"]["text"]]
            [answer] = await eventually(lambda: api.sent_to(ALICE), what="the answer")
    assert answer["text"] == "You said: Did my refund go through?"


async def test_polling_confirms_an_update_only_once_it_is_stored(
    fake: tuple[FakeBotAPI, str], scriptbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (#14 A.3): polling moved its offset past an update whether or not it was handled."""
    api, url = fake
    flaky = FlakyStore(scriptbot, failures=1)
    monkeypatch.setattr(scriptbot.ledger, "store", flaky)
    update = private("Still waiting for my parcel.", message_id=61)
    async with TelegramAdapter(scriptbot, telegram_settings(url), dict(TELEGRAM_BOT_TOKEN=TOKEN)):
        api.push(update)
        [answer] = await eventually(lambda: api.sent_to(ALICE), what="the answer", timeout=20)
        offsets = [int(call.get("offset") or 0) for call in api.called("getUpdates")]
    assert answer["text"] == "You said: Still waiting for my parcel." and flaky.calls >= 2
    assert offsets.count(update["update_id"] + 1) >= 1 and max(offsets) == update["update_id"] + 1
    assert sum(1 for o in offsets if o <= update["update_id"]) >= 2  # served again after the failed store

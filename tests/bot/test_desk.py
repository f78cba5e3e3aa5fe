"""What agents see of a customer's turn: it cannot pass for tonebot's own status lines (#25, low),
and a long one is cut as customers' replies are (#27)."""

import json
from datetime import UTC, datetime
from pathlib import Path

import telegram

from bot.adapters.telegram.channel import TelegramChannel
from bot.adapters.telegram.desk import TelegramDesk
from bot.desk import for_agents
from core.memory import StoredMessage
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.servers import serve_asgi


def test_a_customer_cannot_fake_a_status_line_in_the_agents_thread() -> None:
    turn = StoredMessage(1, "user", "u1", "thanks\n✅ Resolved by slack:Dana — the bot answers again.", None,
                         datetime.now(UTC), author_name="Eve\n🙋 Taken over by slack:Mallory")  # fmt: skip
    lines = for_agents(turn).splitlines()
    assert lines[0].startswith("💬 Eve 🙋 Taken over") and lines[1].startswith("│ ✅ Resolved")
    assert all(line.startswith(("💬", "│")) for line in lines)


async def test_a_long_turn_for_the_agents_is_cut_where_customers_replies_are_cut() -> None:
    """Regression (#27): the Telegram desk cut relayed text every 4,096 characters, mid-word."""
    me = json.loads((Path(__file__).resolve().parents[1] / "data" / "telegram" / "me.json").read_text())
    api = FakeBotAPI(me=me)
    text = " ".join(["parcel"] * 1000)  # 6,999 characters of words
    async with serve_asgi(api.app()) as url, telegram.Bot("123:TOKEN", base_url=f"{url}/bot") as bot:
        ref = await TelegramDesk(bot, TelegramChannel(bot, 1.0)).say("-1001", "42", text)
    pieces = [m["text"] for m in api.sent_to(-1001)]
    assert len(ref.split(",")) == len(pieces) == 2 and all(len(p) <= 4096 for p in pieces)
    assert all(word == "parcel" for p in pieces for word in p.split(" "))  # no word cut in two


async def test_a_warning_for_agents_in_a_topic_goes_into_that_topic() -> None:
    """Regression (#27): an agent's message in a forum topic matched the ref "t<topic>", and a warning
    said in that thread (not sent to the customer: an edit, an attachment) failed to parse it and
    was lost."""
    me = json.loads((Path(__file__).resolve().parents[1] / "data" / "telegram" / "me.json").read_text())
    api = FakeBotAPI(me=me)
    async with serve_asgi(api.app()) as url, telegram.Bot("123:TOKEN", base_url=f"{url}/bot") as bot:
        desk = TelegramDesk(bot, TelegramChannel(bot, 1.0))
        await desk.say("-1001", "t7", "⚠️ Not sent to the customer: edits do not reach the customer.")
        await desk.say("-1001", "t7,42", "in the topic of a notice")
        await desk.say("-1001", "42", "a reply to a notice")
    sent = api.sent_to(-1001)
    assert [(m.get("message_thread_id"), m.get("reply_to")) for m in sent] == [(7, None), (7, None), (None, 42)]

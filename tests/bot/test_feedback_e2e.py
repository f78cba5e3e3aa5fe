"""Thumbs under the bot's answers, end to end on each platform (fake platform servers on loopback,
the real model): shown under the answer, stored once per person under double clicks and
redeliveries, changed by a change of mind, refused for an answer elsewhere, gone with /forget."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
from sqlalchemy import select

from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.web import create_app
from bot.delivery import FEEDBACK_THANKS
from core.bot import Bot
from core.events import ConversationKey
from core.feedback import Feedback
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.servers import eventually, serve_asgi
from tests.bot.adapters.test_slack_e2e import CHANNEL, THREAD, envelope, post_event, running_slack, signed
from tests.bot.adapters.test_telegram_e2e import ALICE, ME, TOKEN, answered, private, telegram_settings

BOB = 333


async def thumbs(bot: Bot) -> list[tuple[int, str, int]]:
    """Every stored thumb: (answer id, who, value)."""
    async with bot.memory.db.session() as session:
        rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    return [(r.message_id, r.author_id, r.value) for r in rows]


def press(data: str, message_id: int, chat_id: int, user_id: int, update_id: int) -> dict[str, Any]:
    person = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
    chat = {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
    message = {"message_id": message_id, "from": ME, "chat": chat, "date": 1800000000, "text": "an answer"}
    return {"update_id": update_id, "callback_query": {"id": f"cq{update_id}", "from": person, "message": message,
                                                       "chat_instance": "1", "data": data}}  # fmt: skip


async def test_telegram_thumbs_are_stored_once_per_person_and_go_with_forget(testbot: Bot) -> None:
    api = FakeBotAPI(me=ME)
    async with (
        serve_asgi(api.app()) as url,
        TelegramAdapter(testbot, telegram_settings(url), {"TELEGRAM_BOT_TOKEN": TOKEN}),
    ):
        api.push(private("How do I change my delivery address?", message_id=1))
        text = await answered(api, testbot, ALICE, 1)
        [shown] = [m for m in api.sent_to(ALICE) if m.get("reply_to") == 1]
        markup = await eventually(lambda: api.messages[shown["message_id"]].get("reply_markup"), what="the thumbs")
        [[up, down]] = markup["inline_keyboard"]
        answer = (await testbot.memory.messages(ConversationKey("telegram", str(ALICE))))[-1]
        assert answer.text == text and (up["text"], down["text"]) == ("👍", "👎")
        assert (up["callback_data"], down["callback_data"]) == (f"fb:{answer.id}:up", f"fb:{answer.id}:down")

        # a double click and a redelivered update: one thumb
        clicks = [press(up["callback_data"], shown["message_id"], ALICE, ALICE, n) for n in (800001, 800001, 800002)]
        api.push(*clicks)
        await eventually(lambda: len(api.called("answerCallbackQuery")) >= 3, what="the clicks answered")
        assert await thumbs(testbot) == [(answer.id, str(ALICE), 1)]
        assert {c.get("text") for c in api.called("answerCallbackQuery")} == {FEEDBACK_THANKS}

        api.push(press(down["callback_data"], shown["message_id"], ALICE, ALICE, 800003))  # a change of mind
        await eventually(lambda: len(api.called("answerCallbackQuery")) >= 4, what="the change answered")
        assert await thumbs(testbot) == [(answer.id, str(ALICE), -1)]

        # Alice's answer id pressed from Bob's chat (a forged button): refused, nothing stored
        api.push(press(up["callback_data"], 1, BOB, BOB, 800004))
        await eventually(lambda: len(api.called("answerCallbackQuery")) >= 5, what="the forgery answered")
        assert "this conversation" in api.called("answerCallbackQuery")[-1]["text"]
        assert await thumbs(testbot) == [(answer.id, str(ALICE), -1)]

    await testbot.forget("telegram", str(ALICE))
    assert await thumbs(testbot) == []


async def test_slack_feedback_buttons_under_the_answer_count_once(testbot: Bot) -> None:
    async with running_slack(testbot) as (api, _, client):
        assert (await post_event(client, envelope("channel_mention.json"))).status_code == 200
        answer = await eventually(lambda: _answered_with_buttons(api), what="the answer with its feedback buttons")
        [stored] = [m for m in await testbot.memory.messages(ConversationKey("slack", CHANNEL, THREAD)) if m.role
                    == "assistant"]  # fmt: skip
        [context] = [b for b in answer["blocks"] if b["type"] == "context_actions"]
        [buttons] = context["elements"]
        assert buttons["type"] == "feedback_buttons" and buttons["positive_button"]["value"] == f"fb:{stored.id}:up"
        assert answer["blocks"][0]["text"]["text"] == stored.text  # the answer's text stays as it was

        for _ in range(2):  # a double click
            body = _feedback_action(buttons, "positive_button", answer["ts"], "U0ALICE001")
            raw = urllib.parse.urlencode({"payload": json.dumps(body)}).encode()
            headers = {"content-type": "application/x-www-form-urlencoded", **signed(raw)}
            assert (await client.post("/slack/events", content=raw, headers=headers)).status_code == 200
        await eventually(lambda: len(api.called("chat.postEphemeral")) == 2, what="both clicks answered")
        assert await thumbs(testbot) == [(stored.id, "U0ALICE001", 1)]
        assert api.called("chat.postEphemeral")[0]["text"] == FEEDBACK_THANKS


def _answered_with_buttons(api: Any) -> dict[str, Any] | None:
    found = [m for m in api.in_thread(CHANNEL, THREAD) if any(b["type"] == "context_actions" for b in m["blocks"])]
    return found[0] if found else None


def _feedback_action(buttons: dict[str, Any], which: str, ts: str, user: str) -> dict[str, Any]:
    """Slack's block_actions payload for a click on one of the feedback buttons."""
    return {
        "type": "block_actions", "user": {"id": user, "username": "alice", "team_id": "T0TEAM0001"},
        "api_app_id": "A0APP00001", "token": "XXYYZZ", "team": {"id": "T0TEAM0001", "domain": "t"},
        "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False},
        "channel": {"id": CHANNEL, "name": "general"}, "trigger_id": "1.2.3",
        "message": {"type": "message", "user": "U0BOT00001", "ts": ts, "thread_ts": THREAD, "text": "an answer"},
        "actions": [{"type": "feedback_buttons", "action_id": buttons["action_id"], "block_id": "fb1",
                     "value": buttons[which]["value"], "action_ts": "1800000010.000100"}],
    }  # fmt: skip


async def test_web_chat_thumbs_are_per_session_and_once(testbot: Bot) -> None:
    app = create_app(testbot)
    transport, base = httpx.ASGITransport(app=app), "http://tonebot.test"
    async with (
        httpx.AsyncClient(transport=transport, base_url=base) as ada,
        httpx.AsyncClient(transport=transport, base_url=base) as eve,
    ):
        reply = (await ada.post("/v1/chat", json={"conversation_id": "c1", "text": "Do you ship abroad?"})).json()
        answer_id = reply["answer_id"]
        assert isinstance(answer_id, int)
        vote = {"conversation_id": "c1", "answer_id": answer_id, "thumb": "up"}
        first, again = (await ada.post("/v1/feedback", json=vote)).json(), (await ada.post("/v1/feedback", json=vote))
        assert first["changed"] is True and again.json()["changed"] is False
        assert [(a, v) for a, _, v in await thumbs(testbot)] == [(answer_id, 1)]

        stranger = await eve.post("/v1/feedback", json=vote)  # another session: its "c1" is another conversation
        assert stranger.status_code == 422
        bad = await ada.post("/v1/feedback", json={**vote, "thumb": "sideways"})
        assert bad.status_code == 422 and "up" in bad.json()["error"]
        assert len(await thumbs(testbot)) == 1

        assert (await ada.post("/v1/forget", json={})).json()["deleted"] >= 2
        assert await thumbs(testbot) == []

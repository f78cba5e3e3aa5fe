"""Private notes on an escalation (#30): a prefixed agent message is kept for the team and never
relayed, shown to the model or to the customer; the console posts them too; /forget removes them."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from bot.adapters.web import create_app
from bot.config import Secrets
from core.bot import Bot
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage
from core.handoff import HandoffClosed
from core.notes import note_text
from tests.auxil.scripted import NEGATIVE, ScriptedEngine

KEY = ConversationKey("web", "notes-1")
AGENT = Agent("a1", "Dana", "console")
REFUND = "I have refunded your order; it shows on your statement in 3-5 days."


async def escalated(bot: Bot, scripted: ScriptedEngine) -> int:
    scripted.moods["This is a disaster, get me a manager!"] = NEGATIVE
    message = IncomingMessage(KEY, user_id="alice", text="This is a disaster, get me a manager!")
    assert (await bot.handle(message)).escalated
    [record] = await bot.escalations.all()
    return record.id


async def test_a_note_is_kept_once_and_never_reaches_the_customer_or_the_model(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    escalation_id = await escalated(scriptbot, scripted)
    before = [m.text for m in await scriptbot.memory.messages(KEY)]
    for _ in range(2):  # a redelivered desk message: kept once
        await scriptbot.handoff.say(AgentMessage(escalation_id, AGENT, "// VIP: refund approved", event_id="e1"))
    await scriptbot.handoff.say(AgentMessage(escalation_id, AGENT, "NOTE: call back after 5pm", event_id="e2"))
    await scriptbot.handoff.say(AgentMessage(escalation_id, AGENT, "Your refund is on its way.", event_id="e3"))
    [case] = await scriptbot.handoff.cases()
    assert [(n.author, n.text) for n in case.notes] == [("Dana", "VIP: refund approved"),
                                                        ("Dana", "call back after 5pm")]  # fmt: skip
    after = [m.text for m in await scriptbot.memory.messages(KEY)]
    assert after[len(before) :][-1] == "Your refund is on its way." and not any("VIP" in t for t in after)

    await scriptbot.handoff.resolve(escalation_id, "console:Dana")
    await scriptbot.handle(IncomingMessage(KEY, user_id="alice", text="When will it arrive?"))
    assert not any("VIP" in m.content or "5pm" in m.content for m in scripted.chats[-1])  # not in the context

    await scriptbot.forget("web", "alice")
    [case] = await scriptbot.handoff.cases(open_only=False)
    assert case.notes == []


async def test_the_console_keeps_notes_and_shows_them_to_agents(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    escalation_id = await escalated(scriptbot, scripted)
    app = create_app(scriptbot, secrets=Secrets(operator_token="op"))
    headers = {"Authorization": "Bearer op"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        posted = await client.post(f"/v1/escalations/{escalation_id}/messages", headers=headers,
                                   json={"text": "customer sounds stressed", "by": "Sam", "note": True})  # fmt: skip
        assert posted.json() == {"escalation_id": escalation_id, "relayed": False, "noted": True, "duplicate": False}
        [shown] = (await client.get("/v1/escalations", headers=headers)).json()["escalations"]
    assert [(n["author"], n["text"]) for n in shown["notes"]] == [("Sam", "customer sounds stressed")]
    assert all("stressed" not in t["text"] for t in shown["transcript"])


async def test_canned_replies_are_sent_by_name_listed_and_an_unknown_one_refused(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    scriptbot.handoff.settings = dataclasses.replace(scriptbot.handoff.settings, canned=(("refund", REFUND),))
    escalation_id = await escalated(scriptbot, scripted)
    await scriptbot.handoff.say(AgentMessage(escalation_id, AGENT, "/canned refund", event_id="c1"))
    assert (await scriptbot.memory.messages(KEY))[-1].text == REFUND
    with pytest.raises(HandoffClosed, match="no canned reply 'gone': refund"):
        await scriptbot.handoff.say(AgentMessage(escalation_id, AGENT, "/canned gone", event_id="c2"))
    app = create_app(scriptbot, secrets=Secrets(operator_token="op"))
    headers = {"Authorization": "Bearer op"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        listed = (await client.get("/v1/canned", headers=headers)).json()
        refused = await client.post(f"/v1/escalations/{escalation_id}/messages", headers=headers,
                                    json={"text": "/canned gone", "by": "Sam"})  # fmt: skip
    assert listed == {"canned": [{"name": "refund", "text": REFUND}]}
    assert refused.status_code == 422 and "refund" in refused.json()["error"]
    assert (await scriptbot.memory.messages(KEY))[-1].text == REFUND  # nothing more reached the customer


def test_what_counts_as_a_note() -> None:
    prefixes = ("//", "note:")
    assert [note_text(t, prefixes) for t in ("// a", "  Note: b", "NOTE:c")] == ["a", "b", "c"]
    assert [note_text(t, prefixes) for t in ("see http://x", "a note: no", "/ one slash")] == [None] * 3

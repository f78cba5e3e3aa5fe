"""Assignment end to end, with a frozen clock (#30, item 3): an escalation goes to an on-shift agent,
who is @-mentioned in the Slack thread; nobody takes it: one reminder, then the next agent, then the
bot hands itself back with an apology — each said once with two replicas running the rounds at once.
Agents reassign with `/assign` in a desk thread (Slack, Telegram) and through the operator API."""

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.adapters.web import create_app
from bot.config import Secrets, Settings
from core.escalations import EscalationStore
from core.events import ConversationKey
from core.handoff import Handoff
from core.memory import Memory
from core.settings import AssignSettings
from tests.auxil.clock import Clock, freeze
from tests.auxil.servers import eventually
from tests.auxil.spy import SpyEngine
from tests.bot.test_handoff_e2e import ALICE, ASK, DATA, SLACK_SUPPORT, TELEGRAM_SUPPORT, World, private, world

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday morning
AGENTS = (
    (f"slack:{SLACK_SUPPORT}", "U0AGENT001"),
    (f"slack:{SLACK_SUPPORT}", "U0AGENT002"),
    (f"telegram:{TELEGRAM_SUPPORT}", "@sam"),
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch, START)


def assigning(settings: Settings, **assign: Any) -> Settings:
    policy = AssignSettings(agents=AGENTS, shifts=(("@sam", "mon-fri 14:00-22:00"),), **assign)
    return dataclasses.replace(settings, handoff=dataclasses.replace(settings.handoff, assign=policy, sla_minutes=15))


def notices(w: World) -> list[dict[str, Any]]:  # not the lines in their threads (the assignment comes at once)
    return [m for m in w.in_support() if not m.get("thread_ts")]


def thread(w: World, ts: str) -> list[str]:
    return [m["text"] for m in w.slack.in_thread(SLACK_SUPPORT, ts)]


def in_thread(ts: str, text: str, n: int) -> dict[str, Any]:
    """Dana's message in a notice's thread (Slack's Events API)."""
    body = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
    body["event"].update(thread_ts=ts, text=text, ts=f"1800000100.{n:06d}")
    body["event_id"] = f"Ev0ASSIGN{n}"
    return body


async def test_nobody_takes_it_a_reminder_the_next_agent_then_the_bot_hands_itself_back_once(
    spy: SpyEngine, memory: Memory, settings: Settings, clock: Clock
) -> None:
    configured = assigning(settings, hand_back=True)
    async with world(spy, memory, configured, slack_support=SLACK_SUPPORT) as w:
        other = Handoff(memory, EscalationStore(memory.db), w.bot.handoff.settings, w.bot.handoff.relayed_to)

        async def rounds() -> None:  # two replicas run the periodic round at the same moment
            await asyncio.gather(w.bot.handoff.tick(), other.tick())
            await w.bot.notifier.deliver_due()  # type: ignore[union-attr]

        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(lambda: notices(w), what="the notice in the support channel")
        [escalation] = await w.bot.escalations.all()
        assert escalation.assignee == "U0AGENT001"  # round robin: the first on-shift agent; @sam is off shift
        assert "👤 Assigned to U0AGENT001" in notice["text"]
        await eventually(lambda: any("<@U0AGENT001>" in t for t in thread(w, notice["ts"])), what="the mention")

        clock.now = START + timedelta(minutes=14)
        await rounds()
        clock.now = START + timedelta(minutes=15)
        for _ in range(3):
            await rounds()
        reminders = [t for t in thread(w, notice["ts"]) if t.startswith("⏰")]
        assert reminders == [
            "⏰ <@U0AGENT001>: this case has waited 15 min for a person. Take it over and answer here."
        ]

        clock.now = START + timedelta(minutes=30)
        for _ in range(3):
            await rounds()
        moved = [t for t in thread(w, notice["ts"]) if t.startswith("↪️")]
        assert moved == ["↪️ Reassigned to <@U0AGENT002>: U0AGENT001 did not take it within 30 min."]
        assert (await w.bot.escalations.get(escalation.id)).assignee == "U0AGENT002"  # type: ignore[union-attr]

        clock.now = START + timedelta(minutes=45)
        await rounds()  # the second agent's reminder
        clock.now = START + timedelta(minutes=60)
        for _ in range(3):
            await rounds()
        record = await w.bot.escalations.get(escalation.id)
        assert record is not None and record.resolved_by == "sla"  # reassign = 1: then the bot takes it back
        line = configured.handoff.assign.hand_back_line
        await eventually(lambda: w.to_alice().count(line) == 1, what="the apology to the customer")
        assert [t for t in thread(w, notice["ts"]) if t.startswith("🤖 Nobody took")] == [
            "🤖 Nobody took this case within 30 min: the bot answers the customer again."
        ]
        assert len([t for t in thread(w, notice["ts"]) if t.startswith("⏰")]) == 2  # one per assignee
        await asyncio.sleep(0.3)
        assert w.to_alice().count(line) == 1


async def test_agents_reassign_in_a_desk_thread_and_through_the_operator_api(
    spy: SpyEngine, memory: Memory, settings: Settings, clock: Clock
) -> None:
    clock.now = START + timedelta(hours=5)  # 15:00: @sam's shift
    configured = assigning(settings, method="least_open")
    async with world(spy, memory, configured, slack_support=SLACK_SUPPORT, telegram_support=str(TELEGRAM_SUPPORT)) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(lambda: notices(w), what="the notice in the support channel")
        [escalation] = await w.bot.escalations.all()
        assert escalation.assignee == "U0AGENT001"

        await w.slack_post(in_thread(notice["ts"], "/assign @sam", 1))  # Slack: to the agent in the Telegram group
        topic = await eventually(
            lambda: [m for m in w.telegram.sent_to(TELEGRAM_SUPPORT) if m["text"].startswith("↪️ Reassigned to @sam")],
            what="@sam mentioned in the Telegram group",
        )
        assert topic[0]["text"] == "↪️ Reassigned to @sam: assigned by Dana."
        await eventually(lambda: "↪️ Reassigned to @sam (telegram): assigned by Dana." in thread(w, notice["ts"]),
                         what="the Slack thread told")  # fmt: skip
        await w.slack_post(in_thread(notice["ts"], "/assign nobody", 2))
        await eventually(lambda: any("no agent 'nobody'" in t for t in thread(w, notice["ts"])), what="refused")
        assert (await w.bot.escalations.get(escalation.id)).assignee == "@sam"  # type: ignore[union-attr]
        assert not [t for t in w.to_alice() if "assign" in t]  # nothing reached the customer

        auth = {"Authorization": "Bearer op"}
        operator = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(w.bot, secrets=Secrets(
            operator_token="op"))), base_url="http://tonebot.test")  # fmt: skip
        async with operator:
            await operate(w, operator, auth, escalation.id, notice["ts"])


async def operate(w: World, client: httpx.AsyncClient, auth: dict[str, str], escalation: int, ts: str) -> None:
    """The operator API: who can be assigned, an unknown agent refused, a reassignment mentioned."""
    agents = (await client.get("/v1/agents", headers=auth)).json()["agents"]
    assert [(a["agent"], a["on_shift"]) for a in agents] == [("U0AGENT001", True), ("U0AGENT002", True),
                                                             ("@sam", True)]  # fmt: skip
    refused = await client.post(f"/v1/escalations/{escalation}/assign", json={"to": "zed"}, headers=auth)
    assert refused.status_code == 422
    moved = await client.post(f"/v1/escalations/{escalation}/assign", json={"to": "U0AGENT002", "by": "lee"},
                              headers=auth)  # fmt: skip
    assert moved.status_code == 200 and moved.json()["assignee"] == "U0AGENT002"
    await eventually(lambda: "↪️ Reassigned to <@U0AGENT002>: assigned by lee." in thread(w, ts),
                     what="the mention in the Slack thread")  # fmt: skip
    stored = await w.bot.memory.messages(ConversationKey("telegram", str(ALICE)))
    assert not [m for m in stored if "assign" in m.text.casefold()]  # no line of it in the customer's conversation

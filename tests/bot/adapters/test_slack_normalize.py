"""Slack Events API envelopes (recorded JSON in tests/data/slack) -> the common event, as pure functions."""

import json
from pathlib import Path

import pytest

from bot.adapters.slack.normalize import to_incoming
from core.events import ConversationKey, IncomingMessage

DATA = Path(__file__).resolve().parents[2] / "data" / "slack"
BOT = "U0BOT00001"


def load(name: str) -> IncomingMessage | None:
    return to_incoming(json.loads((DATA / name).read_text()), BOT)


def test_channel_mention_starts_a_thread_on_its_own_ts() -> None:
    msg = load("channel_mention.json")
    assert msg is not None
    assert msg.key == ConversationKey("slack", "C0SUPPORT1", "1763769600.000100")
    assert (msg.event_id, msg.user_id) == ("Ev0MENTION1", "U0ALICE001")
    assert msg.text == "my deploy keeps failing and I am losing my mind"
    assert msg.addressed_to_bot and not msg.is_direct


def test_mention_inside_a_thread_keeps_the_thread() -> None:
    msg = load("thread_mention.json")
    assert msg is not None and msg.key.thread_id == "1763769600.000100"
    assert msg.text == "thanks , what about staging?" and msg.user_id == "U0BOB00001"


def test_direct_message() -> None:
    msg = load("dm.json")
    assert msg is not None and msg.is_direct and msg.addressed_to_bot
    assert msg.key == ConversationKey("slack", "D0ALICEDM1", "")


def test_thread_follow_up_without_a_mention_is_kept_but_not_addressed() -> None:
    msg = load("thread_followup.json")
    assert msg is not None and not msg.addressed_to_bot
    assert msg.key == ConversationKey("slack", "C0SUPPORT1", "1763769600.000100")


@pytest.mark.parametrize(
    "name",
    ["bot_message.json", "message_changed.json", "own_message.json", "channel_chatter.json", "mention_as_message.json"],
)
def test_ignored_events(name: str) -> None:
    assert load(name) is None


def test_a_reply_also_sent_to_the_channel_is_a_thread_follow_up() -> None:
    """Regression (#25, low): a customer's "also send to channel" reply (thread_broadcast) was ignored."""
    body = json.loads((DATA / "thread_followup.json").read_text())
    body["event"]["subtype"] = "thread_broadcast"
    msg = to_incoming(body, BOT)
    assert msg is not None and msg.key == ConversationKey("slack", "C0SUPPORT1", "1763769600.000100")

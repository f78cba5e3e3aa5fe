"""Telegram updates (recorded JSON in tests/data/telegram) -> the common event, as pure functions."""

import json
from pathlib import Path

import pytest
from telegram import Update, User

from bot.adapters.telegram.normalize import NotText, to_incoming
from core.events import ConversationKey, IncomingMessage

DATA = Path(__file__).resolve().parents[2] / "data" / "telegram"
ME = User.de_json(json.loads((DATA / "me.json").read_text()), None)


def load(name: str) -> IncomingMessage | NotText | None:
    return to_incoming(Update.de_json(json.loads((DATA / name).read_text()), None), ME)


def test_private_message() -> None:
    msg = load("private.json")
    assert isinstance(msg, IncomingMessage)
    assert msg.key == ConversationKey("telegram", "111", "")
    assert (msg.event_id, msg.user_id, msg.user_name) == ("500001", "111", "Alice Liddell")
    assert msg.is_direct and msg.addressed_to_bot
    assert msg.text == "My order has not arrived yet and I am getting worried."
    assert msg.received_at.year == 2025


def test_group_message_with_a_mention_has_the_mention_removed() -> None:
    msg = load("group_mention.json")
    assert isinstance(msg, IncomingMessage)
    assert msg.text == "can you check the refund policy?"
    assert msg.key == ConversationKey("telegram", "-1001234567890", "") and not msg.is_direct
    assert msg.user_id == "222"


def test_group_message_without_a_mention_is_ignored() -> None:
    assert load("group_no_mention.json") is None


def test_reply_to_the_bot_counts_as_addressed() -> None:
    msg = load("reply_to_bot.json")
    assert isinstance(msg, IncomingMessage) and msg.text == "That did not help at all."


def test_forum_topic_is_part_of_the_conversation_key() -> None:
    msg = load("forum_topic.json")
    assert isinstance(msg, IncomingMessage)
    assert msg.key == ConversationKey("telegram", "-1009876543210", "7")
    assert msg.text == "Thanks , that fixed it!"


@pytest.mark.parametrize(
    "name", ["edited.json", "other_bot.json", "channel_post.json", "service_new_member.json", "group_no_mention.json"]
)
def test_ignored_updates(name: str) -> None:
    assert load(name) is None


@pytest.mark.parametrize("name", ["photo.json", "sticker.json"])
def test_non_text_gets_a_not_text_answer_target(name: str) -> None:
    found = load(name)
    assert isinstance(found, NotText) and found.key == ConversationKey("telegram", "111", "")


def test_a_command_addressed_to_this_bot_in_a_group() -> None:
    msg = load("group_command.json")
    assert isinstance(msg, IncomingMessage) and msg.text == "/mood"

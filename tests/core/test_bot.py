"""The pipeline end to end on the real embedded model and a real SQLite file."""

import dataclasses

from bot.config import Settings
from core.bot import APOLOGY, Bot
from core.events import ConversationKey, IncomingMessage, Mood
from core.memory import Memory
from tests.auxil.spy import SpyEngine

KEY = ConversationKey("test", "chat-1")


def message(text: str, event_id: str | None = None, user: str = "alice", key: ConversationKey = KEY) -> IncomingMessage:
    extra = {"event_id": event_id} if event_id else {}
    return IncomingMessage(key=key, user_id=user, user_name=user.title(), text=text, **extra)


async def test_negative_message_gets_the_soothing_prompt(testbot: Bot, spy: SpyEngine, settings: Settings) -> None:
    reply = await testbot.handle(message("This is the worst service ever. I am furious and want my money back!"))
    assert reply.mood is not None and reply.mood.label == "negative"
    # after the history, right before the message: the conversation's beginning (cached) stays as it was
    chat = spy.chats[-1]
    assert [(m.role, m.content) for m in (chat[0], chat[-2])] == [
        ("system", settings.prompts.normal),
        ("system", settings.prompts.soothing),
    ]
    assert reply.text and not reply.failed


async def test_a_conversation_prompt_only_grows_at_its_end_whatever_the_moods(testbot: Bot, spy: SpyEngine) -> None:
    upset = await testbot.handle(message("This is the worst service ever. I am furious and want my money back!"))
    calm = await testbot.handle(message("Thank you so much, everything works perfectly. You are great!"))
    assert upset.mood is not None and upset.mood.label == "negative"
    assert calm.mood is not None and calm.mood.label == "positive"
    first, second = ([(m.role, m.content) for m in chat] for chat in spy.chats)
    # the soothing prompt stays before the upset turn: the first prompt is the second's beginning
    assert second[: len(first)] == first
    assert [role for role, _ in second] == ["system", "system", "user", "assistant", "user"]


async def test_positive_message_gets_the_normal_prompt(testbot: Bot, spy: SpyEngine, settings: Settings) -> None:
    reply = await testbot.handle(message("Thank you so much, everything works perfectly. You are great!"))
    assert reply.mood is not None and reply.mood.label == "positive"
    assert spy.chats[-1][0].content == settings.prompts.normal
    assert [m.role for m in spy.chats[-1]] == ["system", "user"]


async def test_second_turn_sees_the_first(testbot: Bot, spy: SpyEngine) -> None:
    first = await testbot.handle(message("My name is Zoltan and my order number is 4471."))
    await testbot.handle(message("What is my order number?"))
    context = spy.chats[-1]
    assert [m.role for m in context] == ["system", "user", "assistant", "user"]
    assert context[1].content == "My name is Zoltan and my order number is 4471."
    assert context[2].content == first.text
    assert context[3].content == "What is my order number?"


async def test_stream_yields_mood_then_text_then_the_reply(testbot: Bot) -> None:
    items = [item async for item in testbot.stream(message("Hello there!"))]
    assert isinstance(items[0], Mood)
    assert all(isinstance(i, str) for i in items[1:-1]) and len(items) > 2
    assert items[-1].text == "".join(items[1:-1]).strip()


async def test_history_survives_a_restart(spy: SpyEngine, settings: Settings, db_url: str, memory: Memory) -> None:
    await Bot(spy, memory, settings.prompts, settings.memory).handle(message("Remember the word pineapple."))
    await memory.aclose()
    reopened = Memory.open(db_url)
    try:
        await Bot(spy, reopened, settings.prompts, settings.memory).handle(
            message("Which word did I ask you to remember?")
        )
    finally:
        await reopened.aclose()
    assert spy.chats[-1][1].content == "Remember the word pineapple."


async def test_a_redelivered_event_is_answered_from_storage_once(testbot: Bot, spy: SpyEngine, memory: Memory) -> None:
    first = await testbot.handle(message("Where is my parcel?", event_id="update-42"))
    again = await testbot.handle(message("Where is my parcel?", event_id="update-42"))
    assert not first.duplicate and again.duplicate
    assert again.text == first.text and again.mood == first.mood
    assert len(spy.chats) == 1
    assert [m.role for m in await memory.messages(KEY)] == ["user", "assistant"]


async def test_a_failure_mid_reply_leaves_an_apology_and_the_stored_turn(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    broken = Bot(SpyEngine(spy.real, fail_reply=True), memory, settings.prompts, settings.memory)
    reply = await broken.handle(message("Can you help me with my invoice?"))
    assert reply.failed and reply.text == APOLOGY
    stored = await memory.messages(KEY)
    assert [(m.role, m.text) for m in stored] == [("user", "Can you help me with my invoice?"), ("assistant", APOLOGY)]
    assert stored[0].mood is not None


async def test_reset_starts_a_fresh_context(testbot: Bot, spy: SpyEngine) -> None:
    await testbot.handle(message("My favourite colour is teal."))
    await testbot.reset(KEY)
    await testbot.handle(message("What is my favourite colour?"))
    assert [m.role for m in spy.chats[-1]] == ["system", "user"]


async def test_forget_deletes_the_users_messages_and_the_answers_to_them(testbot: Bot, memory: Memory) -> None:
    await testbot.handle(message("I am alice.", user="alice"))
    await testbot.handle(message("I am bob.", user="bob"))
    assert await testbot.forget("test", "alice") == 2
    stored = await memory.messages(KEY)
    assert [(m.role, m.author_id) for m in stored] == [("user", "bob"), ("assistant", "tonebot")]


async def test_moods_belong_to_each_user_in_a_group(testbot: Bot) -> None:
    group = ConversationKey("test", "group-7", "topic-1")
    await testbot.handle(message("I love this community, you are all amazing!", user="carol", key=group))
    await testbot.handle(message("This is broken again, I am so angry.", user="dave", key=group))
    carol = [m.label for m in await testbot.recent_moods("test", "carol")]
    dave = [m.label for m in await testbot.recent_moods("test", "dave")]
    assert carol == ["positive"] and dave == ["negative"]


async def test_an_empty_message_is_refused_before_anything_is_stored_and_an_oversized_one_stored_and_told(
    testbot: Bot, memory: Memory, settings: Settings
) -> None:
    import pytest

    from core.bot import TOO_LONG
    from core.errors import InvalidMessage

    small = Bot(testbot.engine, memory, settings.prompts, dataclasses.replace(settings.memory, max_text_chars=10))
    with pytest.raises(InvalidMessage):
        await small.handle(message("   "))
    assert await memory.messages(KEY) == []
    reply = await small.handle(message("x" * 11))
    assert reply.text == TOO_LONG.format(limit=10) and not reply.failed
    assert [(m.role, m.text) for m in await memory.messages(KEY)] == [("user", "x" * 11), ("assistant", reply.text)]

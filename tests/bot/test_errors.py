"""The one error table, as each audience sees it: HTTP status and JSON on the web, the same line
on every chat platform; "busy" is never stored and leaves the event retryable."""

import json

import httpx
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.adapters.web import create_app
from bot.errors import BUSY, answer
from core.bot import APOLOGY, Bot
from core.errors import Busy, EngineError, InvalidMessage, Unavailable
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.web import web_messages


@pytest.mark.parametrize(
    ("exc", "status", "text", "retry"),
    [
        (Busy(), 503, BUSY, "1"),
        (Unavailable("the model is not running"), 503, BUSY, "5"),
        (
            InvalidMessage("the message is longer than 10 characters"),
            422,
            "The message is longer than 10 characters.",
            None,
        ),
        (EngineError("generation failed"), 500, APOLOGY, None),
        (PoolTimeout("QueuePool limit of size 5 overflow 10 reached"), 503, BUSY, "1"),
        (OperationalError("INSERT", {}, Exception("database is locked")), 503, BUSY, "1"),
        (RuntimeError("anything else"), 500, APOLOGY, None),
    ],
)
def test_the_table(exc: Exception, status: int, text: str, retry: str | None) -> None:
    found = answer(exc)
    assert (found.status, found.text, found.headers.get("Retry-After")) == (status, text, retry)
    assert "anything else" not in found.error  # internals stay in the log


def client(bot: Bot) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bot)), base_url="http://tonebot.test")


async def test_busy_on_chat_is_a_503_with_retry_after_and_the_same_event_later_gets_a_real_answer(
    scriptbot: Bot, scripted: ScriptedEngine, memory: Memory
) -> None:
    body = {"conversation_id": "busy-1", "text": "Where is my parcel?", "event_id": "ev-busy-1"}
    async with client(scriptbot) as http:
        scripted.busy = True
        refused = await http.post("/v1/chat", json=body)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "busy" in refused.json()["error"]
        assert await web_messages(memory, "busy-1") == []  # not stored as a turn

        scripted.busy = False
        retried = await http.post("/v1/chat", json=body)
    assert retried.status_code == 200
    data = retried.json()
    assert data["reply"] == "You said: Where is my parcel?" and not data["duplicate"] and not data["failed"]
    stored = await web_messages(memory, "busy-1")
    assert [(m.role, m.text) for m in stored] == [("user", "Where is my parcel?"), ("assistant", data["reply"])]


async def test_busy_after_acceptance_is_released_for_the_retry(
    scriptbot: Bot, scripted: ScriptedEngine, memory: Memory
) -> None:
    async def full_after_admission(texts):  # type: ignore[no-untyped-def]
        raise Busy()

    scripted.classify = full_after_admission  # type: ignore[method-assign]
    body = {"conversation_id": "busy-2", "text": "hello", "event_id": "ev-busy-2"}
    async with client(scriptbot) as http:
        assert (await http.post("/v1/chat", json=body)).status_code == 503
        del scripted.classify
        again = await http.post("/v1/chat", json=body)
    assert again.status_code == 200 and again.json()["reply"].startswith("You said")


async def test_busy_on_the_stream_is_a_503_before_the_stream_starts(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    scripted.busy = True
    async with client(scriptbot) as http:
        response = await http.post("/v1/chat/stream", json={"conversation_id": "busy-3", "text": "hi"})
    assert response.status_code == 503 and response.headers["retry-after"]


async def test_a_failed_reply_is_a_500_with_the_apology_and_failed_in_the_json(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("the model fell over")

    scripted.answer = broken
    async with client(scriptbot) as http:
        response = await http.post("/v1/chat", json={"conversation_id": "fail-1", "text": "hi"})
        sentiment = await http.post("/v1/sentiment", json={"texts": ["ok"]})
    assert response.status_code == 500
    assert response.json()["failed"] is True and response.json()["reply"] == APOLOGY
    assert sentiment.status_code == 200


async def test_an_engine_error_on_sentiment_is_json(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    async def broken(texts):  # type: ignore[no-untyped-def]
        raise EngineError("sentiment request failed")

    scripted.classify = broken  # type: ignore[method-assign]
    async with client(scriptbot) as http:
        response = await http.post("/v1/sentiment", json={"texts": ["ok"]})
    assert response.status_code == 500 and json.loads(response.text) == {"error": "internal error"}


async def test_a_reply_that_cannot_be_recorded_is_503_and_its_retry_gets_a_real_answer(
    scriptbot: Bot, memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, calls = scriptbot.ledger.record_reply, []

    async def locked_once(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        await record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scriptbot.ledger, "record_reply", locked_once)
    body = {"conversation_id": "locked", "text": "Where is my order?", "event_id": "once"}
    async with client(scriptbot) as c:
        first = await c.post("/v1/chat", json=body)
        assert first.status_code == 503 and first.headers["Retry-After"] == "1"
        again = await c.post("/v1/chat", json=body)
    assert again.status_code == 200 and not again.json()["duplicate"]
    assert again.json()["reply"] == "You said: Where is my order?"

"""The HTTP API and the chat page, in process over ASGI, on the real embedded model."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.adapters.web import create_app
from core.bot import Bot
from core.events import ConversationKey


@pytest.fixture
async def client(testbot: Bot) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(testbot))
    async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
        yield client


async def test_chat_round_trip(client: httpx.AsyncClient) -> None:
    body = {"conversation_id": "c1", "user_id": "u1", "text": "I am really angry, my package never arrived!"}
    response = await client.post("/v1/chat", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["mood"]["label"] == "negative"
    assert set(data["mood"]["scores"]) == {"negative", "neutral", "positive"}
    assert data["reply"] and data["escalated"] is False and data["conversation_id"] == "c1"


async def test_chat_stream_sends_mood_tokens_and_done(client: httpx.AsyncClient) -> None:
    body = {"conversation_id": "c2", "text": "Thanks, that was very helpful!"}
    async with client.stream("POST", "/v1/chat/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join([chunk async for chunk in response.aiter_text()])
    events = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    names = [name for name, _ in events]
    assert names[0] == "mood" and names[-1] == "done" and names.count("token") >= 2
    tokens = "".join(data for name, data in events if name == "token")
    assert events[-1][1]["reply"] == tokens.strip()


async def test_redelivered_event_id_is_answered_once(client: httpx.AsyncClient) -> None:
    body = {"conversation_id": "c3", "text": "Hi!", "event_id": "retry-1"}
    first = (await client.post("/v1/chat", json=body)).json()
    second = (await client.post("/v1/chat", json=body)).json()
    assert second["duplicate"] is True and second["reply"] == first["reply"]


async def test_batch_sentiment(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sentiment", json={"texts": ["I love it!", "I hate it, it is awful!"]})
    assert response.status_code == 200
    labels = [r["label"] for r in response.json()["results"]]
    assert labels == ["positive", "negative"]


@pytest.mark.parametrize(
    ("path", "content", "status", "error"),
    [
        ("/v1/chat", b"{not json", 400, "not valid JSON"),
        ("/v1/chat", b"[1, 2]", 400, "JSON object"),
        ("/v1/chat", json.dumps({"conversation_id": "c"}).encode(), 422, "'text'"),
        ("/v1/chat", json.dumps({"conversation_id": "c", "text": "  "}).encode(), 422, "'text'"),
        ("/v1/chat", json.dumps({"text": "hello"}).encode(), 422, "'conversation_id'"),
        ("/v1/chat", json.dumps({"conversation_id": "c", "text": "x" * 5000}).encode(), 422, "longer than"),
        ("/v1/chat", b"x" * 70_000, 413, "larger than"),
        ("/v1/sentiment", json.dumps({"texts": []}).encode(), 422, "'texts'"),
        ("/v1/sentiment", json.dumps({"texts": ["ok", 3]}).encode(), 422, "'texts'"),
    ],
)
async def test_bad_requests_get_a_clear_4xx(
    client: httpx.AsyncClient, testbot: Bot, path: str, content: bytes, status: int, error: str
) -> None:
    response = await client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert error in response.json()["error"]
    assert await testbot.memory.messages(ConversationKey("web", "c")) == []


async def test_health_readiness_and_the_chat_page(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v1/chat/stream" in page.text and "textContent" in page.text


async def test_reset_and_forget(client: httpx.AsyncClient, testbot: Bot) -> None:
    await client.post("/v1/chat", json={"conversation_id": "c4", "user_id": "erin", "text": "Hello"})
    assert (await client.post("/v1/reset", json={"conversation_id": "c4"})).json()["reset"] is True
    assert (await client.post("/v1/forget", json={"user_id": "erin"})).json()["deleted"] == 2

"""The HTTP API and the chat page, in process over ASGI, on the real embedded model."""

import dataclasses
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.adapters.web import create_app
from bot.config import Secrets, Settings, WebSettings
from core.bot import Bot
from core.local.engine import TransformersEngine
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import free_port
from tests.auxil.web import web_messages


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
    assert await web_messages(testbot.memory, "c") == []


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


def guarded(bot: Bot, **web: object) -> httpx.AsyncClient:
    settings = dataclasses.replace(WebSettings(), **web)  # type: ignore[arg-type]
    app = create_app(bot, web=settings, secrets=Secrets(api_tokens=("tok-a", "tok-b")))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tonebot.test")


async def test_api_tokens_are_required_when_configured_and_nothing_is_stored_without(
    testbot: Bot, memory: Memory
) -> None:
    body = {"conversation_id": "auth-1", "text": "hello"}
    async with guarded(testbot) as client:
        missing = await client.post("/v1/chat", json=body)
        wrong = await client.post("/v1/chat", json=body, headers={"Authorization": "Bearer nope"})
        assert missing.status_code == wrong.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert not await web_messages(memory, "auth-1")
        ok = await client.post("/v1/sentiment", json={"texts": ["fine"]}, headers={"Authorization": "Bearer tok-b"})
        assert ok.status_code == 200
        assert (await client.get("/healthz")).status_code == 200  # probes stay open


async def test_rate_limit_answers_429_with_retry_after_per_token(testbot: Bot) -> None:
    async with guarded(testbot, rate_limit="2/minute") as client:
        auth = {"Authorization": "Bearer tok-a"}
        codes = [
            (await client.post("/v1/reset", json={"conversation_id": "r"}, headers=auth)).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        limited = await client.post("/v1/reset", json={"conversation_id": "r"}, headers=auth)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60


async def test_oversized_bodies_are_refused_before_reading_and_when_chunked(testbot: Bot) -> None:
    auth = {"Authorization": "Bearer tok-a", "Content-Type": "application/json"}
    async with guarded(testbot, max_body_bytes=1000) as client:
        declared = await client.post("/v1/chat", content=b"x" * 2000, headers=auth)
        assert declared.status_code == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b'{"pad": "' + b"y" * 400 + b'"}'

        chunked = await client.post("/v1/chat", content=chunks(), headers=auth)
        assert chunked.status_code == 413


async def test_while_loading_chat_answers_503_readyz_says_loading_and_nothing_is_stored(
    memory: Memory, settings: Settings
) -> None:
    from bot.app import Loading

    bot = Bot(Loading(), memory, settings.prompts, settings.memory)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bot)), base_url="http://t") as client:
        response = await client.post("/v1/chat", json={"conversation_id": "nr", "text": "hi"})
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "loading" in response.json()["error"]
        sentiment = await client.post("/v1/sentiment", json={"texts": ["hi"]})
        assert sentiment.status_code == 503 and sentiment.headers["content-type"] == "application/json"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "model loading"
    assert not await web_messages(memory, "nr")


async def test_cors_is_off_by_default_and_on_for_listed_origins(testbot: Bot) -> None:
    preflight = {"Origin": "https://support.example", "Access-Control-Request-Method": "POST"}
    async with guarded(testbot) as client:
        response = await client.options("/v1/chat", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async with guarded(testbot, cors_origins=("https://support.example",)) as client:
        response = await client.options("/v1/chat", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://support.example"


async def test_openapi_document_is_valid_and_covers_the_api(client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    document = (await client.get("/openapi.json")).json()
    validate(document)
    assert {"/v1/chat", "/v1/chat/stream", "/v1/sentiment", "/v1/reset", "/v1/forget"} <= set(document["paths"])
    assert document["paths"]["/v1/chat"]["post"]["responses"]["429"]


async def test_metrics_count_messages_moods_and_latency(client: httpx.AsyncClient) -> None:
    def value(text: str, line_start: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))

    before = (await client.get("/metrics")).text
    await client.post("/v1/chat", json={"conversation_id": "m1", "text": "This is awful, I am furious!"})
    after = (await client.get("/metrics")).text
    assert value(after, 'tonebot_messages_received_total{platform="web"}') == value(
        before, 'tonebot_messages_received_total{platform="web"}') + 1  # fmt: skip
    assert value(after, 'tonebot_moods_total{mood="negative",platform="web"}') >= 1
    assert value(after, "tonebot_classify_seconds_count") == value(before, "tonebot_classify_seconds_count") + 1
    assert "tonebot_model_queue_depth" in after


async def test_readyz_fails_when_the_database_is_unreachable(engine: TransformersEngine, settings: Settings) -> None:
    dead = Memory.open(f"postgresql://tonebot:x@127.0.0.1:{free_port()}/tonebot")  # nothing listens there
    bot = Bot(engine, dead, settings.prompts, settings.memory)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bot)), base_url="http://t") as c:
            response = await c.get("/readyz")
        assert response.status_code == 503 and response.json()["status"] == "database unreachable"
    finally:
        await dead.aclose()


async def test_a_bare_token_and_another_scheme_are_refused_and_wrong_tokens_are_rate_limited(
    testbot: Bot,
) -> None:
    """Regression (#14 C.12): a token without `Bearer` was accepted; 120 wrong tokens got 120 x 401."""
    body = {"conversation_id": "auth-2", "text": "hello"}
    async with guarded(testbot, rate_limit="") as client:
        bare = await client.post("/v1/sentiment", json={"texts": ["hi"]}, headers={"Authorization": "tok-a"})
        basic = await client.post("/v1/sentiment", json={"texts": ["hi"]}, headers={"Authorization": "Basic tok-a"})
        lower = await client.post("/v1/sentiment", json={"texts": ["hi"]}, headers={"Authorization": "bearer tok-a"})
        assert (bare.status_code, basic.status_code, lower.status_code) == (401, 401, 200)
        statuses = [
            (await client.post("/v1/chat", json=body, headers={"Authorization": f"Bearer guess-{n}"})).status_code
            for n in range(12)
        ]
        right = await client.post("/v1/chat", json=body, headers={"Authorization": "Bearer tok-a"})
    assert statuses[:8] == [401] * 8 and statuses[-1] == 429  # 10 a minute, counting the two above
    # a valid token is never refused for its address (#25.9: behind a proxy every client shares one)
    assert right.status_code == 200


async def test_a_cross_site_form_post_is_refused(client: httpx.AsyncClient, testbot: Bot) -> None:
    """Regression (#14 C.10): with no tokens on loopback, `Content-Type: text/plain` was accepted,
    so any web page the user visited could POST to the bot cross-site."""
    body = '{"conversation_id": "csrf", "text": "hello"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = await client.post("/v1/chat", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415 and "JSON" in response.json()["error"]
    assert await web_messages(testbot.memory, "csrf") == []


async def test_pages_carry_a_content_security_policy_and_no_framing(client: httpx.AsyncClient) -> None:
    """Regression (#14 C.12): no CSP / X-Frame-Options / nosniff on the pages."""
    for path in ("/", "/operator"):
        page = await client.get(path)
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'sha256-" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    api = await client.post("/v1/chat", json={"conversation_id": "h", "text": ""})
    assert api.headers["x-content-type-options"] == "nosniff"


async def test_a_stream_closed_after_the_first_token_is_answered_by_the_retry_without_a_traceback(
    scriptbot: Bot, scripted: ScriptedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (#14 A.1, C.12), the issue's repro on a real socket: close `/v1/chat/stream` after
    the first token, then `POST /v1/chat` the same body: it got `{"reply": "", "duplicate": true}`
    forever, and every client disconnect logged a traceback."""
    import logging

    from tests.auxil.servers import serve_asgi

    scripted.answer = lambda text: " ".join(["word"] * 300)
    body = {"conversation_id": "left-socket", "text": "hi", "event_id": "left-socket-1"}
    caplog.set_level(logging.INFO)
    async with serve_asgi(create_app(scriptbot)) as url, httpx.AsyncClient(base_url=url) as http:
        async with http.stream("POST", "/v1/chat/stream", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: token"):
                    break  # and the client goes away
        retried = await http.post("/v1/chat", json=body)
    assert retried.status_code == 200
    data = retried.json()
    assert not data["duplicate"] and data["reply"].startswith("word word")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_body_that_trickles_in_is_dropped_with_a_408(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (#14 C.12): no body read timeout (slow clients held requests open)."""
    import asyncio

    from bot import bodies

    monkeypatch.setattr(bodies, "BODY_SECONDS", 0.3)

    async def slowly() -> AsyncIterator[bytes]:
        yield b'{"conversation_id": "slow", '
        await asyncio.sleep(2)
        yield b'"text": "hi"}'

    response = await client.post("/v1/chat", content=slowly(), headers={"Content-Type": "application/json"})
    assert response.status_code == 408 and "did not arrive" in response.json()["error"]


async def test_web_chat_callers_are_bound_to_their_own_session(scriptbot: Bot, memory: Memory) -> None:
    """Regression (#14 C.10): `/v1/forget {"user_id": "u-victim"}` and `/v1/reset` acted on anyone,
    and every caller that omitted `user_id` was the same "web-user"."""
    transport = httpx.ASGITransport(app=create_app(scriptbot))
    victim = httpx.AsyncClient(transport=transport, base_url="http://tonebot.test")
    other = httpx.AsyncClient(transport=transport, base_url="http://tonebot.test")
    body = {"conversation_id": "shared", "user_id": "u-victim", "text": "my secret plan", "event_id": "e-1"}
    async with victim, other:
        first = await victim.post("/v1/chat", json=body)
        assert first.json()["conversation_id"] == "shared"
        assert "samesite=strict" in first.headers["set-cookie"].lower()
        stolen = await other.post("/v1/chat", json={**body, "text": "what did I say before?"})
        assert not stolen.json()["duplicate"] and "secret" not in stolen.json()["reply"]
        assert "secret" not in str(scriptbot.engine.chats[-1])  # type: ignore[attr-defined]
        assert (await other.post("/v1/forget", json={"user_id": "u-victim"})).json()["deleted"] == 2  # its own
        await other.post("/v1/reset", json={"conversation_id": "shared"})
        again = await victim.post("/v1/chat", json={**body, "text": "and now?", "event_id": "e-2"})
    assert [m.text for m in await web_messages(memory, "shared")] == [
        "my secret plan",
        "You said: my secret plan",
        "and now?",
        again.json()["reply"],
    ]
    assert "my secret plan" in str(scriptbot.engine.chats[-1])  # type: ignore[attr-defined]  # context intact


async def test_api_token_holders_each_have_their_own_namespace(scriptbot: Bot, memory: Memory) -> None:
    app = create_app(scriptbot, secrets=Secrets(api_tokens=("tok-a", "tok-b")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tonebot.test") as http:
        a, b = {"Authorization": "Bearer tok-a"}, {"Authorization": "Bearer tok-b"}
        body = {"conversation_id": "c-1", "user_id": "erin", "text": "hello from a"}
        assert (await http.post("/v1/chat", json=body, headers=a)).status_code == 200
        assert (await http.post("/v1/forget", json={"user_id": "erin"}, headers=b)).json()["deleted"] == 0
        assert (await http.post("/v1/forget", json={}, headers=b)).status_code == 422  # a token holder names the user
        assert len(await web_messages(memory, "c-1")) == 2
        assert (await http.post("/v1/forget", json={"user_id": "erin"}, headers=a)).json()["deleted"] == 2

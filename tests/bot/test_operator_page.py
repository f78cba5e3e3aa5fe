"""The operator page in a real headless Chromium (Debian's), driven by Playwright."""

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright, expect

from bot.adapters.web import create_app
from bot.config import Secrets
from core.bot import Bot
from core.memory import Accepted, Memory
from tests.auxil.servers import serve_asgi

TOKEN = "page-s3cret"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
HOSTILE = "<script>window.pwned = true</script><b>bold?</b>"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        await browser.close()


async def open_escalation(testbot: Bot, memory: Memory) -> int:
    from core.events import ConversationKey, IncomingMessage, Mood

    msg = IncomingMessage(ConversationKey("web", "hostile-1"), user_id="mallory", text=HOSTILE)
    accepted = await memory.accept(msg)
    assert isinstance(accepted, Accepted)
    await memory.set_mood(accepted.message_id, Mood.from_scores({"negative": 0.97, "neutral": 0.01, "positive": 0.02}))
    record = await testbot.escalations.open(accepted.conversation_id, "high_negative", [], ())
    assert record is not None
    return record.id


async def test_operator_page_lists_escapes_and_resolves(browser: Browser, testbot: Bot, memory: Memory) -> None:
    escalation_id = await open_escalation(testbot, memory)
    async with serve_asgi(create_app(testbot, secrets=Secrets(operator_token=TOKEN))) as url:
        page = await browser.new_page()
        await page.goto(f"{url}/operator")

        await page.fill("#token", "wrong")
        await page.click("button[type=submit]")
        await expect(page.locator("#status")).to_contain_text("Refused")
        assert await page.locator(".card").count() == 0

        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        card = page.locator(f".card[data-id='{escalation_id}']")
        await expect(card).to_contain_text("high_negative")
        await expect(card.locator("td.text")).to_have_text(HOSTILE)  # shown as text, not run as markup
        assert await page.evaluate("window.pwned") is None
        assert await card.locator("b").count() == 0
        await expect(card.locator("svg.mood-chart polyline")).to_have_count(1)

        await card.locator("button.resolve").click()
        await expect(page.locator("#status")).to_contain_text(f"#{escalation_id} resolved")
        await expect(page.locator(".card")).to_have_count(0)
        await page.close()
    [record] = await testbot.escalations.all(open_only=False)
    assert record.resolved_at is not None and record.resolved_by == "operator page"


async def test_the_chat_page_works_under_its_content_security_policy(browser: Browser, testbot: Bot) -> None:
    """The CSP admits the page's own inline script and style by hash, and nothing else."""
    async with serve_asgi(create_app(testbot)) as url:
        page = await browser.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        await page.goto(f"{url}/")
        await page.fill("#text", "Hello there!")
        await page.press("#text", "Enter")
        await expect(page.locator(".turn.user .mood")).to_have_count(1, timeout=60_000)
        await expect(page.locator(".turn.bot")).not_to_have_text("…", timeout=60_000)
        await page.close()
    assert violations == []

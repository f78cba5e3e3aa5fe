"""The console's Insights page and the chat page's thumbs in a real headless Chromium (Debian's),
driven by Playwright, under their Content-Security-Policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from playwright.async_api import Browser, expect
from sqlalchemy import select

from bot.adapters.web import create_app
from bot.config import Secrets, Settings
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage
from core.feedback import Feedback
from core.ledger import Accepted
from tests.auxil.servers import serve_asgi
from tests.bot.test_operator_page import TOKEN, browser  # noqa: F401  (the fixture)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "outcome_data.py"
HOSTILE = "<img src=x onerror=window.pwned=1> gift cards?"


def generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("outcome_data", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_insights_page_draws_the_week(browser: Browser, scriptbot: Bot, settings: Settings) -> None:  # noqa: F811
    counts = await generator().generate(settings.memory.url, 300, 6, 3)
    msg = IncomingMessage(ConversationKey("web", "hostile"), user_id="mallory", text=HOSTILE)
    accepted = await scriptbot.ledger.accept(msg)
    assert isinstance(accepted, Accepted)
    await scriptbot.ledger.record_reply(accepted, "Not in the knowledge base.", False, (), "none")
    async with serve_asgi(create_app(scriptbot, secrets=Secrets(operator_token=TOKEN))) as url:
        page = await browser.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        await page.goto(f"{url}/insights")
        await page.fill("#token", "wrong")
        await page.click("button[type=submit]")
        await expect(page.locator("#status")).to_contain_text("Refused")

        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("#status")).to_contain_text(f"{counts['conversations'] + 1} conversations")
        await expect(page.locator(".tile").first).to_contain_text(str(counts["conversations"] + 1))
        await expect(page.locator(".uplot")).to_have_count(3)  # by day, scores, moods
        await expect(page.locator("#by-day .u-legend")).to_contain_text("resolved by the bot")
        await expect(page.locator("#gaps")).to_contain_text(HOSTILE.lower())  # as text, never markup
        assert await page.evaluate("window.pwned") is None
        assert await page.locator("#gaps img").count() == 0
        await expect(page.locator("#lowest tr")).not_to_have_count(1)  # the least satisfied, explained

        await page.select_option("#since", "24h")  # another period: computed on demand
        await page.click("button[type=submit]")
        await expect(page.locator("#status")).not_to_contain_text(f"{counts['conversations'] + 1} conversations")
        await page.close()
    assert violations == []


async def test_thumbs_under_an_answer_in_the_chat_page(browser: Browser, testbot: Bot) -> None:  # noqa: F811
    async with serve_asgi(create_app(testbot)) as url:
        page = await browser.new_page()
        await page.goto(f"{url}/")
        await page.fill("#text", "Do you ship to Canada?")
        await page.press("#text", "Enter")
        up = page.locator(".turn.bot .thumbs button[data-thumb=up]")
        await expect(up).to_have_count(1, timeout=60_000)
        await up.click()
        await expect(up).to_have_attribute("aria-pressed", "true")
        await up.click()  # a double click: still one thumb
        await page.close()
    async with testbot.memory.db.session() as session:
        assert [(f.value, f.author_id.startswith("s.")) for f in (await session.scalars(select(Feedback))).all()] == [
            (1, True)
        ]

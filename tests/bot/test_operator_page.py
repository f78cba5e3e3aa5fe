"""The operator page in a real headless Chromium (Debian's), driven by Playwright."""

import shutil
from collections.abc import AsyncIterator
from hashlib import sha256
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from bot.adapters.web import create_app
from bot.config import Secrets, Settings
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage
from core.knowledge import Knowledge
from core.knowledge.retrieval import Embed
from core.knowledge.store import KnowledgeStore
from core.ledger import Accepted
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import serve_asgi

KB = Path(__file__).resolve().parents[1] / "data" / "kb"

TOKEN = "page-s3cret"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
HOSTILE = "<script>window.pwned = true</script><b>bold?</b>"
VISITOR = "s.6b8eb7383e0c4f1a/9dca598e-4659-4c1e-9b0e-0d3c2f1a7b65"  # a web visitor's id: a session hash


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        await browser.close()


async def open_escalation(testbot: Bot, memory: Memory) -> int:
    from core.events import ConversationKey, IncomingMessage, Mood

    msg = IncomingMessage(ConversationKey("web", "hostile-1"), user_id=VISITOR, text=HOSTILE)
    accepted = await testbot.ledger.accept(msg)
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
        # people, not hashes: the case is titled with who (a long visitor id becomes a short handle) and
        # what they want; the chart has its bands, its times and the escalation marked
        handle = f"Visitor {sha256(VISITOR.encode()).hexdigest()[:4]}"
        await expect(card.locator(".title")).to_have_text(f"{handle} — {HOSTILE}")
        await expect(card.locator("td.who").first).to_have_text(handle)
        await expect(card.locator("svg.mood-chart text")).to_contain_text(["positive", "neutral", "negative"])
        await expect(card.locator("svg.mood-chart line")).to_have_count(1)
        await expect(card.locator("svg.mood-chart circle")).to_have_count(1)

        await card.locator("button.resolve").click()
        await expect(page.locator("#status")).to_contain_text(f"#{escalation_id} resolved")
        await expect(page.locator("#open .card")).to_have_count(0)
        await expect(page.locator("#resolved .card")).to_have_count(1)  # recently resolved, live
        await page.close()
    [record] = await testbot.escalations.all(open_only=False)
    assert record.resolved_at is not None and record.resolved_by == "operator"


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


async def test_an_agent_reply_typed_in_the_console_appears_in_the_customers_chat_page_live(
    browser: Browser, scriptbot: Bot
) -> None:
    """#15: a web-chat customer asks for a person; an agent takes over in the console (a second
    browser context) and writes; the customer's page shows it live, and the customer's answer shows
    up in the console with its mood while the bot stays silent; hand back gives the bot the chat."""
    async with serve_asgi(create_app(scriptbot, secrets=Secrets(operator_token=TOKEN))) as url:
        customer_context, agent_context = await browser.new_context(), await browser.new_context()
        customer, agent = await customer_context.new_page(), await agent_context.new_page()
        await customer.goto(f"{url}/")
        await customer.fill("#text", "Can I talk to a real person please?")
        await customer.press("#text", "Enter")
        await expect(customer.locator(".turn.bot").last).to_contain_text("asked a person", timeout=30_000)

        await agent.goto(f"{url}/operator")
        await agent.fill("#token", TOKEN)
        await agent.fill("#agent", "Dana")
        await agent.click("#login button[type=submit]")
        card = agent.locator("#open .card")
        await expect(card).to_have_count(1)
        await expect(card).to_contain_text("asked_for_human")
        await card.locator("button.take").click()
        await expect(card.locator(".state")).to_contain_text("with console:Dana")
        await expect(customer.locator(".turn.bot").last).to_contain_text("Dana from our support team has joined")

        await card.locator("textarea").fill("Hi, I am Dana. I will check your order <b>now</b>.")
        await card.locator("form.reply button[type=submit]").click()
        shown = customer.locator(".turn.agent")
        await expect(shown).to_have_text("Dana: Hi, I am Dana. I will check your order <b>now</b>.")  # as text
        assert await customer.locator(".turn.agent b").count() == 0

        await card.locator("textarea").fill("order 4471 was lost by the carrier <i>again</i>")  # for the team only
        await card.locator("form.reply button.note").click()
        await expect(card.locator(".notes li")).to_contain_text("Dana: order 4471 was lost by the carrier <i>again</i>")
        await customer.wait_for_timeout(500)
        await expect(customer.locator(".turn")).not_to_contain_text(["order 4471"])  # never the customer's

        chats = len(scriptbot.engine.chats)  # type: ignore[attr-defined]
        await customer.fill("#text", "Thank you so much!")
        await customer.press("#text", "Enter")
        await expect(customer.locator(".turn.bot").last).to_contain_text("a person from our team will reply here")
        await expect(card.locator("tr.user td.text").last).to_have_text("Thank you so much!")
        await expect(card.locator("tr.user td.mood").last).to_contain_text("neutral")
        assert len(scriptbot.engine.chats) == chats  # type: ignore[attr-defined]  # the bot stayed silent

        await card.locator("button.resolve").click()
        await expect(agent.locator("#resolved .card")).to_have_count(1)
        await customer.fill("#text", "What are your opening hours?")
        await customer.press("#text", "Enter")
        answer = customer.locator(".turn.bot").last  # the bot answers again, with thumbs under its answer
        await expect(answer).to_contain_text("You said: What are your opening hours?")
        await expect(answer.locator(".thumbs button")).to_have_count(2)
        await customer_context.close()
        await agent_context.close()
    history = scriptbot.engine.chats[-1]  # type: ignore[attr-defined]
    assert ("assistant", "Hi, I am Dana. I will check your order <b>now</b>.") in [(m.role, m.content) for m in history]


async def test_the_knowledge_page_searches_and_approves_an_edited_proposal(
    browser: Browser, scripted: ScriptedEngine, memory: Memory, settings: Settings, embed: Embed
) -> None:
    """#26: the console's Knowledge page: search as the bot would answer, a proposal from a hand-off
    edited and approved, after which the bot answers it word for word."""
    knowledge = Knowledge(KnowledgeStore(memory.db), embed, settings.knowledge)
    await knowledge.add([KB / "articles"])
    bot = Bot(scripted, memory, settings.prompts, settings.memory, settings.escalation, knowledge=knowledge)
    await knowledge.propose("Do you sell fishing rods?", "No.", "handoff#handoff-1")
    async with serve_asgi(create_app(bot, secrets=Secrets(operator_token=TOKEN))) as url:
        page = await browser.new_page()
        await page.goto(f"{url}/operator")
        await page.fill("#token", TOKEN)
        await page.click("#login button[type=submit]")
        await page.fill("#kb-q", "how much is the late fee after 7 pm?")
        await page.click("#kb-search button")
        await expect(page.locator("#kb-answer .kb-reply")).to_contain_text("$18")
        entry = page.locator("#kb-proposed .entry")
        await expect(entry).to_have_count(1)
        await entry.locator("textarea[aria-label=answer]").fill("No, we only rent kayaks and paddles.")
        await entry.locator("button.approve").click()
        await expect(page.locator("#kb-proposed .entry")).to_have_count(0)
        await expect(page.locator("#kb-documents")).to_contain_text("Do you sell fishing rods?")
    reply = await bot.handle(
        IncomingMessage(ConversationKey("web", "rods"), user_id="u", text="Do you sell fishing rods?")
    )
    assert reply.grounded and reply.text == "No, we only rent kayaks and paddles."

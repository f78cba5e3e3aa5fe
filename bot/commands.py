"""The chat commands, written once for every adapter (errbot's `@botcmd` idea): a name, a line of
help, and `async (Context) -> str`. Adapters only parse their platform's syntax and send the text."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.errors import answer
from core.bot import Bot
from core.events import IncomingMessage, Mood

EMOJI = {"negative": "😟", "neutral": "😐", "positive": "🙂"}
GREETING = (
    "Hi! I am tonebot. Write to me and I will do my best to help; if things go wrong, "
    "I will stay calm and get a person involved. In groups, mention me or reply to my messages."
)


@dataclass(frozen=True)
class Context:
    """One command as typed: where and by whom (`msg`), its arguments, and what the adapter knows."""

    bot: Bot
    msg: IncomingMessage
    args: list[str] = field(default_factory=list)
    prefix: str = "/"  # how this platform types a command: "/" (Telegram, console) or "/tonebot " (Slack)
    in_support: bool = False  # sent from the configured support chat or channel
    whole_chat: bool = False  # the platform cannot say which thread (Slack's slash commands): all of them


Handler = Callable[[Context], Awaitable[str]]
COMMANDS: dict[str, tuple[str, Handler]] = {}


def command(name: str, description: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = (description, handler)
        return handler

    return register


def menu() -> list[tuple[str, str]]:
    """(name, description) of the commands every user may give (Telegram's command menu)."""
    return [(name, description) for name, (description, _) in COMMANDS.items() if name != "resolve"]


def help_text(prefix: str = "/") -> str:
    return "\n".join(f"{prefix}{name} — {description}" for name, (description, _) in COMMANDS.items())


def mood_line(mood: Mood) -> str:
    return f"{EMOJI[mood.label]} {mood.label} {mood.score:.2f}"


async def run(name: str, ctx: Context) -> str:
    """The answer to a command; an unknown name answers the help, and a failure its line of the error table."""
    _, handler = COMMANDS.get(name.lower(), COMMANDS["help"])
    try:
        return await handler(ctx)
    except Exception as exc:
        return answer(exc).text


@command("start", "what this bot does")
async def start(ctx: Context) -> str:
    return f"{GREETING}\n\n{help_text(ctx.prefix)}"


@command("help", "how to use it")
async def help_(ctx: Context) -> str:
    return help_text(ctx.prefix)


@command("reset", "start a fresh conversation")
async def reset(ctx: Context) -> str:
    if ctx.whole_chat:
        await ctx.bot.reset(ctx.msg.key, user_id=ctx.msg.user_id)
        return "Fresh start: I will not use our earlier messages in this channel as context."
    await ctx.bot.reset(ctx.msg.key)
    return "Fresh start: I will not use our earlier messages as context."


@command("forget", "delete my stored messages")
async def forget(ctx: Context) -> str:
    deleted = await ctx.bot.forget(ctx.msg.platform, ctx.msg.user_id)
    return f"Done: I deleted {deleted} stored messages (yours and my answers to them)."


@command("mood", "the mood of my recent messages")
async def mood(ctx: Context) -> str:
    moods = await ctx.bot.recent_moods(ctx.msg.platform, ctx.msg.user_id)
    if not moods:
        return "I have not read any of your messages here yet."
    return "Your recent moods: " + ", ".join(mood_line(m) for m in moods)


@command("resolve", "close escalation <n> (support chat only)")
async def resolve(ctx: Context) -> str:
    if not ctx.in_support:
        return "Escalations are resolved from the support channel (Slack) or support chat (Telegram)."
    number = ctx.args[0].lstrip("#") if ctx.args else ""
    if not number.isdigit():
        return f"Usage: {ctx.prefix}resolve <escalation number>"
    by = f"{ctx.msg.platform}:{ctx.msg.user_name or ctx.msg.user_id}"
    record = await ctx.bot.handoff.resolve(int(number), by=by)
    return f"Escalation #{record.id} resolved." if record else f"There is no escalation #{number}."

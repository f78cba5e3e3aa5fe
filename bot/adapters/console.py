"""A terminal chat on the same pipeline. Reads stdin line by line, so it also works in a pipe."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from core.bot import Bot
from core.errors import BotError
from core.events import ConversationKey, IncomingMessage, Mood

PLATFORM = "console"
EMOJI = {"negative": "😟", "neutral": "😐", "positive": "🙂"}
HELP = "Commands: /reset (fresh context), /forget (delete my messages), /mood (my recent moods), /quit"


def mood_line(mood: Mood) -> str:
    return f"[{EMOJI[mood.label]} {mood.label} {mood.score:.2f}]"


def to_incoming(line: str, user: str) -> IncomingMessage | None:
    text = line.strip()
    return IncomingMessage(ConversationKey(PLATFORM, user), user_id=user, user_name=user, text=text) if text else None


async def run_console(bot: Bot, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, user: str = "") -> None:
    user = user or getpass.getuser()
    key = ConversationKey(PLATFORM, user)
    interactive = stdin.isatty()

    def say(text: str = "", end: str = "\n") -> None:
        stdout.write(text + end)
        stdout.flush()

    if interactive:
        say(f"tonebot — talking as {user}. {HELP}")
    while True:
        if interactive:
            say("you> ", end="")
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        command = line.strip().lower()
        if command in ("/quit", "/exit"):
            break
        if command == "/reset":
            await bot.reset(key)
            say("(fresh context)")
        elif command == "/forget":
            say(f"(deleted {await bot.forget(PLATFORM, user)} stored messages)")
        elif command == "/mood":
            moods = await bot.recent_moods(PLATFORM, user)
            say(" ".join(mood_line(m) for m in moods) or "(no moods yet)")
        elif command in ("/help", "/start"):
            say(HELP)
        elif msg := to_incoming(line, user):
            try:
                async for item in bot.stream(msg):
                    if isinstance(item, Mood):
                        say(f"{mood_line(item)} bot> ", end="")
                    elif isinstance(item, str):
                        say(item, end="")
                    elif item.failed or item.duplicate:
                        say(item.text, end="")
            except BotError as exc:
                say(f"(not sent: {exc})", end="")
            say()

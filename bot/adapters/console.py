"""A terminal chat on the same pipeline. Reads stdin line by line, so it also works in a pipe."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from bot import commands
from bot.delivery import with_sources
from bot.errors import answer
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage, Mood

PLATFORM = "console"


def to_incoming(line: str, user: str) -> IncomingMessage | None:
    text = line.strip()
    return IncomingMessage(ConversationKey(PLATFORM, user), user_id=user, user_name=user, text=text) if text else None


async def run_console(bot: Bot, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, user: str = "") -> None:
    user = user or getpass.getuser()
    interactive = stdin.isatty()

    def say(text: str = "", end: str = "\n") -> None:
        stdout.write(text + end)
        stdout.flush()

    if interactive:
        say(f"tonebot — talking as {user}. /help lists the commands, /quit ends the chat.")
    while True:
        if interactive:
            say("you> ", end="")
        line = await asyncio.to_thread(stdin.readline)
        if not line or line.strip().lower() in ("/quit", "/exit"):
            break
        if (msg := to_incoming(line, user)) is None:
            continue
        if msg.text.startswith("/"):
            name, *args = msg.text[1:].split() or ["help"]
            say(await commands.run(name, commands.Context(bot, msg, args)))
            continue
        try:
            async for item in bot.stream(msg):
                if isinstance(item, Mood):
                    say(f"[{commands.mood_line(item)}] bot> ", end="")
                elif isinstance(item, str):
                    say(item, end="")
                elif item.failed or item.duplicate:
                    say(item.text, end="")
                elif item.sources:
                    say("\n" + with_sources(item).removeprefix(item.text).strip("\n"), end="")
        except Exception as exc:
            say(f"({answer(exc).text})", end="")
        say()

"""A customer's message coming in, written once for every platform: who may talk to the bot and how
often (allowlists, a per-user sliding-window rate limit; a refused user hears the refusal once,
then silence), then `intake`: stored in the ledger before the platform is told it arrived.

What cannot be stored now (the model loading or full, the database down) raises from `intake`: the
adapter makes its platform redeliver the message (a 503, an unconfirmed update); nothing is lost."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from bot.errors import answer
from core.bot import Bot
from core.errors import InvalidMessage
from core.events import IncomingMessage

REFUSED = "Sorry, this bot is private and cannot talk with you here."
SLOW_DOWN = "You are sending messages faster than I can answer. Please wait a minute and try again."


def allowed(user_id: str, chat_id: str, users: Collection[str], chats: Collection[str]) -> bool:
    """Empty lists allow everyone; otherwise the user or the chat must be listed."""
    if not users and not chats:
        return True
    return user_id in users or chat_id in chats


class RateLimit:
    """At most `per_minute` messages per user in any 60 seconds; 0 turns the limit off. Users quiet
    for a minute are forgotten (memory stays bounded by the users of the last minute)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self._seen: defaultdict[str, deque[float]] = defaultdict(deque)
        self._swept = clock()

    def hit(self, user_id: str) -> bool:
        """Count one message; False when the user is over the limit (and it is not counted)."""
        if self.per_minute <= 0:
            return True
        now = self.clock()
        if now - self._swept >= 60:
            self._seen = defaultdict(deque, {u: d for u, d in self._seen.items() if d and now - d[-1] < 60})
            self._swept = now
        seen = self._seen[user_id]
        while seen and now - seen[0] >= 60:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return False
        seen.append(now)
        return True


class Admission:
    """Allowlists and the rate limit; each refusal is said once (a refused user, and a flooder once
    per minute over the limit), then silence: a flooder does not spend the bot's send budget."""

    def __init__(self, users: Collection[str], chats: Collection[str], per_minute: int) -> None:
        self.users, self.chats, self.rate = users, chats, RateLimit(per_minute)
        self._refused: set[str] = set()
        self._told = RateLimit(1)  # "slow down" at most once a minute per user

    def check(self, msg: IncomingMessage) -> str | None:
        """None when the user may go on; otherwise the line to answer ("" for silence)."""
        if not allowed(msg.user_id, msg.key.chat_id, self.users, self.chats):
            first = msg.user_id not in self._refused
            if first and len(self._refused) < 100_000:
                self._refused.add(msg.user_id)
            return REFUSED if first else ""
        if self.rate.hit(msg.user_id):
            return None
        return SLOW_DOWN if self._told.hit(msg.user_id) else ""


@dataclass(frozen=True)
class Verdict:
    stored: bool  # go on: answer it (`bot.stream` / `delivery.deliver`), or run the command
    text: str = ""  # not stored: what to tell the sender ("" = nothing: a refused user hears it once)


async def intake(bot: Bot, admission: Admission, message: IncomingMessage, store: bool = True) -> Verdict:
    """Admission, then (with `store`; a command is not stored) the ledger."""
    if (refusal := admission.check(message)) is not None:
        return Verdict(False, refusal)
    if not store:
        return Verdict(True)
    try:
        await bot.intake(message)
    except InvalidMessage as exc:  # told why; nothing stored
        return Verdict(False, answer(exc).text)
    return Verdict(True)

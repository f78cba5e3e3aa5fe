"""Recovery: an event a crash, a kill or a deploy left accepted and never answered is answered now,
by whichever replica looks first (claims in the ledger; `FOR UPDATE SKIP LOCKED` on PostgreSQL), in
order per conversation; its answer edits what the dead attempt posted. Web and console events are
answered and stored: the client's retry of the same event id gets that answer. (An answer stored and
not wholly sent is the outbox's: its dispatcher finishes it, bot/notify.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from bot.delivery import OutputChannel, deliver
from core.bot import Bot
from core.errors import Busy
from core.events import ConversationKey, IncomingMessage
from core.settings import RecoverySettings

log = logging.getLogger(__name__)


class Recovery:
    def __init__(self, bot: Bot, settings: RecoverySettings, channels: Mapping[str, OutputChannel]) -> None:
        self.bot, self.settings, self.channels = bot, settings, channels

    async def run(self) -> None:
        """At start, then every `interval_seconds`, until cancelled."""
        while True:
            try:
                await self.once()
            except Exception:
                log.exception("recovery: one pass failed; trying again later")
            await asyncio.sleep(self.settings.interval_seconds)

    async def once(self) -> int:
        """One pass: how many events were finished (or tried)."""
        owed, given_up = await self.bot.ledger.claim_owed(
            timedelta(minutes=self.settings.window_minutes), self.settings.max_attempts
        )
        for event in given_up:
            log.error("recovery: event %s was accepted and never answered in time; marked failed", event)
        conversations: dict[ConversationKey, list[IncomingMessage]] = {}
        for msg in owed:
            conversations.setdefault(msg.key, []).append(msg)
        await asyncio.gather(*(self._in_order(items) for items in conversations.values()))
        return len(owed)

    async def _in_order(self, items: list[IncomingMessage]) -> None:
        for msg in items:
            await self._finish(msg)

    async def _finish(self, msg: IncomingMessage) -> None:
        channel = self.channels.get(msg.platform)
        fields = {"platform": msg.platform, "event_id": msg.event_id}
        try:
            if channel is not None:
                if await deliver(channel, self.bot, msg, reply_to=msg.message_id or None) is None:
                    await self.bot.ledger.unclaim(msg.key, msg.event_id)
                else:
                    log.info("recovery: an unanswered event was answered", extra=fields)
            else:
                await self.bot.handle(msg)
                log.info("recovery: an unanswered event was answered and stored for its retry", extra=fields)
        except Busy:  # the model is full: the next pass tries again
            await self.bot.ledger.unclaim(msg.key, msg.event_id)
        except Exception:
            log.exception("recovery: could not finish an event; tried again after its lease", extra=fields)

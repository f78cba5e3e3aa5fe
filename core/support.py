"""The escalation service operators use wherever they work (web API and page, Telegram and Slack
`/resolve`): the cases with their transcripts, acknowledge, resolve."""

from __future__ import annotations

from dataclasses import dataclass

from core.escalations import EscalationRecord, EscalationStore
from core.memory import Memory, StoredMessage


@dataclass(frozen=True)
class Case:
    escalation: EscalationRecord
    transcript: list[StoredMessage]


class Support:
    def __init__(self, escalations: EscalationStore, memory: Memory, transcript_messages: int = 100) -> None:
        self.escalations, self.memory, self.transcript_messages = escalations, memory, transcript_messages

    async def cases(self, open_only: bool = True, limit: int = 100) -> list[Case]:
        records = await self.escalations.all(open_only=open_only, limit=limit)
        return [Case(r, await self.memory.messages(r.key, limit=self.transcript_messages)) for r in records]

    async def get(self, escalation_id: int) -> EscalationRecord | None:
        return await self.escalations.get(escalation_id)

    async def acknowledge(self, escalation_id: int) -> EscalationRecord | None:
        return await self.escalations.acknowledge(escalation_id)

    async def resolve(self, escalation_id: int, by: str) -> EscalationRecord | None:
        """An operator closes an escalation; the bot answers that conversation again."""
        return await self.escalations.resolve(escalation_id, by)

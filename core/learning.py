"""What the bot learns from a hand-off: after a question the knowledge base could not answer, the
customer's question and what the agents answered become a proposed Q&A entry (a person approves it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from core.escalations import EscalationRecord
from core.knowledge import Knowledge
from core.memory import Memory

log = logging.getLogger(__name__)


def learning(memory: Memory, knowledge: Knowledge) -> Callable[[EscalationRecord], Awaitable[None]]:
    """What the bot learns from a hand-back (`Handoff`'s `resolved`): after a question the knowledge
    base could not answer, the customer's question and what the agents answered become a proposed
    Q&A entry (a person approves or edits it)."""

    async def learn(record: EscalationRecord) -> None:
        turns = await memory.messages(record.key, limit=200)
        missed = [n for n, t in enumerate(turns) if t.role == "assistant" and t.knowledge == "none"]
        if not missed:
            return
        question = next((t.text for t in reversed(turns[: missed[-1]]) if t.role == "user"), "")
        answer = "\n".join(t.text for t in turns[missed[-1] :] if t.role == "agent")
        if question and answer:
            await knowledge.propose(question, answer, f"handoff#handoff-{record.id}")
            log.info("knowledge: a Q&A entry proposed from a hand-off", extra={"escalation_id": record.id})

    return learn

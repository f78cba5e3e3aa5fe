"""What the web API stored for a conversation id as its caller knows it (the API keeps every
caller's ids inside the caller's own namespace: bot/adapters/web/api.py `Caller`)."""

from __future__ import annotations

from sqlalchemy import select

from core.events import ConversationKey
from core.memory import Conversation, Memory, StoredMessage


async def web_messages(memory: Memory, conversation_id: str) -> list[StoredMessage]:
    """The messages of every caller's conversation with this id, oldest first."""
    query = select(Conversation).where(
        Conversation.platform == "web", Conversation.chat_id.endswith(f"/{conversation_id}")
    )
    async with memory.db.session() as session:
        rows = (await session.scalars(query)).all()
    found = [m for r in rows for m in await memory.messages(ConversationKey("web", r.chat_id, r.thread_id))]
    return sorted(found, key=lambda m: m.id)

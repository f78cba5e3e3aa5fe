"""Frozen settings for the core. `bot.config` fills them from config.toml and the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSettings:
    engine: str = "transformers"  # transformers (in this process) | openai (an OpenAI-compatible server)
    base_url: str = ""  # openai engine: e.g. http://inference:8080/v1 (vLLM, llama.cpp server, Ollama, TGI)
    served_model: str = ""  # openai engine: the model name the server knows (default: the server's only one)
    request_timeout: float = 120.0
    id: str = "Qwen/Qwen2.5-0.5B-Instruct"
    gguf_file: str = ""
    fallback_to_embedded: bool = True
    dtype: str = "auto"  # auto (fp32) | float32 | bfloat16
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "tonebot")
    threads: int = 0  # 0: torch's default
    max_queue: int = 64
    classify_batch: int = 16
    context_tokens: int = 2048
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 0.9
    max_concurrent_replies: int = 8  # replies decoded together in one step
    kv_cache_tokens: int = 4096  # paged KV cache shared by the replies in flight
    prefill_chunk_tokens: int = 256  # prompt tokens per batching step


@dataclass(frozen=True)
class SentimentSettings:
    """The classification prompt. Its texts live in config.toml only."""

    instruction: str
    answer_prefix: str = ""
    examples: tuple[tuple[str, str], ...] = ()
    calibrate: bool = False


@dataclass(frozen=True)
class PromptSettings:
    """The reply's system prompts, picked by mood. Their texts live in config.toml only."""

    normal: str
    soothing: str


@dataclass(frozen=True)
class MemorySettings:
    url: str = "sqlite:///data/tonebot.db"
    history_messages: int = 20
    max_text_chars: int = 4000


@dataclass(frozen=True)
class EscalationSettings:
    """When to hand a conversation to a human, and what to tell the user. Texts live in config.toml."""

    human_phrases: tuple[str, ...]  # a request for a person, in any language
    not_human_phrases: tuple[str, ...]  # look-alikes removed before matching ("人工智能")
    notify_line: str  # appended once to the reply that escalates, in notify mode
    pause_line: str  # the bot's last words until an operator resolves, in pause mode
    enabled: bool = True
    high_negative: float = 0.9  # one message this surely negative escalates
    window: int = 3  # M: the user's last M messages...
    negatives: int = 2  # N: ...of which N negative escalate
    reset_streak: int = 2  # this many non-negative messages in a row clear the count
    cooldown_minutes: float = 30.0  # after a resolve, no new escalation for this long
    mode: str = "notify"  # notify: keep answering, soothing; pause: stay silent until resolved


@dataclass(frozen=True)
class NotifySettings:
    """Where escalations are announced. Secrets (tokens, the webhook key) come from the environment."""

    webhook_urls: tuple[str, ...] = ()  # JSON POST, HMAC-SHA256 signed with ESCALATION_WEBHOOK_SECRET
    slack_channel: str = ""  # posted with SLACK_BOT_TOKEN
    telegram_chat_id: str = ""  # posted with TELEGRAM_BOT_TOKEN
    transcript_messages: int = 8
    retry_seconds: float = 30.0  # first retry of a failed delivery; doubles up to an hour

"""Frozen settings for the core. `bot.config` fills them from config.toml and the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSettings:
    id: str = "Qwen/Qwen2.5-0.5B-Instruct"
    gguf_file: str = ""
    fallback_to_embedded: bool = True
    dtype: str = "auto"  # auto | bfloat16 | float32
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "tonebot")
    threads: int = 0  # 0: torch's default
    max_queue: int = 64
    classify_batch: int = 16
    context_tokens: int = 2048
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 0.9
    repetition_penalty: float = 1.1


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

"""A model's tokenizer and chat template without Transformers (and so without torch): the
`tokenizers` library reads tokenizer.json, jinja2 renders the chat template the way Transformers
does. What the llama.cpp engine needs to build prompts and count tokens, in 0.1 s instead of the
5 s that importing Transformers' tokenizer costs (it pulls in torch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


def _raise(message: str) -> None:
    raise TemplateError(message)


def _token(value: Any) -> str:
    return str(value.get("content", "")) if isinstance(value, dict) else str(value or "")


class ChatTokenizer:
    """The slice of a Transformers tokenizer tonebot uses: encode, decode, apply_chat_template."""

    def __init__(self, tokenizer: Tokenizer, template: str, special: dict[str, str]) -> None:
        self.tokenizer, self.special = tokenizer, special
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = lambda value, indent=None, **_: json.dumps(value, ensure_ascii=False, indent=indent)
        env.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.now().strftime(fmt))
        self.template = env.from_string(template)
        self.eos_token_id = self._id(special.get("eos_token", ""))
        self.pad_token_id = self._id(special.get("pad_token", "")) or self.eos_token_id

    @classmethod
    def from_dir(cls, path: Path) -> ChatTokenizer:
        """From a directory Transformers saved a tokenizer into (tokenizer.json, tokenizer_config.json,
        and chat_template.jinja or a `chat_template` in the config)."""
        config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        template_file = path / "chat_template.jinja"
        template = template_file.read_text(encoding="utf-8") if template_file.exists() else config["chat_template"]
        names = ("bos_token", "eos_token", "unk_token", "pad_token")
        special = {name: _token(config[name]) for name in names if config.get(name)}
        return cls(Tokenizer.from_file(str(path / "tokenizer.json")), template, special)

    def _id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token) if token else None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def apply_chat_template(
        self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True, tokenize: bool = True,
        return_dict: bool = False,
    ) -> Any:  # fmt: skip
        """The chat rendered by the model's template (Transformers' arguments), as text or token ids."""
        rendered = self.template.render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, tools=None, documents=None,
            **self.special,
        )  # fmt: skip
        return self.encode(rendered) if tokenize else rendered

"""Fitting a chat to the model's token budget with its soothing prompts, on the embedded model's tokenizer."""

from typing import Any

import pytest

from core.events import ChatMessage
from core.local.engine import TransformersEngine
from core.prompts import fit_chat

NORMAL, SOOTHING = ChatMessage("system", "Be helpful."), ChatMessage("system", "The user is upset: be kind.")


def chat(turns: int) -> list[ChatMessage]:
    """A conversation whose every customer turn was upset, then an upset current message."""
    history = []
    for n in range(turns):
        history += [SOOTHING, ChatMessage("user", f"Order {n} is late again!", "negative"),
                    ChatMessage("assistant", f"Sorry about order {n}; it ships today.")]  # fmt: skip
    return [NORMAL, *history, SOOTHING, ChatMessage("user", "And the refund?")]


def test_the_oldest_turns_go_with_their_soothing_prompt(engine: TransformersEngine) -> None:
    whole, _ = fit_chat(engine.tokenizer, chat(6), 10_000)
    ids, kept = fit_chat(engine.tokenizer, chat(6), len(whole) - 1)
    assert len(ids) < len(whole)
    assert kept[0] == NORMAL and kept[-2:] == [SOOTHING, ChatMessage("user", "And the refund?")]
    assert kept[1] == SOOTHING and kept[2].content.startswith("Order 1")  # turn 0 dropped whole
    assert [m.role for m in kept[1:4]] == ["system", "user", "assistant"]


class FirstSystemOnly:
    """A chat template that takes a system prompt only first (as some models' do), around the real one."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def apply_chat_template(self, chat: list[dict[str, str]], **kwargs: Any) -> Any:
        if any(m["role"] == "system" for m in chat[1:]):
            raise ValueError("System role only supported at the beginning")
        return self.tokenizer.apply_chat_template(chat, **kwargs)


def test_a_template_that_takes_a_system_prompt_only_first(engine: TransformersEngine) -> None:
    _, kept = fit_chat(FirstSystemOnly(engine.tokenizer), chat(2), 10_000)
    assert kept[0] == SOOTHING  # the current turn's soothing prompt first, none in the history
    assert [m.role for m in kept] == ["system", "user", "assistant", "user", "assistant", "user"]
    calm = [*chat(2)[:-2], ChatMessage("user", "Thanks!")]
    assert fit_chat(FirstSystemOnly(engine.tokenizer), calm, 10_000)[1][0] == NORMAL


class Refusing:
    def apply_chat_template(self, chat: list[dict[str, str]], **kwargs: Any) -> Any:
        raise ValueError("this template renders nothing")


def test_a_template_that_refuses_any_chat_is_an_error_not_a_loop() -> None:
    with pytest.raises(ValueError, match="renders nothing"):
        fit_chat(Refusing(), [NORMAL, SOOTHING, ChatMessage("user", "Hi")], 100)

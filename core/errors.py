"""One root error with a short tree, so each adapter needs one handler (bot/errors.py maps them)."""


class BotError(Exception):
    """Root of every error tonebot raises on purpose."""


class ConfigError(BotError):
    """The configuration or environment is invalid."""


class HandoffClosed(BotError):
    """The escalation is resolved (or does not exist), or an agent's command cannot be done: nothing
    is relayed to the customer (core/handoff.py)."""


class ModelNotFound(BotError):
    """The configured model is not on this machine."""


class InvalidMessage(BotError):
    """The incoming message cannot be accepted (empty, too long, ...); nothing was stored."""


def check_text(value: str, what: str) -> str:
    """A string a tokenizer and a database both take: no NUL, no lone surrogate (JSON's "\\ud800"
    decodes to one). Checked at the edge, so a bad text fails its own request and nothing else."""
    if "\x00" in value:
        raise InvalidMessage(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(f"{what} is not valid Unicode (it contains a lone surrogate)") from None
    return value


class Unavailable(BotError):
    """The model cannot take work right now; nothing was stored, so the same event may be retried."""

    retry_after = 5

    def __init__(self, message: str = "the model is not available right now, please retry later") -> None:
        super().__init__(message)


class Busy(Unavailable):
    """The model's queue is full, or the model is still loading; retry shortly."""

    retry_after = 1

    def __init__(self, message: str = "the model is busy, please retry in a moment") -> None:
        super().__init__(message)


class EngineError(BotError):
    """The model failed while answering."""

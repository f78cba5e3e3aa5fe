"""One root error with a short tree, so each adapter needs one handler (bot/errors.py maps them)."""


class BotError(Exception):
    """Root of every error tonebot raises on purpose."""


class ConfigError(BotError):
    """The configuration or environment is invalid."""


class ModelNotFound(BotError):
    """The configured model is not on this machine."""


class InvalidMessage(BotError):
    """The incoming message cannot be accepted (empty, too long, ...); nothing was stored."""


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

"""One root error with a short tree, so adapters need one handler."""


class BotError(Exception):
    """Root of every error tonebot raises on purpose."""


class ConfigError(BotError):
    """The configuration or environment is invalid."""


class ModelNotFound(BotError):
    """The configured model is not on this machine."""


class InvalidMessage(BotError):
    """The incoming message cannot be accepted (empty, too long, ...)."""


class Busy(BotError):
    """The model's queue is full; the caller should retry shortly."""

    def __init__(self, message: str = "the model is busy, please retry in a moment") -> None:
        super().__init__(message)


class EngineError(BotError):
    """The model failed while answering."""

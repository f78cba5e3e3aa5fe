"""Credentials never reach a log line or the CLI's output: every configured secret (platform tokens,
signing secrets, API tokens, the database password, webhook URLs, which are credentials themselves)
is replaced by `***` in everything a log handler writes, tracebacks and structured fields included
(`Settings.credentials()` lists them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"


def public_url(url: str) -> str:
    """A URL that may carry a credential in its path or query, shown as its origin only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}/{MASK}" if parts.scheme and parts.netloc else MASK


class Redactor:
    """Masks the given secrets in text, in their JSON-escaped form too."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets for form in (s, json.dumps(s)[1:-1]) if form}
        self.forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


class RedactingFormatter(logging.Formatter):
    """Wraps the handler's formatter: what it writes (message, arguments, extra fields, traceback)
    passes through the redactor last."""

    def __init__(self, inner: logging.Formatter, redact: Redactor) -> None:
        super().__init__()
        self.inner, self.redact = inner, redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self.inner.format(record))

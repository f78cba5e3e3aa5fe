"""Lines a test wants in the run's summary (sizes, timings): printed by tests/conftest.py at the end."""

from __future__ import annotations

LINES: list[str] = []


def report(line: str) -> None:
    LINES.append(line)

"""A frozen clock for the hand-off's timers (office hours, assignment, the SLA): `freeze` puts one in
place of `utcnow` wherever those modules read the time; a test moves it by setting `now`."""

from datetime import datetime

import pytest

MODULES = ("core.bot", "core.outbox", "core.escalations", "core.handoff", "core.assignment")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def freeze(monkeypatch: pytest.MonkeyPatch, now: datetime) -> Clock:
    frozen = Clock(now)
    for module in MODULES:
        monkeypatch.setattr(f"{module}.utcnow", frozen)
    return frozen

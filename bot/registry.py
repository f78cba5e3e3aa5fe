"""The platforms tonebot speaks on: one line each (bot/platform.py is the contract; README
"Architecture" the checklist). An explicit tuple, no discovery."""

from __future__ import annotations

from bot.adapters import slack, telegram
from bot.platform import Platform

PLATFORMS: dict[str, Platform] = {p.name: p for p in (telegram.PLATFORM, slack.PLATFORM)}

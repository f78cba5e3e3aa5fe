"""Settings: shipped defaults, a user's file over them, and the environment over both."""

from pathlib import Path

import pytest

from bot.config import load_settings
from core.errors import ConfigError


def test_shipped_defaults_have_the_prompts_and_the_default_model() -> None:
    settings = load_settings(environ={})
    assert settings.model.id == "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
    assert settings.model.engine == "auto"  # llama.cpp for a .gguf file
    assert settings.model.fallback_to_embedded is True
    assert "upset" in settings.prompts.soothing and settings.prompts.normal
    assert settings.sentiment.instruction


def test_a_user_file_then_the_environment_override(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text('[model]\nid = "embedded"\nmax_new_tokens = 64\n[web]\nport = 9001\n')
    env = {"TONEBOT_WEB__PORT": "9100", "TONEBOT_MODEL__TEMPERATURE": "0.7", "OTHER": "x"}
    settings = load_settings(user, env)
    assert settings.model.id == "embedded" and settings.model.max_new_tokens == 64
    assert settings.web.port == 9100 and settings.model.temperature == 0.7
    assert isinstance(settings.model.cache_dir, Path)


def test_examples_become_tuples_and_strings_stay_strings() -> None:
    env = {"TONEBOT_SENTIMENT__EXAMPLES": '[["great", "positive"]]', "TONEBOT_MEMORY__URL": "sqlite:///x.db"}
    settings = load_settings(environ=env)
    assert settings.sentiment.examples == (("great", "positive"),)
    assert settings.memory.url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"TONEBOT_MODEL__NAME": "x"}, "unknown setting"),
        ({"TONEBOT_WEB__PORT": "high"}, "web.port .*must be an integer"),
        ({"TONEBOT_SLACK__MODE": "HTTP"}, "slack.mode must be 'socket' or 'http', got 'HTTP'"),
        ({"TONEBOT_ESCALATION__MODE": "pasue"}, "escalation.mode must be 'notify' or 'pause'"),
        ({"TONEBOT_TELEGRAM__MODE": "webhooks"}, "telegram.mode must be 'polling' or 'webhook'"),
        ({"TONEBOT_LOG_FORMAT": "jsn"}, "log_format must be 'text' or 'json'"),
    ],
)
def test_mistakes_are_clear_errors(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings(environ=env)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.web.port = 1  # type: ignore[misc]


def test_environment_values_are_read_by_the_type_of_their_setting() -> None:
    env = {
        "TONEBOT_TELEGRAM__SUPPORT_CHAT_ID": "-1001234567890",  # how Telegram writes chat ids: stays a string
        "TONEBOT_TELEGRAM__ENABLED": "true",
        "TONEBOT_TELEGRAM__ALLOWED_USER_IDS": "111, 222",
        "TONEBOT_NOTIFY__WEBHOOK_URLS": '["https://a.example/hook"]',
        "TONEBOT_ESCALATION__ENABLED": "false",
        "TONEBOT_MODEL__MAX_QUEUE": "12",
        "TONEBOT_ESCALATION__HIGH_NEGATIVE": "0.8",
    }
    settings = load_settings(environ=env)
    assert settings.platforms["telegram"].support_chat_id == "-1001234567890"
    assert settings.platforms["telegram"].allowed_user_ids == ("111", "222")
    assert settings.notify.webhook_urls == ("https://a.example/hook",)
    assert settings.escalation.enabled is False and settings.model.max_queue == 12
    assert settings.escalation.high_negative == 0.8


def test_defaults_live_in_the_code_and_config_show_round_trips(tmp_path: Path) -> None:
    import dataclasses
    import tomllib

    from bot.config import DEFAULTS, as_toml

    shipped = tomllib.loads(DEFAULTS.read_text())
    assert set(shipped) == {"sentiment", "prompts", "escalation", "knowledge"}  # texts; other defaults: code
    settings = load_settings(environ={})
    shown = tmp_path / "shown.toml"
    shown.write_text(as_toml(settings))
    again = load_settings(shown, {})
    assert dataclasses.asdict(again) == dataclasses.asdict(settings)


def test_a_platform_section_comes_from_the_registry_and_its_desk_needs_it_on(caplog: pytest.LogCaptureFixture) -> None:
    moved = load_settings(environ={"TONEBOT_NOTIFY__SLACK_CHANNEL": "C0SUPPORT1", "TONEBOT_SLACK__ENABLED": "1"})
    assert moved.platforms["slack"].support_channel == "C0SUPPORT1"  # the old key still works, with a warning
    assert "notify.slack_channel has moved to slack.support_channel" in caplog.text
    assert moved.desks() == {"slack": "C0SUPPORT1"}
    with pytest.raises(ConfigError, match=r"slack.support_channel is 'C0SUPPORT1' but slack.enabled is false"):
        load_settings(environ={"TONEBOT_SLACK__SUPPORT_CHANNEL": "C0SUPPORT1"})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) in \[telegram\]: chat"):
        load_settings(environ={"TONEBOT_TELEGRAM__CHAT": "1"})
    secrets = load_settings(environ={"SLACK_BOT_TOKEN": "xoxb-1", "NOT_A_SECRET": "x"}).secrets
    assert secrets.platforms == {"SLACK_BOT_TOKEN": "xoxb-1"} and "SLACK_BOT_TOKEN" in secrets.enabled()

"""Settings: shipped defaults, a user's file over them, and the environment over both."""

from pathlib import Path

import pytest

from bot.config import load_settings
from core.errors import ConfigError


def test_shipped_defaults_have_the_prompts_and_the_default_model() -> None:
    settings = load_settings(environ={})
    assert settings.model.id == "Qwen/Qwen2.5-0.5B-Instruct"
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
    [({"TONEBOT_MODEL__NAME": "x"}, "unknown setting"), ({"TONEBOT_WEB__PORT": "high"}, "web.port must be int")],
)
def test_mistakes_are_clear_errors(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings(environ=env)


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(AttributeError):
        settings.web.port = 1  # type: ignore[misc]

"""The `tonebot` command as a user runs it: a subprocess on the embedded model, stdin piped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TONEBOT_MODEL__ID": "embedded",
        "TONEBOT_MEMORY__URL": f"sqlite:///{tmp_path / 'fresh' / 'cli.db'}",
        "TONEBOT_MODEL__MAX_NEW_TOKENS": "24",
    }


def tonebot(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_chat_reads_piped_lines_and_prints_mood_and_reply(env: dict[str, str]) -> None:
    done = tonebot("chat", env=env, stdin="I love this, thank you!\n/mood\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[🙂 positive ") and "bot> " in lines[0] and len(lines[0]) > 30
    assert lines[1].startswith("Your recent moods: 🙂 positive")


def test_classify_adds_mood_and_probabilities(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "I hate this!", "label": "negative"}\n{"text": "Wonderful, thanks!", "label": "positive"}\n'
    )
    out = tmp_path / "out.jsonl"
    done = tonebot("classify", str(source), "-o", str(out), env=env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["mood"] for r in rows] == ["negative", "positive"]
    assert [r["label"] for r in rows] == ["negative", "positive"]
    assert all(abs(r["negative"] + r["neutral"] + r["positive"] - 1) < 1e-3 for r in rows)


def test_db_upgrade_and_a_clear_error_for_a_missing_model(env: dict[str, str], tmp_path: Path) -> None:
    done = tonebot("db", "upgrade", env=env)
    assert done.returncode == 0 and "up to date" in done.stdout
    missing = {**env, "TONEBOT_MODEL__ID": "nobody/no-such-model", "TONEBOT_MODEL__FALLBACK_TO_EMBEDDED": "false"}
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "hello"}\n')
    done = tonebot("classify", str(source), env=missing)
    assert done.returncode == 2
    assert "tonebot download-model" in done.stderr and "embedded" in done.stderr


def test_config_check_prints_what_is_enabled_and_names_what_is_missing(env: dict[str, str]) -> None:
    ok = tonebot("config", "check", env={**env, "API_TOKENS": "a,b", "TONEBOT_WEB__HOST": "0.0.0.0"})
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout and "API tokens: 2" in ok.stdout and "SmolLM2" in ok.stdout
    assert "API_TOKENS" in ok.stdout and "a,b" not in ok.stdout  # secret names, never values
    telegram = tonebot("config", "check", env={**env, "TONEBOT_TELEGRAM__ENABLED": "true"})
    assert telegram.returncode == 2 and "TELEGRAM_BOT_TOKEN" in telegram.stderr
    remote = tonebot("config", "check", env={**env, "TONEBOT_MODEL__ENGINE": "openai"})
    assert remote.returncode == 2 and "model.base_url" in remote.stderr


def test_json_logs_carry_library_warnings_as_json_lines(env: dict[str, str]) -> None:
    """A library's FutureWarning and Transformers' own logger go through tonebot's handler too."""
    code = (
        "import warnings\n"
        "from bot.__main__ import setup_logging\n"
        "from bot.config import load_settings\n"
        "setup_logging(load_settings(environ={'TONEBOT_LOG_FORMAT': 'json'}))\n"
        "warnings.warn('x is deprecated', FutureWarning)\n"
        "from core.loading import transformers\n"
        "transformers()  # as tonebot imports it, where it needs it\n"
        "from transformers.utils import logging\n"
        "logging.get_logger('transformers.modeling_utils').warning('a transformers warning')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line is one JSON object
    assert [r["name"] for r in records] == ["py.warnings", "transformers.modeling_utils"]
    assert "x is deprecated" in records[0]["message"] and records[1]["message"] == "a transformers warning"


def test_report_after_a_chat_counts_it_as_open_and_writes_csv(env: dict[str, str], tmp_path: Path) -> None:
    assert tonebot("chat", env=env, stdin="Do you ship to Canada?\n").returncode == 0
    done = tonebot("report", "--since", "1d", "--by", "platform", "--csv", str(tmp_path / "r.csv"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["total"]["conversations"] == 1 and report["total"]["outcomes"]["open"] == 1
    assert [g["key"] for g in report["groups"]] == ["console"]
    assert (tmp_path / "r.csv").read_text().splitlines()[1].startswith("console,1,")
    wrong = tonebot("report", "--since", "last week", env=env)
    assert wrong.returncode != 0 and "7d" in wrong.stderr and "Traceback" not in wrong.stderr

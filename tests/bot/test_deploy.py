"""The container files as text: the Dockerfile's layer order, and every command and TONEBOT_*
variable the compose file uses is one tonebot accepts. The image itself is built and run by
tests/bot/test_container.py."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from bot.__main__ import parse_args
from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per logical line, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_pins_torch_and_installs_dependencies_before_the_code() -> None:
    """A code-only change rebuilds only the last layers: torch and the locked dependencies are
    installed before the first COPY of code (tests/bot/test_container.py builds and runs the image)."""
    steps = dockerfile()
    pin = re.search(r"torch==([\d.]+)", (ROOT / "scripts" / "setup.sh").read_text())
    assert pin is not None
    torch = next(i for i, (op, a) in enumerate(steps) if op == "RUN" and f"torch=={pin.group(1)}" in a)
    locked = next(i for i, (op, a) in enumerate(steps) if op == "RUN" and "-c requirements.lock" in a)
    code = next(i for i, (op, a) in enumerate(steps) if op == "COPY" and a.split()[0] in ("bot", "core"))
    assert torch < locked < code
    assert next(a for op, a in steps if op == "ARG").startswith("BASE_IMAGE=")
    assert all(a == "${BASE_IMAGE}" or a.startswith("${BASE_IMAGE} ") for op, a in steps if op == "FROM")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    [entrypoint] = [args for op, args in steps if op == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint)[0] in scripts
    [cmd] = [args for op, args in steps if op == "CMD"]
    parse_args(yaml.safe_load(cmd))


def test_compose_profiles_commands_and_settings_are_real() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    assert profiles == {"single", "scaled"}
    tonebot = [s for s in services.values() if s.get("build") or str(s.get("image", "")).startswith("tonebot")]
    assert {p for s in tonebot for p in s["profiles"]} == {"single", "scaled"}
    for service in tonebot:
        parse_args(service.get("command", ["serve"]))
        environment = service.get("environment", {})
        # each value as compose gives it with the defaults of its ${VAR:-default} references
        settings_env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in environment.items()
                        if k.startswith("TONEBOT_")}  # fmt: skip
        load_settings(environ=settings_env)
    scaled = {name for name, s in services.items() if "scaled" in s.get("profiles", [])}
    assert {"postgres", "inference", "lb"} <= scaled
    assert services["replica"]["environment"]["TONEBOT_MEMORY__URL"].startswith("postgresql://")
    assert services["replica"]["environment"]["TONEBOT_MODEL__ENGINE"] == "openai"
    volumes = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert (ROOT / "deploy" / "nginx.conf").exists() and "./deploy/nginx.conf" in volumes

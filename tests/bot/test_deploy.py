"""The container files, checked here because this machine has no Docker engine to build them:
the Dockerfile is multi-stage, runs as a non-root user, and health-checks /healthz; every command
and TONEBOT_* variable the compose file uses is one tonebot accepts."""

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


def test_dockerfile_is_multi_stage_non_root_with_healthcheck_and_volume() -> None:
    steps = dockerfile()
    stages = [args for op, args in steps if op == "FROM"]
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    assert any(op == "COPY" and args.startswith("--from=build") for op, args in steps)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    user = [args for op, args in final if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    env = " ".join(args for op, args in final if op == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert any(op == "HEALTHCHECK" and "/healthz" in args for op, args in final)
    assert any(op == "VOLUME" for op, _ in final)
    for name in re.findall(r"(TONEBOT_[A-Z_]+)=", env):  # every setting it presets exists
        load_settings(environ={name: "0.0.0.0" if name.endswith("HOST") else "json" if "FORMAT" in name else "x"})


def test_dockerfile_installs_cpu_torch_at_the_projects_pin_and_runs_the_entrypoint() -> None:
    steps = dockerfile()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pin = re.search(r"torch==([\d.]+)", setup)
    assert pin is not None
    assert any(op == "RUN" and f"torch=={pin.group(1)}" in a and "whl/cpu" in a for op, a in steps)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    [entrypoint] = [args for op, args in steps if op == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint)[0] in scripts
    [cmd] = [args for op, args in steps if op == "CMD"]
    parse_args(yaml.safe_load(cmd))
    for op, args in steps:
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source


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
        settings_env = {k: "x" for k in environment if k.startswith("TONEBOT_")}
        settings_env["TONEBOT_MODEL__ENGINE"] = environment.get("TONEBOT_MODEL__ENGINE", "transformers")
        load_settings(environ=settings_env)
    scaled = {name for name, s in services.items() if "scaled" in s.get("profiles", [])}
    assert {"postgres", "inference", "lb"} <= scaled
    assert services["replica"]["environment"]["TONEBOT_MEMORY__URL"].startswith("postgresql://")
    assert services["replica"]["environment"]["TONEBOT_MODEL__ENGINE"] == "openai"
    volumes = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert (ROOT / "deploy" / "nginx.conf").exists() and "./deploy/nginx.conf" in volumes

"""core/ is platform-free: it imports no adapter library, no web framework, and nothing from bot/."""

import ast
from pathlib import Path

import core

FORBIDDEN = {"bot", "telegram", "slack_bolt", "slack_sdk", "starlette", "fastapi", "uvicorn", "sse_starlette", "httpx"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_no_platform_or_web_library() -> None:
    files = sorted(Path(core.__path__[0]).rglob("*.py"))
    assert len(files) >= 8
    offenders = {str(f.name): sorted(imported_roots(f) & FORBIDDEN) for f in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from telegram.ext import Application\nimport bot.app\n")
    assert imported_roots(sample) & FORBIDDEN == {"telegram", "bot"}

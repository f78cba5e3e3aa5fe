"""The layers: core/ is platform-free (no adapter library, no web framework, nothing from bot/), no
module imports itself back through others, the engine protocol imports no implementation, and the
torch-free parts of the core load without torch."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import core

ROOT = Path(core.__path__[0]).parent
FORBIDDEN = {"bot", "telegram", "slack_bolt", "slack_sdk", "starlette", "fastapi", "uvicorn", "sse_starlette", "httpx"}
LONG_MODULES = {  # module -> why it is longer than ~250 lines
    "bot/tools/bench.py": "one benchmark report: each measure is a short function, the table prints them together",
    "bot/tools/capacity.py": "one benchmark read in order: the closed loop, the two servers it drives, the table",
    "core/bot.py": "the one entry point, read in order: validate, admit, accept or take over, classify, reply, record",
    "core/memory.py": "conversations and messages, and the one repository over them; each method one short transaction",
    "core/ledger.py": "exactly-once read together: accept or take over, record, release, what was posted, recovery",
    "core/local/llamacpp.py": "one engine read together: load and KV sizing, the mood from log-probabilities, replies",
}


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imports(path)}


def project_modules() -> dict[str, Path]:
    files = [*(ROOT / "core").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in files}


def test_core_imports_no_platform_or_web_library() -> None:
    files = sorted(Path(core.__path__[0]).rglob("*.py"))
    assert len(files) >= 8
    offenders = {str(f.name): sorted(imported_roots(f) & FORBIDDEN) for f in files}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def platform_names() -> set[str]:
    """The platforms and desks tonebot has: the registry's, its adapter packages and modules, and the
    destinations' desks (bot/destinations.py)."""
    from bot.destinations import WEBHOOK
    from bot.registry import PLATFORMS

    adapters = ROOT / "bot" / "adapters"
    names = {p.stem.split("_")[0] for p in adapters.iterdir() if not p.name.startswith("_")}
    return names | set(PLATFORMS) | {WEBHOOK}


def platform_literals(path: Path, names: set[str]) -> list[str]:
    """String literals (docstrings aside) that name a platform, or start with one and a colon (a
    destination or reference format)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.strip().lower()
            if text in names or any(text.startswith(f"{n}:") for n in names):
                found.append(node.value)
    return found


def test_core_names_no_platform() -> None:
    """The core speaks values: no platform's name or reference format in a string of its code."""
    names = platform_names()
    assert {"telegram", "slack", "web", "console", "webhook"} <= names
    files = sorted(Path(core.__path__[0]).rglob("*.py"))
    offenders = {str(f.relative_to(ROOT)): platform_literals(f, names) for f in files}
    assert {name: found for name, found in offenders.items() if found} == {}
    from bot.registry import PLATFORMS  # nor in its comments and docstrings: `git grep` finds none there

    named = re.compile(rf"\b({'|'.join(PLATFORMS)})\b", re.IGNORECASE)
    mentions = {str(f.relative_to(ROOT)): named.findall(f.read_text(encoding="utf-8")) for f in files}
    assert {name: found for name, found in mentions.items() if found} == {}


def test_the_check_catches_a_platform_literal(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text('"""About Slack."""\nTHREADED = ("slack:", "telegram:")\nKIND = "webhook"\nOK = "slacker"\n')
    assert sorted(platform_literals(sample, platform_names())) == ["slack:", "telegram:", "webhook"]


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("from telegram.ext import Application\nimport bot.app\n")
    assert imported_roots(sample) & FORBIDDEN == {"telegram", "bot"}


def test_no_import_circles() -> None:
    modules = project_modules()
    graph = {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}
    for name in graph:  # a package's __init__ is not a dependency of its own modules' imports
        graph[name] -= {p for p in graph[name] if name.startswith(p + ".")}
    circles, done = [], set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            circles.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for nxt in sorted(graph[name]):
            visit(nxt, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert circles == []


def test_serving_imports_no_tooling() -> None:
    """bot/tools (benchmarks, evaluations, fitting) is reached from the command line only."""
    serving = {name: path for name, path in project_modules().items()
               if not name.startswith("bot.tools") and name != "bot.__main__"}  # fmt: skip
    offenders = {name: sorted(m for m in imports(path) if m.startswith("bot.tools")) for name, path in serving.items()}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_engine_protocol_imports_no_implementation() -> None:
    assert {m for m in imports(ROOT / "core" / "engine.py") if m.startswith("core")} <= {
        "core.events", "core.events.ChatMessage", "core.events.Mood"
    }  # fmt: skip


def test_the_torch_free_core_loads_without_torch() -> None:
    code = "import sys, core.bot, core.remote, core.memory, core.local.llamacpp; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_modules_fit_on_a_screen_or_two() -> None:
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in project_modules().values()}
    assert {name: n for name, n in lengths.items() if n > 250 and name not in LONG_MODULES} == {}

"""The image, built from the Dockerfile and run with podman: it serves the embedded default as uid
10001, keeps its conversations on its volume, runs the scaled roles on PostgreSQL, and refuses a
malformed setting with one line. Skipped where podman is missing, except in CI (CI=true), where a
missing engine fails the run."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.auxil.containers import Built, Podman
from tests.auxil.postgres import postgres_database
from tests.auxil.report import report
from tests.auxil.servers import free_port

TOKEN = "container-test-token-0123456789"
ANGRY = "This is the third time my order is late and nobody answers. I am furious!"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    if shutil.which("podman") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but podman is missing: `scripts/setup.sh test` installs it")
        pytest.skip("podman is not installed (scripts/setup.sh test installs it)")
    return Podman(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(podman: Podman) -> Built:
    base = podman.base_image()
    built = podman.build(base)
    report(f"container image: {built.size_bytes / 1e9:.2f} GB, built in {built.seconds:.0f} s on {base}")
    return built


@pytest.fixture
def volume(podman: Podman) -> Iterator[str]:
    name = f"tonebot-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


class Container:
    """One `tonebot` container on the host network, at its own port."""

    def __init__(self, podman: Podman, image: Built, *args: str, env: dict[str, str] | None = None,
                 volume: str = "") -> None:  # fmt: skip
        self.podman, self.port = podman, free_port()
        environment = {"API_TOKENS": TOKEN, "TONEBOT_WEB__PORT": str(self.port), **(env or {})}
        options = [f"--env={k}={v}" for k, v in environment.items()]
        options += [f"--volume={volume}:/var/lib/tonebot"] if volume else []
        self.id = podman("run", "--detach", "--network=host", *options, image.image, *args).stdout.strip()
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self, timeout: float = 240) -> Container:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state() != "running":
                raise AssertionError(f"the container stopped:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"not ready after {timeout} s:\n{self.logs()}")

    def chat(self, conversation: str, text: str, event_id: str) -> dict[str, Any]:
        body = {"conversation_id": conversation, "user_id": "customer", "text": text, "event_id": event_id}
        response = httpx.post(f"{self.url}/v1/chat", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=120)  # fmt: skip
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> str:
        return self.podman("inspect", "--format", "{{.State.Status}}", self.id).stdout.strip()

    def logs(self) -> str:
        result = self.podman("logs", self.id, check=False)
        return (result.stdout + result.stderr)[-6000:]

    def stop(self, grace: int = 40) -> int:
        self.podman("stop", "--time", str(grace), self.id, timeout=grace + 30)
        return int(self.podman("inspect", "--format", "{{.State.ExitCode}}", self.id).stdout.strip())

    def remove(self) -> None:
        self.podman("rm", "--force", self.id, check=False)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


def test_every_shared_object_finds_its_system_libraries(podman: Podman, image: Built) -> None:
    # a vendored library (scipy.libs/...) finds its siblings through its loader's rpath: look beside it too
    script = (
        'find /opt/tonebot -name "*.so*" -type f | while read -r f; do '
        'LD_LIBRARY_PATH="$(dirname "$f")" ldd "$f" 2>/dev/null | grep "not found" | sed "s|^|$f:|"; done; '
        "echo checked $(find /opt/tonebot -name '*.so*' -type f | wc -l) shared objects"
    )
    out = podman("run", "--rm", "--network=host", "--entrypoint=sh", image.image, "-c", script, timeout=300).stdout
    assert "not found" not in out, out
    assert int(out.split("checked ")[1].split()[0]) > 50, out


def test_single_role_serves_as_uid_10001_stops_cleanly_and_keeps_its_volume(
    podman: Podman, image: Built, volume: str, containers: list[Container]
) -> None:
    first = Container(podman, image, volume=volume)
    containers.append(first.ready())
    assert podman("healthcheck", "run", first.id, check=False).returncode == 0, first.logs()
    assert podman("exec", first.id, "stat", "-c", "%u", "/proc/1").stdout.strip() == "10001"

    answer = first.chat("c1", ANGRY, "e1")
    assert answer["mood"]["label"] == "negative" and answer["reply"].strip()

    # a turn in flight when the container is stopped is finished, not lost
    late: dict[str, Any] = {}
    request = threading.Thread(target=lambda: late.update(first.chat("c1", "And where is my refund?", "e2")))
    request.start()
    time.sleep(0.5)
    assert first.stop() == 0, first.logs()
    request.join(timeout=60)
    assert late.get("reply"), first.logs()
    assert "shutting down" in first.logs()

    second = Container(podman, image, volume=volume)
    containers.append(second.ready(timeout=120))
    again = second.chat("c1", ANGRY, "e1")  # the same event: answered from the volume's database
    assert again["duplicate"] and again["reply"] == answer["reply"]
    assert second.chat("c1", "And where is my refund?", "e2")["reply"] == late["reply"]
    assert second.chat("c1", "Thanks, that helps.", "e3")["reply"].strip()


async def test_scaled_roles_migrate_once_and_share_conversations_on_postgresql(
    podman: Podman, image: Built, volume: str, containers: list[Container]
) -> None:
    async with postgres_database() as url:
        env = {"TONEBOT_MEMORY__URL": url}
        migrate = podman("run", "--rm", "--network=host", "--no-healthcheck", f"--env=TONEBOT_MEMORY__URL={url}",
                         image.image, "db", "upgrade", check=False)  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
        replicas = [Container(podman, image, "serve", "--no-upgrade", env=env, volume=volume) for _ in range(2)]
        containers.extend(replicas)
        a, b = (replica.ready() for replica in replicas)
        begun = a.chat("shared", "Hello, I have a question about my invoice.", "s1")
        continued = b.chat("shared", "Hello, I have a question about my invoice.", "s1")
        assert continued["duplicate"] and continued["reply"] == begun["reply"]
        assert b.chat("shared", "It shows the wrong address.", "s2")["reply"].strip()
        for replica in replicas:
            replica.stop()


def test_a_malformed_setting_exits_with_one_line_naming_it(podman: Podman, image: Built) -> None:
    result = podman("run", "--rm", "--network=host", "--no-healthcheck", "--env=TONEBOT_MEMORY__URL=nonsense",
                    image.image, check=False, timeout=60)  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "memory.url" in lines[0], result.stderr

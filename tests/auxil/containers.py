"""Build and run the project's image with podman, on this machine as it is: no registry needed.

- The engine: `runc` with explicit nofile/nproc ulimits (crun cannot set RLIMIT_NOFILE here), in a
  containers.conf of the test's own (CONTAINERS_CONF), `--format docker` so HEALTHCHECK is kept.
- The base: `BASE_IMAGE` from the environment, else the Dockerfile's default if it can be pulled,
  else a Debian bookworm + Python 3.11 base made with mmdebstrap and `podman import`.
- The build's pip configuration: this machine's (`pip config list`), handed in as a build secret,
  with the local paths it names (a CA bundle, wheel directories, file:// indexes) as build-time
  volumes; nothing of it lands in the image.
"""

from __future__ import annotations

import ast
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "localhost/tonebot-base:bookworm-py311"
IMAGE = "localhost/tonebot:test"


@dataclass(frozen=True)
class Built:
    image: str
    seconds: float
    size_bytes: int


class Podman:
    """The podman command with the test's own engine configuration."""

    def __init__(self, workdir: Path) -> None:
        _, hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        _, hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)
        nofile = min(hard_nofile, 65536) if hard_nofile != resource.RLIM_INFINITY else 65536
        nproc = min(hard_nproc, 4096) if hard_nproc != resource.RLIM_INFINITY else 4096  # 65536 is refused here
        conf = workdir / "containers.conf"
        conf.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
        )
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        self.workdir = workdir

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def base_image(self) -> str:
        if base := os.environ.get("BASE_IMAGE"):
            return base
        for image in (DEFAULT_BASE, LOCAL_BASE):
            if self("image", "exists", image, check=False).returncode == 0:
                return image
        try:
            if self("pull", "--quiet", DEFAULT_BASE, timeout=90, check=False).returncode == 0:
                return DEFAULT_BASE
        except subprocess.TimeoutExpired:
            pass
        tarball = self.workdir / "base.tar"
        subprocess.run(
            ["mmdebstrap", "--variant=apt", "--include=python3,python3-venv,python-is-python3,ca-certificates",
             "--aptopt=Acquire::Check-Valid-Until \"false\"", "bookworm", str(tarball)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        self("import", str(tarball), LOCAL_BASE, timeout=300)
        tarball.unlink()
        return LOCAL_BASE

    def build(self, base: str) -> Built:
        secret, volumes, settings = self._pip_config()
        started = time.monotonic()
        result = self(
            "build", "--format", "docker", "--network", "host", "--tag", IMAGE,
            "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"TORCH_INDEX_URL={_torch_index(settings)}",
            "--secret", f"id=pip.conf,src={secret}", *volumes, str(ROOT),
            timeout=1800, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"podman build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        seconds = time.monotonic() - started
        size = int(self("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
        return Built(IMAGE, seconds, size)

    def _pip_config(self) -> tuple[Path, list[str], dict[str, str]]:
        """This machine's pip configuration as one file, and the local paths it names as volumes."""
        listing = subprocess.run(
            [shutil.which("python3") or "python3", "-m", "pip", "config", "list"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        settings: dict[str, str] = {}
        for line in listing.splitlines():
            name, _, raw = line.partition("=")
            key = name.rsplit(".", 1)[-1]
            settings[key] = ast.literal_eval(raw) if raw[:1] in "'\"" else raw
        volumes: list[str] = []
        for value in settings.values():
            for item in value.split():
                # a file:// index's pages link to files beside it (../files/...): its parent goes in
                path = str(Path(urlparse(item).path).parent) if item.startswith("file://") else item
                if path.startswith("/") and Path(path).exists() and f"{path}:{path}:ro" not in volumes:
                    volumes += ["--volume", f"{path}:{path}:ro"]
        secret = self.workdir / "pip.conf"
        secret.write_text("[global]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items()))
        return secret, volumes, settings


def _torch_index(pip: dict[str, str]) -> str:
    """Where the build takes the CPU torch from: $TORCH_INDEX_URL; else, when a find-links directory
    of this machine's pip holds a CPU torch wheel, pip's own index (the wheel is found beside it, as
    `scripts/setup.sh` finds it); else PyTorch's CPU index."""
    if url := os.environ.get("TORCH_INDEX_URL"):
        return url
    links = [Path(item) for item in pip.get("find-links", "").split() if item.startswith("/")]
    if any(any(d.glob("torch-*+cpu-*.whl")) for d in links if d.is_dir()):
        return pip.get("index-url", "https://pypi.org/simple")
    return "https://download.pytorch.org/whl/cpu"

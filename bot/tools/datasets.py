"""Labelled rows for `eval`, `train-head` and `classify`: reading them, sampling, and the split
every command agrees on (by a hash of the text, so a row is in the same split in every run)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any, Literal, TextIO

from core.errors import ConfigError
from core.local.fitting import Split, split_of


def read_rows(path: Path) -> list[dict[str, Any]]:
    """CSV with a `text` column, or JSON Lines with a `text` field."""
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() == ".csv":
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in f if line.strip()]
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("text"), str):
            raise ConfigError(f"{path}: row {number} has no 'text' field")
    return rows


def labelled(path: Path, split: Split | Literal["all"] = "all") -> list[dict[str, Any]]:
    """Rows with a `label` among negative / neutral / positive, of one split (or all)."""
    rows = read_rows(path)
    for number, row in enumerate(rows, 1):
        if row.get("label") not in ("negative", "neutral", "positive"):
            raise ConfigError(f"{path}: row {number} has no label negative, neutral or positive")
    return rows if split == "all" else [r for r in rows if split_of(r["text"]) == split]


def write_rows(rows: list[dict[str, Any]], out: TextIO, as_csv: bool) -> None:
    if as_csv:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["text"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def sample(rows: list[dict[str, Any]], limit: int | None, seed: int = 0) -> list[dict[str, Any]]:
    """A reproducible random sample (the files are sorted by source, so the head is not representative)."""
    if limit is None or limit >= len(rows):
        return rows
    return random.Random(seed).sample(rows, limit)

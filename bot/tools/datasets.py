"""Labelled rows for `eval`, `train-head` and `classify`: reading them, sampling, and the split
every command agrees on (by a hash of the text, so a row is in the same split in every run)."""

from __future__ import annotations

import csv
import json
import random
from typing import Any, TextIO

from core.local.fitting import labelled, read_rows, split_of

__all__ = ["labelled", "read_rows", "sample", "split_of", "write_rows"]


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

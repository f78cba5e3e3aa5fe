"""`tonebot bench --quick`: the report is complete and self-consistent (speed is not judged here)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_writes_a_complete_report(tmp_path: Path) -> None:
    env = {**os.environ, "TONEBOT_MODEL__ID": "embedded"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "bench", "--quick", "--vs-llamacpp", "--out", str(tmp_path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "classify p50 speed-up over the seed's method" in done.stdout
    [path] = tmp_path.glob("bench-*.json")
    report = json.loads(path.read_text())
    assert report["quick"] is True and report["machine"]["cores"] >= 1
    assert report["classify"]["p50_ms"] > 0 and report["seed_generate"]["p50_ms"] > 0
    assert report["classify_speedup_p50"] == report["seed_generate"]["p50_ms"] / report["classify"]["p50_ms"]
    assert report["reply"]["decode_tokens_per_s"] > 0 and report["reply"]["ttft_s"] > 0
    assert report["roofline"]["achieved"] > 0 and report["roofline"]["bandwidth_gb_s"] > 0
    assert [level["conversations"] for level in report["load"]] == [1, 2]
    assert report["load"][0]["speedup"] == 1.0
    assert report["peak_rss_bytes"] > report["model"]["weight_bytes"] > 100e6
    assert report["llamacpp"]["decode_tokens_per_s"] > 0 and "llama.cpp on" in done.stdout
    assert 0 < report["model"]["bytes_read_per_token"] <= report["model"]["weight_bytes"]

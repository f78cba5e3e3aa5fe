"""`tonebot bench --quick --model` and `--soak`: the reports are complete and self-consistent (speed is
not judged here), on the embedded model only (the 0.5B file is never fetched by the tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from core import loading

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TONEBOT_MODEL__ID": "Qwen/not-on-this-machine"}  # --model must win over it
    return subprocess.run(
        [sys.executable, "-m", "bot", "bench", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_quick_bench_of_a_gguf_by_path_writes_a_complete_report(tmp_path: Path) -> None:
    source = loading.embedded_source()
    gguf = source.path / source.gguf_file
    done = bench("--quick", "--vs-llamacpp", "--model", str(gguf), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "classify p50 speed-up over the seed's method" in done.stdout
    [path] = tmp_path.glob("bench-*.json")
    report = json.loads(path.read_text())
    assert report["quick"] is True and report["machine"]["cores"] >= 1
    assert report["cold_start_cache"] in ("warm", "filled by this start")
    assert report["engine"] == "llamacpp" and report["model"]["name"] == gguf.name
    assert report["classify"]["p50_ms"] > 0 and report["seed_generate"]["p50_ms"] > 0
    assert report["classify_speedup_p50"] == report["seed_generate"]["p50_ms"] / report["classify"]["p50_ms"]
    assert report["reply"]["decode_tokens_per_s"] > 0 and report["reply"]["ttft_s"] > 0
    assert report["reply"]["end_to_end_s"] > report["reply"]["ttft_s"]
    assert report["roofline"]["achieved"] > 0 and report["roofline"]["bandwidth_gb_s"] > 0
    assert [level["conversations"] for level in report["load"]] == [1, 2]
    assert report["load"][0]["speedup"] == 1.0
    # llama.cpp memory-maps the file it serves: the embedded Q4_1 file's copy requantized to Q8_0
    assert report["model"]["served_file"].endswith("-Q8_0.gguf") and "Q4_1" in report["model"]["served_file"]
    assert report["model"]["weight_bytes"] > gguf.stat().st_size
    assert report["peak_rss_bytes"] > report["model"]["weight_bytes"]
    assert report["llamacpp"]["decode_tokens_per_s"] > 0 and "llama.cpp's own server on" in done.stdout
    assert (
        report["decode_vs_llamacpp"]
        == report["reply"]["decode_tokens_per_s"] / report["llamacpp"]["decode_tokens_per_s"]
    )


def test_soak_prints_a_table_of_intervals_and_writes_its_report(tmp_path: Path) -> None:
    done = bench("--soak", "0.4", "--think", "1", "--model", "embedded", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "RSS at the end vs after the first interval" in done.stdout
    [path] = tmp_path.glob("soak-*.json")
    report = json.loads(path.read_text())
    assert report["minutes"] == 0.4 and report["conversations"] >= 2 and report["think_s"] == 1
    intervals = report["intervals"]
    assert len(intervals) == 3 and [row["at_s"] for row in intervals] == sorted(row["at_s"] for row in intervals)
    assert sum(row["messages"] for row in intervals) > 0
    assert all(row["rss_bytes"] > 0 for row in intervals)
    first, last = intervals[0], intervals[-1]
    assert report["rss_growth_after_first_interval"] == last["rss_bytes"] / first["rss_bytes"] - 1


def test_capacity_runs_the_same_closed_loop_on_tonebot_serve_and_llamacpp_server(tmp_path: Path) -> None:
    args = ("--capacity", "1,2", "--duration", "6", "--think", "0.5", "--model", "embedded", "--out", str(tmp_path))
    done = bench(*args)
    assert done.returncode == 0, done.stderr
    assert "most customers with p95 <= 3 s" in done.stdout
    [path] = tmp_path.glob("capacity-*.json")
    report = json.loads(path.read_text())
    assert report["model"] == "SmolLM2-135M-Instruct (embedded)" and report["reply_tokens"] == 64
    assert [level["customers"] for level in report["levels"]] == [1, 2]
    for level in report["levels"]:
        ours, theirs = level["tonebot"], level["llamacpp"]
        for side in (ours, theirs):  # every answer through HTTP, streamed: none failed, each timed
            assert side["answers"] > 0 and side["errors"] == 0, side["error_sample"]
            assert side["first_token_p95_s"] > 0 and side["p50_s"] <= side["p95_s"]
            assert side["answer_chars_mean"] > 0
        assert level["throughput_ratio"] == ours["answers_per_min"] / theirs["answers_per_min"]
        # tonebot's own split of its time, from its /metrics: every answer had a mood pass and a reply
        assert ours["classify_mean_s"] > 0 and 0 < ours["first_token_mean_s"] < ours["reply_mean_s"]
    assert set(report["served_within_target"]) == {"tonebot", "llamacpp"}
    assert report["tonebot_peak_rss_bytes"] > 0

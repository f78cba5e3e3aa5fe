"""`tonebot eval`: the metrics, and both methods on the real embedded model."""

import pytest

from bot.config import Settings
from bot.tools.datasets import sample
from bot.tools.evaluate import evaluate, metrics, table
from core.local.engine import TransformersEngine


def test_metrics_on_a_hand_checked_example() -> None:
    gold = ["negative", "negative", "neutral", "positive", "positive", "positive"]
    pred = ["negative", "positive", "neutral", "positive", "positive", "neutral"]
    report = metrics(gold, pred, ("negative", "neutral", "positive"))
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class"]["negative"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert report["per_class"]["neutral"]["precision"] == 0.5
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 2 / 3) / 3)
    assert report["confusion"]["positive"] == {"negative": 0, "neutral": 1, "positive": 2}


def test_sample_is_reproducible_and_bounded() -> None:
    rows = [{"text": str(i), "label": "neutral"} for i in range(100)]
    assert sample(rows, 10) == sample(rows, 10) and len(sample(rows, 10)) == 10
    assert sample(rows, None) == rows


async def test_the_head_label_scoring_and_the_seed_method_on_the_same_rows(
    engine: TransformersEngine, base_settings: Settings
) -> None:
    rows = [
        {"text": "I absolutely love this, best purchase ever!", "label": "positive"},
        {"text": "Horrible. It broke after one day and support ignored me.", "label": "negative"},
    ]
    report = await evaluate(engine, rows, vs_generate=True, settings=base_settings)
    assert report["method"] == "mood head"
    assert report["accuracy"] == 1.0 and report["per_class"].keys() == {"negative", "positive"}
    assert [b["method"] for b in report["baselines"]] == ["label-token scoring", "generate (seed)"]
    assert all(b["rows"] == 2 and b["p50_ms"] > 0 for b in report["baselines"])
    assert report["speedup_p50"] > 1
    assert "generate (seed)" in table(report) and "speed-up" in table(report)

"""`tonebot train-head` and the head it writes, on the real embedded model: a small run on the
customer-service lines written for tonebot (core/local/training/), the report's shape, the head beating label
scoring on the split it never saw, and a head refused on a model or prompt it was not fitted on."""

import dataclasses
from pathlib import Path

import pytest

from bot.config import Settings
from bot.tools.train_head import rows_of, table, train
from core.errors import ConfigError
from core.local import head as heads
from core.local.engine import TransformersEngine

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "core" / "local" / "training" / "customer_service.jsonl"


@pytest.fixture(scope="module")
async def trained(engine: TransformersEngine) -> tuple[heads.MoodHead, dict]:  # type: ignore[type-arg]
    return await train(engine, rows_of([DATA]), layer=None, pooling="last")


async def test_the_report_and_the_head_beat_label_scoring_on_the_untouched_split(trained) -> None:  # type: ignore[no-untyped-def]
    head, report = trained
    assert set(report["rows"]) == {"train", "valid", "test"} and report["rows"]["test"] > 50
    assert report["depth"] == 30 and 10 <= report["layer"] <= 30 and report["temperature"] > 0
    [(source, found)] = report["test"].items()
    assert source == "customer_service" and set(found["recall"]) == {"negative", "neutral", "positive"}
    baseline = report["label_scoring_test"][source]
    assert found["accuracy"] > baseline["accuracy"] and found["macro_f1"] > baseline["macro_f1"]
    assert found["recall"]["neutral"] > baseline["recall"]["neutral"]
    assert {"layer", "C", "valid_macro_f1"} <= set(report["sweep"][0])
    assert "label scoring" in table(report)
    assert head.weight.shape == (3, 576) and head.identity.layer == report["layer"]


async def test_a_saved_head_is_found_for_its_model_and_refused_on_another(
    trained,
    engine: TransformersEngine,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    head, _ = trained
    path = tmp_path / "heads" / "mine.safetensors"
    head.save(path)
    loaded = heads.MoodHead.load(path)
    assert loaded.identity == head.identity and loaded.temperature == pytest.approx(head.temperature)
    identity = engine.reader.identity
    assert heads.find("auto", identity, tmp_path / "heads") is not None
    assert heads.find("", identity, tmp_path / "heads") is None
    other_prompt = dataclasses.replace(identity, prompt="0" * 16)
    with pytest.raises(ConfigError, match=r"does not fit the loaded model.*prompt"):
        heads.find(str(path), other_prompt)
    other_weights = dataclasses.replace(identity, fingerprint="f" * 16)
    assert heads.find("auto", other_weights, tmp_path / "heads") is None  # never used on other weights


async def test_a_head_file_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a head")
    with pytest.raises(ConfigError, match="cannot read the mood head"):
        heads.MoodHead.load(broken)


def test_the_shipped_head_fits_the_embedded_model_and_is_used_by_default(
    engine: TransformersEngine, base_settings: Settings
) -> None:
    assert base_settings.sentiment.head == "auto"
    assert engine.reader.method == "head"
    assert engine.reader.head is not None and engine.reader.head.identity.layer < engine.reader.depth

"""`tonebot eval-escalation`: scripted conversations through the real pipeline on the embedded model."""

from pathlib import Path

from bot.config import Settings
from bot.tools.escalation_eval import evaluate, read, score, table
from core.local.engine import TransformersEngine
from tests.auxil.report import report as measured

DATA = Path(__file__).resolve().parents[1] / "data" / "escalation" / "conversations.jsonl"
TEST_SPLIT = DATA.with_name("three_way_test.jsonl")  # never tuned on (thresholds were set on three_way_dev)


async def test_conversations_through_the_pipeline_give_precision_recall_and_the_rule(
    engine: TransformersEngine, settings: Settings
) -> None:
    report = await evaluate(engine, settings, read(DATA))
    assert report["conversations"] == 4 and report["precision"] == 1.0 and report["recall"] == 1.0
    by_id = {r["id"]: r for r in report["results"]}
    assert by_id["asks-for-a-supervisor"]["rule"] == "asked_for_human" and by_id["asks-for-a-supervisor"]["turn"] == 2
    assert by_id["zh-asks-for-a-person"]["rule"] == "asked_for_human"
    assert not by_id["agent-as-a-noun"]["escalated"]
    assert all(t["mood"] in ("negative", "neutral", "positive") for r in report["results"] for t in r["turns"])
    assert "precision 1.00, recall 1.00" in table(report)


async def test_the_three_way_decision_meets_its_targets_on_the_test_split(
    engine: TransformersEngine, settings: Settings
) -> None:
    """#30's targets on the held-out scenarios (English and Chinese): continue / offer / escalate right
    in >= 95%, the reason in >= 90%, escalation precision and recall >= 0.95."""
    rows = read(TEST_SPLIT)
    assert len(rows) >= 150 and {r["lang"] for r in rows} == {"en", "zh"}
    report = await evaluate(engine, settings, rows)
    measured(f"eval-escalation three-way test split: {table(report).splitlines()[1]}")
    assert report["decision_accuracy"] >= 0.95 and report["reason_accuracy"] >= 0.90
    assert report["precision"] >= 0.95 and report["recall"] >= 0.95
    taken = [r for r in report["results"] if r["expected"] == "escalate" and r["expected_reason"] == "loop"]
    assert taken and all(r["decision"] == "escalate" and r["rule"] == "loop" for r in taken)  # the yes, for the loop


def test_scores_count_misses_both_ways() -> None:
    results = [
        {"id": "a", "expected": True, "escalated": True, "turn": 1, "rule": "high_negative", "turns": []},
        {"id": "b", "expected": True, "escalated": False, "turn": None, "rule": None, "turns": []},
        {"id": "c", "expected": False, "escalated": True, "turn": 2, "rule": "repeated_negative", "turns": []},
        {"id": "d", "expected": False, "escalated": False, "turn": None, "rule": None, "turns": []},
    ]
    report = score(results)
    assert (report["precision"], report["recall"]) == (0.5, 0.5)
    assert [m["id"] for m in report["misses"]] == ["b", "c"]

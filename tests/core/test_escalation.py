"""The escalation policy, as a table: every trigger, hysteresis, cooldown, reset, and what must not escalate."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import load_settings
from core.escalation import Decision, EscalationState, Route, decide, route
from core.events import Mood
from core.offers import OfferState
from core.phrases import answer_of, asks_for_human

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
POLICY = load_settings(environ={}).escalation


def mood(label: str, p: float = 0.7) -> Mood:
    rest = (1 - p) / 2
    return Mood.from_scores({name: p if name == label else rest for name in ("negative", "neutral", "positive")})


NEG, NEG_SURE, NEU, POS = mood("negative", 0.62), mood("negative", 0.95), mood("neutral"), mood("positive")


@pytest.mark.parametrize(
    ("moods", "text", "state", "expected"),
    [
        ([NEG_SURE], "This is a disaster!", EscalationState(), Decision("offer", "high_negative")),
        ([NEG, POS, NEG], "still broken", EscalationState(), Decision("offer", "repeated_negative")),
        ([NEG, NEG], "again broken", EscalationState(), Decision("offer", "repeated_negative")),
        ([POS], "Can I talk to a human please?", EscalationState(), Decision("escalate", "asked_for_human")),
        ([NEU], "I want a REAL PERSON.", EscalationState(), Decision("escalate", "asked_for_human")),
        ([NEU], "agent", EscalationState(), Decision("offer", "vague_request")),  # bare: offered first
        ([NEU], "人工", EscalationState(), Decision("offer", "vague_request")),
        ([NEU], "转人工", EscalationState(), Decision("escalate", "asked_for_human")),
        ([NEG], "我要人工服务", EscalationState(), Decision("escalate", "asked_for_human")),
        # must not escalate
        ([NEG], "meh, a bit slow today", EscalationState(), Decision()),
        ([POS, POS, NEG], "the colour is a little off", EscalationState(), Decision()),
        ([NEG, NEG, POS], "ok that works now", EscalationState(), Decision()),
        ([NEG, POS, POS, NEG], "hmm, slow again", EscalationState(), Decision()),  # the streak reset it
        ([NEG, NEU, NEU, NEG], "not great", EscalationState(), Decision()),
        ([NEU], "The agents' fees are listed where?", EscalationState(), Decision()),
        ([NEU], "我在学习人工智能", EscalationState(), Decision()),
        ([NEG_SURE], "This is a disaster!", EscalationState(open=True), Decision()),  # one open at a time
        ([NEU], "human please", EscalationState(open=True), Decision()),
        ([NEG_SURE], "awful", EscalationState(last_resolved_at=NOW - timedelta(minutes=5)), Decision()),
        ([], "", EscalationState(), Decision()),
    ],
)
def test_policy_table(moods: list[Mood], text: str, state: EscalationState, expected: Decision) -> None:
    assert decide(POLICY, moods, text, state, NOW) == expected


def test_cooldown_ends() -> None:
    after = EscalationState(last_resolved_at=NOW - timedelta(minutes=31))
    assert decide(POLICY, [NEG_SURE], "awful", after, NOW).action == "offer"
    naive = EscalationState(last_resolved_at=(NOW - timedelta(minutes=1)).replace(tzinfo=None))
    assert decide(POLICY, [NEG_SURE], "awful", naive, NOW).action == "continue"


def test_thresholds_come_from_settings() -> None:
    strict = dataclasses.replace(POLICY, high_negative=0.6, negatives=3, window=3, offer_first=False)
    assert decide(strict, [NEG], "bad", EscalationState(), NOW) == Decision("escalate", "high_negative")
    lenient = dataclasses.replace(POLICY, high_negative=0.99, negatives=3, window=3)
    assert not decide(lenient, [NEG, NEG_SURE], "bad", EscalationState(), NOW).escalate
    assert not decide(dataclasses.replace(POLICY, enabled=False), [NEG_SURE], "human", EscalationState(), NOW).escalate


@pytest.mark.parametrize(
    "text",
    [
        "HUMAN!!", "can I speak to someone?", "Agent.", "let me talk to an operator", "请帮我转 人工", "我要真人",
        "I'd like to speak to a supervisor about my account.", "Put me through to a manager, now.", "operator please",
        "get me a real person", "Is there any way I can talk with a live agent?", "人工", "我要找真人客服。",
        "能帮我联系一下客服吗", "Transfer me to customer service", "real person please",
    ],
)  # fmt: skip
def test_human_requests_are_matched_as_intent(text: str) -> None:
    assert asks_for_human(text, POLICY)


@pytest.mark.parametrize(
    "text",
    [
        "humane treatment", "the agency called", "人工智能真厉害", "my user agent is old",
        "Does your API support a custom agent name in the headers?", "Is this product safe for human skin?",
        "Can I change the agent on my policy?", "agent name?", "The manager of my building signed for it.",
        "我想了解一下人工智能产品", "I need a refund", "The operator of the site is you?",
    ],
)  # fmt: skip
def test_lookalikes_are_not_human_requests(text: str) -> None:
    assert not asks_for_human(text, POLICY)


def test_an_escalation_status_and_actions_are_computed_in_one_place() -> None:
    """open -> take or resolve; with a person -> resolve; resolved -> nothing (every desk, the
    console and the API show these)."""
    from core.escalations import EscalationRecord
    from core.events import ConversationKey

    now = datetime.now(UTC)
    opened = EscalationRecord(1, ConversationKey("p", "c"), "anger", [], now, None, None, None)
    taken = dataclasses.replace(opened, taken_by="ana", taken_at=now)
    resolved = dataclasses.replace(taken, resolved_at=now, resolved_by="ana")
    assert [(r.status, r.actions, r.with_human) for r in (opened, taken, resolved)] == [
        ("open", ("take", "resolve"), False),
        ("with_human", ("resolve",), True),
        ("resolved", (), False),
    ]


def test_the_route_of_a_turn() -> None:
    notify = POLICY
    pause = dataclasses.replace(POLICY, mode="pause")
    taken = EscalationState(open=True, escalation_id=1, with_human=True)
    open_ = EscalationState(open=True, escalation_id=1)
    assert route(notify, EscalationState(), False, "neutral") == Route()
    assert route(notify, EscalationState(), False, "negative") == Route(soothing=True)
    assert route(notify, open_, True, "neutral") == Route(soothing=True)  # escalated: soothing from now on
    assert route(pause, open_, True, "negative") == Route(paused=True, line=pause.pause_line)  # said once
    assert route(pause, open_, False, "negative") == Route(paused=True)  # then silence
    assert route(notify, taken, False, "positive") == Route(paused=True)  # a person has it, in every mode
    assert route(None, EscalationState(), False, "negative") == Route(soothing=True)


OFFERED = OfferState(pending="high_negative", pending_id=1, made=True)
DECLINED = OfferState(made=True)


@pytest.mark.parametrize(
    ("moods", "text", "offers", "earlier", "expected"),
    [
        # the answer to a pending offer: yes escalates for the offer's reason, anything else declines
        ([NEU], "yes please", OFFERED, (), Decision("escalate", "high_negative")),
        ([NEU], "好的，谢谢", OFFERED, (), Decision("escalate", "high_negative")),
        ([NEU], "agent", OFFERED, (), Decision("escalate", "high_negative")),
        ([NEU], "no thanks, just tell me where it is", OFFERED, (), Decision()),
        ([NEG_SURE], "不用了", OFFERED, (), Decision()),
        ([NEG_SURE], "What a mess.", OFFERED, (), Decision()),  # not a yes: declined, no second offer
        # declined before: a bad mood or a loop offers nothing more; asking again (even bare) escalates
        ([NEG_SURE], "This is a disaster!", DECLINED, (), Decision()),
        ([NEU], "agent please", DECLINED, (), Decision("escalate", "asked_for_human")),
        ([NEU], "Can I talk to a manager?", OFFERED, (), Decision("escalate", "asked_for_human")),
        # a loop: the third time the same question
        ([NEU], "Where is my order #4471?", OfferState(), ("Where is my order?", "where is my order 4471??"),
         Decision("offer", "loop")),
        ([NEU], "我的订单到底在哪里？", OfferState(), ("我的订单在哪里", "hello", "我的订单到底在哪里"),
         Decision("offer", "loop")),
        ([NEU], "Where is my order #4471?", OfferState(), ("Where is my order?",), Decision()),  # twice
        ([NEU], "ok thanks", OfferState(), ("ok thanks", "ok thanks"), Decision()),  # short: no loop
        ([NEU], "How do I reset my password?", OfferState(), ("Where is my order?", "Can I change my address?"),
         Decision()),
    ],
)  # fmt: skip
def test_offers_and_loops(
    moods: list[Mood], text: str, offers: OfferState, earlier: tuple[str, ...], expected: Decision
) -> None:
    assert decide(POLICY, moods, text, EscalationState(), NOW, offers, earlier) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes please", "yes"), ("Sure, go ahead.", "yes"), ("ok", "yes"), ("好的", "yes"), ("要", "yes"),
        ("no thanks", "no"), ("No, just fix it", "no"), ("不要了吧", "no"), ("不用", "no"),
        ("yesterday it broke", ""), ("好烦啊我的订单呢", ""), ("where is my order", ""),
    ],
)  # fmt: skip
def test_answers_to_the_offer(text: str, expected: str) -> None:
    assert answer_of(text, POLICY) == expected

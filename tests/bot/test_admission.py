"""Allowlists and the per-user rate limit."""

from bot.admission import REFUSED, SLOW_DOWN, Admission, RateLimit, allowed
from core.events import ConversationKey, IncomingMessage


def test_empty_allowlists_allow_everyone_and_either_list_admits() -> None:
    assert allowed("u1", "c1", (), ())
    assert allowed("u1", "c9", ("u1",), ())
    assert allowed("u9", "c1", (), ("c1",))
    assert not allowed("u9", "c9", ("u1",), ("c1",))


def test_rate_limit_is_a_sliding_minute_per_user() -> None:
    now = [0.0]
    limit = RateLimit(2, clock=lambda: now[0])
    assert limit.hit("a") and limit.hit("a") and not limit.hit("a")
    assert limit.hit("b")
    now[0] = 59.9
    assert not limit.hit("a")
    now[0] = 60.0
    assert limit.hit("a")
    assert RateLimit(0).hit("a")


def test_admission_refuses_once_then_stays_silent_and_limits_each_user() -> None:
    def msg(user: str, chat: str = "c1") -> IncomingMessage:
        return IncomingMessage(ConversationKey("any", chat), user_id=user, text="hi")

    gate = Admission(users=("u1", "u2"), chats=(), per_minute=1)
    assert gate.check(msg("u9")) == REFUSED and gate.check(msg("u9")) == ""
    assert gate.check(msg("u1")) is None and gate.check(msg("u1")) == SLOW_DOWN
    assert gate.check(msg("u2")) is None


def test_a_flooder_is_told_once_a_minute_and_quiet_users_are_forgotten() -> None:
    """Regression (#25, low): every over-limit message was answered; per-user state was never evicted."""
    admission = Admission((), (), per_minute=2)
    msg = IncomingMessage(ConversationKey("test", "c"), user_id="flooder", text="x")
    answers = [admission.check(msg) for _ in range(20)]
    assert answers[:2] == [None, None] and answers[2] == SLOW_DOWN and answers[3:] == [""] * 17
    clock = [0.0]
    limit = RateLimit(5, clock=lambda: clock[0])
    for n in range(1000):
        limit.hit(f"user-{n}")
    clock[0] = 61.0
    limit.hit("someone")
    assert len(limit._seen) == 1

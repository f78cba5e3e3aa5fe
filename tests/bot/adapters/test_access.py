"""Allowlists and the per-user rate limit."""

from bot.adapters.access import RateLimit, allowed


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

"""What agents see of a customer's turn cannot pass for tonebot's own status lines (#25, low)."""

from datetime import UTC, datetime

from bot.desk import for_agents
from core.memory import StoredMessage


def test_a_customer_cannot_fake_a_status_line_in_the_agents_thread() -> None:
    turn = StoredMessage(1, "user", "u1", "thanks\n✅ Resolved by slack:Dana — the bot answers again.", None,
                         datetime.now(UTC), author_name="Eve\n🙋 Taken over by slack:Mallory")  # fmt: skip
    lines = for_agents(turn).splitlines()
    assert lines[0].startswith("💬 Eve 🙋 Taken over") and lines[1].startswith("│ ✅ Resolved")
    assert all(line.startswith(("💬", "│")) for line in lines)

"""Storage, on SQLite and on a real PostgreSQL server: migrations match the models, the ledger
dedupes, turns of one conversation are ordered across processes."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bot import migrate
from bot.config import Settings
from bot.notify import Notifications
from core import ledger as ledger_module
from core.db import Base, Database
from core.escalations import EscalationStore
from core.events import ConversationKey, IncomingMessage
from core.ledger import Accepted, Ledger, Seen
from core.memory import Memory
from core.outbox import Outbox
from tests.auxil.collecting import CollectingChannel
from tests.auxil.postgres import on_both_databases  # noqa: F401  (the fixture: SQLite and PostgreSQL)

KEY42 = ConversationKey("telegram", "42")


async def test_migrations_on_an_empty_database_match_the_models(memory: Memory) -> None:
    def differences(connection):  # type: ignore[no-untyped-def]
        from core.knowledge.store import FULL_TEXT

        context = MigrationContext.configure(connection, opts={"include_object": lambda o, n, *_: n not in FULL_TEXT})
        return compare_metadata(context, Base.metadata)

    async with memory.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"conversations", "messages", "processed_events", "alembic_version"} <= tables


async def test_sqlite_runs_in_wal_mode(memory: Memory) -> None:
    if memory.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    async with memory.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_the_ledger_accepts_an_event_once_even_when_it_arrives_twice_at_once(
    memory: Memory, ledger: Ledger
) -> None:
    msg = IncomingMessage(ConversationKey("test", "c"), user_id="u", text="hi", event_id="e-1")
    results = await asyncio.gather(*(ledger.accept(msg) for _ in range(4)))
    assert sum(isinstance(r, Accepted) for r in results) == 1
    assert sum(isinstance(r, Seen) for r in results) == 3
    assert len(await memory.messages(msg.key)) == 1


async def test_the_same_event_id_on_another_platform_is_a_different_event(memory: Memory, ledger: Ledger) -> None:
    a = IncomingMessage(ConversationKey("telegram", "c"), user_id="u", text="hi", event_id="7")
    b = IncomingMessage(ConversationKey("slack", "c"), user_id="u", text="hi", event_id="7")
    assert isinstance(await ledger.accept(a), Accepted)
    assert isinstance(await ledger.accept(b), Accepted)


async def test_turns_of_one_conversation_are_serialized_across_processes(db_url: str, memory: Memory) -> None:
    """Two Memory objects stand for two replicas; on PostgreSQL the advisory lock orders them."""
    other = Memory.open(db_url)
    key, order = ConversationKey("test", "locked"), []

    async def turn(store: Memory, name: str) -> None:
        async with store.turn_lock(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.2)
            order.append(f"{name} out")

    try:
        await asyncio.gather(turn(memory, "a"), turn(other, "b"))
    finally:
        await other.aclose()
    if memory.engine.dialect.name == "postgresql":
        assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    else:  # one process per SQLite file: the Bot's in-process lock does the ordering there
        assert sorted(order) == ["a in", "a out", "b in", "b out"]


async def test_another_conversation_is_not_blocked_by_the_lock(memory: Memory) -> None:
    async with memory.turn_lock(ConversationKey("test", "one")):
        await asyncio.wait_for(_enter(memory, ConversationKey("test", "two")), timeout=5)


async def _enter(memory: Memory, key: ConversationKey) -> None:
    async with memory.turn_lock(key):
        pass


DESTS = ("webhook:a", "slack:b")


async def test_an_escalation_opens_once_and_its_deliveries_are_claimed_by_one_replica(
    db_url: str, memory: Memory, ledger: Ledger
) -> None:
    msg = IncomingMessage(ConversationKey("test", "esc"), user_id="u", text="I want a human", event_id="x-1")
    accepted = await ledger.accept(msg)
    assert isinstance(accepted, Accepted)
    store, outbox = EscalationStore(memory.db), Outbox(memory.db)
    opened = await asyncio.gather(
        *(store.open(accepted.conversation_id, "asked_for_human", [], ("webhook:a", "slack:b")) for _ in range(3))
    )
    assert sum(r is not None for r in opened) == 1
    assert (await store.state(accepted.conversation_id)).open

    other = Database.open(db_url)  # a second replica
    try:
        claims = await asyncio.gather(outbox.claim_due(DESTS), Outbox(other).claim_due(DESTS))
    finally:
        await other.aclose()
    claimed = [d.destination for batch in claims for d in batch]
    assert sorted(claimed) == ["slack:b", "webhook:a"]  # each delivery exactly once
    assert await outbox.claim_due(DESTS) == []  # leased, not due again yet

    first = claims[0][0] if claims[0] else claims[1][0]
    await outbox.delivered(first, "ConnectError: refused", retry_in=0)
    [again] = await outbox.claim_due(DESTS)
    assert again.id == first.id and again.attempts == 1 and again.last_error == "ConnectError: refused"
    assert await outbox.delivered(first, None, retry_in=0) is None  # the old claim no longer holds it
    await outbox.delivered(again, None, retry_in=0)
    assert await outbox.claim_due(DESTS) == []
    record = await store.resolve(opened[[r is not None for r in opened].index(True)].id, "ops")
    assert record is not None and record.resolved_by == "ops"
    assert not (await store.state(accepted.conversation_id)).open


async def test_a_message_that_fails_to_store_leaves_no_ledger_row_behind(memory: Memory, ledger: Ledger) -> None:
    """Regression (#14 A.2): on SQLite, releasing the ledger's savepoint committed it, so a retry of an
    event whose user turn failed to store was answered as a duplicate with an empty reply."""
    bad = IncomingMessage(ConversationKey("test", "atomic"), user_id="u", text="broken \ud800", event_id="a-1")
    with pytest.raises(Exception):  # noqa: B017 - the driver's encoding error, whatever its class
        await ledger.accept(bad)
    good = IncomingMessage(ConversationKey("test", "atomic"), user_id="u", text="fine", event_id="a-1")
    assert isinstance(await ledger.accept(good), Accepted)
    assert [m.text for m in await memory.messages(good.key)] == ["fine"]


OLD_LEDGER_ROWS = (
    "INSERT INTO conversations (id, platform, chat_id, thread_id, context_from, created_at) "
    "VALUES (1, 'telegram', '42', '', 0, CURRENT_TIMESTAMP)",
    "INSERT INTO messages (id, conversation_id, role, author_id, author_name, text, created_at) "
    "VALUES (1, 1, 'user', 'u', '', 'hi', CURRENT_TIMESTAMP)",
    "INSERT INTO processed_events (platform, event_id, message_id, status, created_at) VALUES "
    "('telegram', '7', 1, 'answered', CURRENT_TIMESTAMP), ('telegram', '8', NULL, 'answered', CURRENT_TIMESTAMP)",
)


async def upgraded(db_url: str, revision: str, rows: Sequence[str]) -> Database:
    """A database at `revision` with `rows` written the way that schema had them, then upgraded to head."""
    await asyncio.to_thread(migrate.upgrade, db_url, revision)
    db = Database.open(db_url)
    async with db.engine.begin() as connection:
        for statement in rows:
            await connection.execute(text(statement))
    await asyncio.to_thread(migrate.upgrade, db_url)
    return db


async def test_the_ledger_migration_keys_old_events_by_their_conversation(db_url: str) -> None:
    db = await upgraded(db_url, "0004", OLD_LEDGER_ROWS)
    try:
        async with db.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT conversation_id, event_id FROM processed_events"))).all()
    finally:
        await db.aclose()
    assert [tuple(r) for r in rows] == [(1, "7")]  # the forgotten event (no turn left) has no conversation


async def test_recovery_claims_each_owed_event_once_across_replicas(
    memory: Memory, ledger: Ledger, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(#14) Events stored and never answered are claimed by recovery, and answers stored and never
    delivered by the outbox (their `reply` rows), each by exactly one replica (FOR UPDATE SKIP
    LOCKED on PostgreSQL), oldest first; a delivered answer is owed nothing, and an event older than
    the window is given up instead of answered."""
    key = ConversationKey("telegram", "owed")
    stored = [IncomingMessage(key, user_id="u", text=f"q{n}", event_id=f"s-{n}", message_id=str(n)) for n in range(4)]
    for msg in stored:
        assert await ledger.store(msg)
    assert not await ledger.store(stored[0])  # a redelivery is stored once
    undelivered = await ledger.accept(IncomingMessage(key, user_id="u", text="q", event_id="u-1", message_id="9"))
    delivered = await ledger.accept(IncomingMessage(key, user_id="u", text="q", event_id="d-1"))
    assert isinstance(undelivered, Accepted) and isinstance(delivered, Accepted)
    await ledger.record_reply(delivered, "the answer, sent", failed=False)
    await ledger.delivered(key, "d-1")
    monkeypatch.setattr(ledger_module, "LEASE", timedelta(seconds=-1))  # its answerer dies after storing it
    await ledger.record_reply(undelivered, "the answer, never sent", failed=False)
    monkeypatch.undo()
    assert await Outbox(memory.db).claim_due(["customer"], platforms=["bench"]) == []  # owed on telegram only
    other = Database.open(db_url)  # a second replica
    try:
        claims = await asyncio.gather(*(m.claim_owed(timedelta(hours=1), 3) for m in (ledger, Ledger(other))))
        replies = await asyncio.gather(
            *(Outbox(d).claim_due(["customer"], platforms=["telegram"]) for d in (memory.db, other))
        )
    finally:
        await other.aclose()
    owed = [msg for batch, _ in claims for msg in batch]
    assert [msg.message_id for msg in owed] == ["0", "1", "2", "3"]  # each once, oldest first
    [reply] = [delivery for batch in replies for delivery in batch]
    turn = await memory.message(reply.message_id or 0)
    assert (
        (reply.kind, reply.reply_to, reply.ref) == ("reply", "9", None)
        and turn
        and turn.text == "the answer, never sent"
    )
    assert await ledger.claim_owed(timedelta(hours=1), 3) == ([], [])  # claimed: not owed twice
    assert await Outbox(memory.db).claim_due(["customer"], platforms=["telegram", "web"]) == []
    late = IncomingMessage(ConversationKey("web", "late"), user_id="u", text="old", event_id="late-1")
    assert await ledger.store(late)
    owed_now, given_up = await ledger.claim_owed(timedelta(seconds=-1), 3)
    assert owed_now == [] and given_up == ["web:late-1"]


async def test_relays_are_queued_once_and_go_under_their_sent_notice_across_replicas(
    memory: Memory, ledger: Ledger, db_url: str
) -> None:
    """(#15) A relay is unique per (escalation, destination, turn), and one to an agents' thread is
    due only once the notice that opens the thread is sent; each is claimed by one replica."""
    from core.outbox import CUSTOMER, queue

    RELAYED = ("slack:C1", CUSTOMER)

    accepted = await ledger.accept(IncomingMessage(ConversationKey("test", "relay"), user_id="u", text="hi"))
    assert isinstance(accepted, Accepted)
    store, outbox = EscalationStore(memory.db), Outbox(memory.db)
    record = await store.open(accepted.conversation_id, "asked_for_human", [], ("slack:C1",))
    assert record is not None
    for _ in range(2):  # queued twice (a redelivery): once
        async with memory.db.session() as session, session.begin():
            added = await queue(session, record.id, ["slack:C1", CUSTOMER], accepted.message_id)
    assert added == 0
    other = Database.open(db_url)  # a second replica
    try:
        claims = await asyncio.gather(outbox.claim_due(RELAYED), Outbox(other).claim_due(RELAYED))
    finally:
        await other.aclose()
    claimed = sorted((d.kind, d.destination) for batch in claims for d in batch)
    assert claimed == [("notice", "slack:C1"), ("relay", CUSTOMER)]  # the thread's relay waits for its notice
    [notice] = [d for batch in claims for d in batch if d.kind == "notice"]
    await outbox.delivered(notice, None, retry_in=0, ref="1800000000.000001")
    [relay] = await outbox.claim_due(RELAYED)
    assert (relay.destination, relay.thread, relay.message_id) == ("slack:C1", "1800000000.000001", accepted.message_id)
    assert (await store.find("slack:C1", "1800000000.000001")) == await store.get(record.id)


async def test_a_conversation_keeps_the_platforms_latest_reference_until_it_is_forgotten(
    memory: Memory, ledger: Ledger
) -> None:
    key = ConversationKey("test", "with-ref")
    assert await memory.ref(key) == ""
    await ledger.store(IncomingMessage(key, user_id="u", text="hi", event_id="r-1", ref="https://smba.example/eu/"))
    assert await memory.ref(key) == "https://smba.example/eu/"
    await ledger.accept(IncomingMessage(key, user_id="u", text="again", event_id="r-2", ref="https://smba.example/us/"))
    await ledger.accept(IncomingMessage(key, user_id="u", text="no ref given", event_id="r-3"))
    assert await memory.ref(key) == "https://smba.example/us/"  # the latest given
    await memory.forget(key, "u")
    assert await memory.ref(key) == ""  # it may name the person


OLD_TOPIC_NOTICE = (
    "INSERT INTO conversations (id, platform, chat_id, thread_id, context_from, created_at) "
    "VALUES (1, 'slack', 'D1', '', 0, CURRENT_TIMESTAMP)",
    "INSERT INTO escalations (id, conversation_id, reason, scores, opened_at) "
    "VALUES (1, 1, 'asked_for_human', '[]', CURRENT_TIMESTAMP)",
    "INSERT INTO deliveries (escalation_id, destination, kind, ref, status, attempts, next_attempt_at, created_at)"
    " VALUES (1, 'telegram:-1001', 'notice', 't7:42', 'sent', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP),"
    " (1, 'telegram:-1001', 'relay', '43', 'sent', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
)


async def test_a_topic_notice_stored_before_the_upgrade_is_found_by_its_exact_pieces(db_url: str) -> None:
    """0012: the store matches a desk's candidate refs exactly (no platform's "t7:42" format in the
    core); a Telegram topic notice is two pieces, "t7,42", and rows stored before are moved."""
    db = await upgraded(db_url, "0011", OLD_TOPIC_NOTICE)
    try:
        async with db.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT ref FROM deliveries ORDER BY id"))).all()
        store = EscalationStore(db)
        found = [await store.find("telegram:-1001", ref) for ref in ("t7", "42", "43", "t7:42", "7")]
    finally:
        await db.aclose()
    assert [r[0] for r in rows] == ["t7,42", "43"]
    assert [record.id if record else None for record in found] == [1, 1, 1, None, None]


OLD_UNDELIVERED = (
    "INSERT INTO conversations (id, platform, chat_id, thread_id, context_from, created_at) "
    "VALUES (1, 'telegram', '42', '', 0, CURRENT_TIMESTAMP)",
    "INSERT INTO messages (id, conversation_id, role, author_id, author_name, text, created_at) VALUES "
    "(1, 1, 'user', 'u', '', 'Where is my parcel?', CURRENT_TIMESTAMP), "
    "(2, 1, 'assistant', 'tonebot', '', 'On its way.', CURRENT_TIMESTAMP), "
    "(3, 1, 'user', 'u', '', 'Thanks', CURRENT_TIMESTAMP), "
    "(4, 1, 'assistant', 'tonebot', '', 'You are welcome.', CURRENT_TIMESTAMP), "
    "(5, 1, 'agent', 'a1', 'Ana', 'Ana here.', CURRENT_TIMESTAMP)",
    "INSERT INTO processed_events (conversation_id, event_id, message_id, reply_id, status, attempts, "
    "platform_message_id, sent_ids, delivered_at, created_at) VALUES "
    "(1, 'e-1', 1, 2, 'answered', 1, 'm-1', '[\"1\"]', NULL, CURRENT_TIMESTAMP), "  # killed mid-answer
    "(1, 'e-2', 3, 4, 'answered', 1, 'm-3', '[\"2\"]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",  # delivered
    "INSERT INTO escalations (id, conversation_id, reason, scores, opened_at) "
    "VALUES (1, 1, 'asked_for_human', '[]', CURRENT_TIMESTAMP)",
    "INSERT INTO deliveries (escalation_id, destination, kind, message_id, status, attempts, next_attempt_at, "
    "created_at) VALUES (1, 'customer', 'relay', 5, 'pending', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
)


async def test_what_was_owed_under_the_old_schema_is_delivered_exactly_once_after_the_upgrade(
    db_url: str, settings: Settings
) -> None:
    """0013, one outbox: an answer stored and half sent (its preview posted) under 0012 and an agent's
    relay still queued are finished once by the one dispatcher, the preview edited, not posted again;
    an answer delivered before is not sent again."""
    channel = CollectingChannel()
    preview, done = await channel.post(KEY42, "On its"), await channel.post(KEY42, "You are welcome.")
    assert (preview.id, done.id) == ("1", "2")  # the ids the old rows noted
    db = await upgraded(db_url, "0012", OLD_UNDELIVERED)
    try:
        notifications = Notifications(Memory(db), EscalationStore(db), Outbox(db), settings)
        notifications.attach({}, {"telegram": channel})
        for _ in range(2):  # a second round (another replica, a restart) sends nothing more
            await notifications.deliver_due()
        async with db.engine.connect() as connection:
            rows = (await connection.execute(text("SELECT kind, status, ref FROM deliveries ORDER BY id"))).all()
        await notifications.aclose()
    finally:
        await db.aclose()
    assert channel.posted["1"].versions == ["On its", "On its way."]  # edited into the answer
    assert channel.posted["2"].versions == ["You are welcome."]
    assert [m.text for m in channel.messages] == ["On its way.", "You are welcome.", "Ana: Ana here."]
    assert sorted(tuple(r) for r in rows) == [("relay", "sent", "3"), ("reply", "sent", "1")]

"""One outbox: the bot's answers are `reply` rows in deliveries (was: sent_ids and delivered_at on
the ledger); undelivered answers and the ids of what was posted of them move over

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 01:40:00

"""

import json
from datetime import datetime, timedelta, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

MOVED = timedelta(hours=24)  # answers older than this were given up by recovery (its window is an hour by default)
events = sa.table(
    "processed_events",
    *(sa.column(name) for name in ("id", "status", "reply_id")),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in ("created_at", "delivered_at")),
    sa.column("sent_ids", sa.JSON),
)
deliveries = sa.table(
    "deliveries",
    *(sa.column(n) for n in ("ledger_id", "destination", "kind", "ref", "status", "attempts")),
    *(sa.column(n, sa.DateTime(timezone=True)) for n in ("created_at", "next_attempt_at", "delivered_at")),
)


def _ids(value: object) -> list[str]:
    if isinstance(value, str):  # a JSON column read without its type on some backends
        value = json.loads(value)
    return [str(piece) for piece in value or []]


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("escalation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("ref", existing_type=sa.String(length=256), type_=sa.Text())
        batch_op.add_column(sa.Column("ledger_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_ledger_id_processed_events"), "processed_events", ["ledger_id"], ["id"],
            ondelete="CASCADE",
        )  # fmt: skip
        batch_op.create_unique_constraint(batch_op.f("uq_deliveries_ledger_id"), ["ledger_id"])
    now = datetime.now(timezone.utc)
    owed = sa.select(events.c.id, events.c.status, events.c.reply_id, events.c.sent_ids).where(
        events.c.delivered_at.is_(None), events.c.created_at >= now - MOVED
    )
    rows = []
    for event in op.get_bind().execute(owed):
        answered = event.status in ("answered", "failed") and event.reply_id is not None
        posted = _ids(event.sent_ids)
        if answered or posted:  # an answer to send, or a preview its retry will edit
            rows.append({"ledger_id": event.id, "destination": "customer", "kind": "reply", "ref": ",".join(posted) or None,
                         "status": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now})  # fmt: skip
    if rows:
        op.bulk_insert(deliveries, rows)
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_column("sent_ids")
        batch_op.drop_column("delivered_at")


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    bind, now = op.get_bind(), datetime.now(timezone.utc)
    replies = sa.select(deliveries.c.ledger_id, deliveries.c.ref, deliveries.c.status).where(
        deliveries.c.kind == "reply"
    )
    for reply in bind.execute(replies).all():
        delivered = now if reply.status != "pending" else None
        ids = reply.ref.split(",") if reply.ref else None
        bind.execute(events.update().where(events.c.id == reply.ledger_id).values(sent_ids=ids, delivered_at=delivered))
    bind.execute(events.update().where(events.c.id.not_in(sa.select(deliveries.c.ledger_id).where(
        deliveries.c.kind == "reply", deliveries.c.status == "pending"))).values(delivered_at=now))  # fmt: skip
    bind.execute(deliveries.delete().where(deliveries.c.kind == "reply"))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_deliveries_ledger_id"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_deliveries_ledger_id_processed_events"), type_="foreignkey")
        batch_op.drop_column("ledger_id")
        batch_op.alter_column("ref", existing_type=sa.Text(), type_=sa.String(length=256))
        batch_op.alter_column("escalation_id", existing_type=sa.Integer(), nullable=False)

"""the event ledger keyed by conversation (not platform), with owner, lease and attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 11:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("conversation_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
    op.execute(
        "UPDATE processed_events SET conversation_id = "
        "(SELECT conversation_id FROM messages WHERE messages.id = processed_events.message_id)"
    )
    # events whose user turn is gone (forgotten) have no conversation to belong to
    op.execute("DELETE FROM processed_events WHERE conversation_id IS NULL")
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.alter_column("conversation_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("attempts", existing_type=sa.Integer(), server_default=None)
        batch_op.drop_constraint("uq_processed_events_platform_event_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_processed_events_conversation_id_event_id"), ["conversation_id", "event_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_processed_events_conversation_id_conversations"),
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("platform")


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE processed_events SET platform = "
        "(SELECT platform FROM conversations WHERE conversations.id = processed_events.conversation_id)"
    )
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.alter_column("platform", existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_constraint(batch_op.f("fk_processed_events_conversation_id_conversations"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_processed_events_conversation_id_event_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_processed_events_platform_event_id"), ["platform", "event_id"])
        batch_op.drop_column("attempts")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("owner")
        batch_op.drop_column("conversation_id")

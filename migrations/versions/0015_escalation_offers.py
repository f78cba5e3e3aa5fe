"""escalation_offers: a person offered before escalating, and the customer's answer

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 08:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: Union[str, Sequence[str], None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "escalation_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_escalation_offers_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_escalation_offers_message_id_messages"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_offers")),
        sa.UniqueConstraint("message_id", name=op.f("uq_escalation_offers_message_id")),
    )
    op.create_index(
        op.f("ix_escalation_offers_conversation_id"), "escalation_offers", ["conversation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_escalation_offers_conversation_id"), table_name="escalation_offers")
    op.drop_table("escalation_offers")

"""feedback: a thumb per person on the bot's answers, a rating (1-5) after a hand-off; agents' private
notes on escalations; outcomes of forgotten episodes (counts, no
content); messages indexed by time (the outcome report)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 05:00:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: Union[str, Sequence[str], None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_feedback_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_feedback_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("message_id", "author_id", name=op.f("uq_feedback_message_id_author_id")),
    )
    op.create_index(op.f("ix_feedback_message_id"), "feedback", ["message_id"], unique=False)
    op.create_index(op.f("ix_feedback_conversation_id"), "feedback", ["conversation_id"], unique=False)
    op.create_index(op.f("ix_messages_created_at"), "messages", ["created_at"], unique=False)
    op.create_table(
        "forgotten_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("thumbs_up", sa.Integer(), nullable=False),
        sa.Column("thumbs_down", sa.Integer(), nullable=False),
        sa.Column("first_human_reply_s", sa.Float(), nullable=True),
        sa.Column("handoff_s", sa.Float(), nullable=True),
        sa.Column("grounded", sa.Boolean(), nullable=True),
        sa.Column("start_valence", sa.Float(), nullable=True),
        sa.Column("end_valence", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forgotten_outcomes")),
    )
    op.create_index(op.f("ix_forgotten_outcomes_started_at"), "forgotten_outcomes", ["started_at"], unique=False)
    op.create_table(
        "escalation_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name=op.f("fk_escalation_notes_escalation_id_escalations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_escalation_notes_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_notes")),
        sa.UniqueConstraint("escalation_id", "event_id", name=op.f("uq_escalation_notes_escalation_id_event_id")),
    )
    op.create_index(op.f("ix_escalation_notes_escalation_id"), "escalation_notes", ["escalation_id"], unique=False)
    op.create_index(op.f("ix_escalation_notes_conversation_id"), "escalation_notes", ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_table("escalation_notes")
    op.drop_table("forgotten_outcomes")
    op.drop_index(op.f("ix_messages_created_at"), table_name="messages")
    op.drop_table("feedback")

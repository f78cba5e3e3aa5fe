"""the event ledger carries the delivery of its answer: the platform's ids for the user's message
and for what the bot posted, and when the answer was delivered (the outbox for platform sends)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:20:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("platform_message_id", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("sent_ids", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_processed_events_status"), ["status"], unique=False)
    # everything answered before this revision counts as delivered: nothing old is sent again
    op.execute("UPDATE processed_events SET delivered_at = created_at WHERE status IN ('answered', 'failed')")


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_events_status"))
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("sent_ids")
        batch_op.drop_column("platform_message_id")

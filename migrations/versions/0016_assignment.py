"""assignment: an escalation's assignee and SLA stage; outbox lines said in the desks' threads

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 14:30:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: Union[str, Sequence[str], None] = "0015"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("assignee", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("assignee_desk", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_stage", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("reassigned", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("mention", sa.String(length=256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("mention")
        batch.drop_column("text")
    with op.batch_alter_table("escalations") as batch:
        for column in ("reassigned", "sla_stage", "assigned_at", "assignee_desk", "assignee"):
            batch.drop_column(column)

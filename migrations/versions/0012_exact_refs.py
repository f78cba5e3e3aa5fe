"""Telegram topic notices stored as two pieces, "t<topic>,<message>" (was "t<topic>:<message>"), so
that the store matches an agent's candidate refs exactly

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 22:40:00

"""

from typing import Sequence, Union

from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute(
        "UPDATE deliveries SET ref = REPLACE(ref, ':', ',') WHERE destination LIKE 'telegram:%' AND ref LIKE 't%:%'"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE deliveries SET ref = REPLACE(ref, ',', ':') "
        "WHERE destination LIKE 'telegram:%' AND ref LIKE 't%,%' AND ref NOT LIKE 't%,%,%'"
    )

"""knowledge: documents, passages with vectors, a full-text index (FTS5 on SQLite, GIN on PostgreSQL);
sources and the knowledge outcome of each bot turn

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:40:00

"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "kb_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_documents")),
        sa.UniqueConstraint("source", name=op.f("uq_kb_documents_source")),
    )
    op.create_index(op.f("ix_kb_documents_status"), "kb_documents", ["status"], unique=False)
    op.create_table(
        "kb_passages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("indexed", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["kb_documents.id"],
            name=op.f("fk_kb_passages_document_id_kb_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_passages")),
    )
    op.create_index(op.f("ix_kb_passages_document_id"), "kb_passages", ["document_id"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE kb_fts USING fts5(indexed, tokenize = 'porter unicode61')")
    else:
        op.execute("CREATE INDEX ix_kb_passages_fts ON kb_passages USING gin (to_tsvector('english', indexed))")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sources", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("knowledge", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("knowledge")
        batch_op.drop_column("sources")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE kb_fts")
    op.drop_index(op.f("ix_kb_passages_document_id"), table_name="kb_passages")
    op.drop_table("kb_passages")
    op.drop_index(op.f("ix_kb_documents_status"), table_name="kb_documents")
    op.drop_table("kb_documents")

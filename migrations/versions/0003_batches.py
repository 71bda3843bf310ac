"""batches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:49:02.369554
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("metadata", JSON_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(op.f("ix_batches_owner"), "batches", ["owner"], unique=False)
    op.add_column("jobs", sa.Column("custom_id", sa.String(length=255), nullable=True))
    op.create_index(op.f("ix_jobs_batch_id"), "jobs", ["batch_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_batch_id"), table_name="jobs")
    op.drop_column("jobs", "custom_id")
    op.drop_index(op.f("ix_batches_owner"), table_name="batches")
    op.drop_table("batches")

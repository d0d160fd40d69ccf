"""readings: each subject's metrics downsampled per bucket (history for charts and windows)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reading",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("bucket_s", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("last_at_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind", "site", "subject", "metric", "bucket_s", name=op.f("pk_reading")
        ),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_reading_bucket_s", "reading", ["bucket_s"])


def downgrade() -> None:
    op.drop_index("ix_reading_bucket_s", table_name="reading")
    op.drop_table("reading")

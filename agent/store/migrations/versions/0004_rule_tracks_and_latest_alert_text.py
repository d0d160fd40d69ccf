"""rule tracks (pending `for` timers, firing matches) and an alert's latest text and facts

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rule_track",
        sa.Column("rule_id", sa.String(), nullable=False),
        sa.Column("fact_keys", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("facts", JSON_DOCUMENT, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("alert_keys", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "fact_keys", name=op.f("pk_rule_track")),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("last_matched", JSON_DOCUMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("last_matched")
        batch_op.drop_column("last_message")
    op.drop_table("rule_track")

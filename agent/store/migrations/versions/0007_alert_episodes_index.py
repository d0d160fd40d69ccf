"""an index on alert (dedup_key, id): a new episode finds the key's latest row without a scan

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_dedup_key_id", ["dedup_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_dedup_key_id")

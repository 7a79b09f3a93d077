"""item values

Each accepted return's value of each item for its trust and month (over the trust's
disaggregation, by the item's aggregation), filled when a return is accepted and, for those
accepted before, by the first chart that reads them: a region or national chart reads one row per
(trust, month) rather than one Parquet file each (issue 22).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_values",
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("derived", sa.Boolean(), nullable=False),
        sa.Column("org_code", sa.String(length=16), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("submission_id", "item", "derived"),
    )
    with op.batch_alter_table("item_values", schema=None) as batch_op:
        batch_op.create_index(
            "ix_item_values_item_month_org", ["item", "month", "org_code"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("item_values", schema=None) as batch_op:
        batch_op.drop_index("ix_item_values_item_month_org")
    op.drop_table("item_values")

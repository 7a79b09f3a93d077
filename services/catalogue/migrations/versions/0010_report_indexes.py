"""report indexes

The auditors' burden ledger is paged in the order (month, dataset, trust) of its asks, then the
order each ask's burden was shared out: an index for each, so a page reads its rows from the
indexes rather than sorting every ask link (issue 22).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("asks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_asks_period_dataset_org", ["period", "dataset_code", "org_code"], unique=True
        )
    with op.batch_alter_table("ask_links", schema=None) as batch_op:
        batch_op.create_index("ix_ask_links_ask_id_seq", ["ask_id", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ask_links", schema=None) as batch_op:
        batch_op.drop_index("ix_ask_links_ask_id_seq")
    with op.batch_alter_table("asks", schema=None) as batch_op:
        batch_op.drop_index("ix_asks_period_dataset_org")

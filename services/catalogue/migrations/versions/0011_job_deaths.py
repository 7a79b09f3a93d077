"""job deaths

How many times in a row a job's process died while running it (a worker killed, a reader's abort,
the kernel's OOM killer): a job is given up after jobs.MAX_DEATHS of them, so a file that ends
every process that reads it is rejected after a few tries (issue 22). Any run that ends sets it
back to 0.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deaths", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("deaths")

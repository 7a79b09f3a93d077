"""job leases and queue identity

A running job records the worker holding it (claimed_by) and that worker's last heartbeat
(heartbeat_at): a job whose heartbeat is older than DRB_JOB_LEASE_SECONDS is taken over. A sent
job records the queue it was sent to (sent_to): when the queue answering now is another one
(Redis restarted empty, a new embedded process), the message is gone and the job is re-sent.
Existing rows keep nulls: a sent job with no sent_to is re-sent once by the first sweep, and a
running one with no heartbeat falls back to DRB_JOB_TIMEOUT_SECONDS.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_to", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("claimed_by")
        batch_op.drop_column("sent_to")

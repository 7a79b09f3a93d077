"""token expiry

Every token gets an expiry. Tokens issued before this revision expire DRB_TOKEN_TTL_DAYS (90
unless set) after they were created, so that none lives for ever after the upgrade; the
DRB_ADMIN_TOKEN's stays null (the setting is its lifetime: unsetting or changing it revokes it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import os
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in services/catalogue/auth.py (a migration never imports the live code).
BOOTSTRAP_STEWARD = "DRB-STEWARD"
BOOTSTRAP_TOKEN_LABEL = "DRB_ADMIN_TOKEN"  # noqa: S105 (a label)
DEFAULT_TTL_DAYS = 90


def _ttl_days() -> int:
    value = os.environ.get("DRB_TOKEN_TTL_DAYS", "").strip()
    return (
        int(value) if value.isascii() and value.isdigit() and int(value) > 0 else DEFAULT_TTL_DAYS
    )


def upgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    tokens = sa.table(
        "tokens",
        sa.column("id", sa.String()),
        sa.column("org_code", sa.String()),
        sa.column("label", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    ttl = timedelta(days=_ttl_days())
    bind = op.get_bind()
    # Row by row in Python: date arithmetic differs between SQLite and PostgreSQL, and a
    # broker holds a few hundred tokens at most.
    rows = bind.execute(
        sa.select(tokens.c.id, tokens.c.created_at).where(
            tokens.c.expires_at.is_(None),
            # Not the bootstrap token (spelt out: a null label compares as unknown).
            sa.or_(
                tokens.c.org_code != BOOTSTRAP_STEWARD,
                tokens.c.label.is_(None),
                tokens.c.label != BOOTSTRAP_TOKEN_LABEL,
            ),
        )
    ).all()
    for token_id, created_at in rows:
        bind.execute(
            tokens.update().where(tokens.c.id == token_id).values(expires_at=created_at + ttl)
        )


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")

"""audit tokens and token roles

Every audit event records the token its actor used (``audit_events.token_id``, null for the
system and for the events before this revision, whose hashes do not cover it). Every token has
roles (``tokens.roles``, a JSON list: ``admin`` issues and revokes the organisation's tokens) and
records who issued it (``issued_by_org``, ``issued_by_token``).

Tokens issued before this revision were each issued to their organisation as a whole: they
become its admin tokens, so that a steward cannot issue another token to an organisation that
already holds one (SECURITY.md). Who issued them stays null here; the audit log's
``token.issued`` events name the steward. Downgrading drops the tokens events name: events that
named one no longer verify after it (their hashes covered it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADMIN = "admin"  # as states.TokenRole.ADMIN (a migration never imports the live code)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("issued_by_org", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("issued_by_token", sa.String(length=36), nullable=True))
    tokens = sa.table("tokens", sa.column("roles", sa.JSON()))
    op.get_bind().execute(tokens.update().values(roles=[ADMIN]))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.alter_column("roles", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("issued_by_token")
        batch_op.drop_column("issued_by_org")
        batch_op.drop_column("roles")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("token_id")

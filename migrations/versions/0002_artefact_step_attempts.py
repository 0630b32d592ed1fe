"""jobs.artefact (what the job's architectures are: space, width, classes, dataset, supernet identity) and
jobs.step_attempts (claims of the current engine step; a step that keeps failing fails its job)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artefact", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("step_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("step_attempts")
        batch_op.drop_column("artefact")

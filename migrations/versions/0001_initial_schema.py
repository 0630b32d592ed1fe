"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 13:48:09.890220
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_api_tokens_hash", ["token_hash"], unique=True)

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cur_iteration", sa.Integer(), nullable=False),
        sa.Column("n_tasks", sa.Integer(), nullable=False),
        sa.Column("total_iterations", sa.Integer(), nullable=False),
        sa.Column("pending_state", sa.JSON(), nullable=True),
        sa.Column("step_owner", sa.String(length=200), nullable=True),
        sa.Column("step_lease_expires", sa.Float(), nullable=False),
        sa.Column("step_token", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["api_tokens.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_owner_id", ["owner_id", "id"], unique=False)
        batch_op.create_index("ix_jobs_owner_state_id", ["owner_id", "state", "id"], unique=False)
        batch_op.create_index("ix_jobs_state_step", ["state", "step_lease_expires"], unique=False)

    op.create_table(
        "architectures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("feasible", sa.Boolean(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=True),
        sa.Column("f1", sa.Float(), nullable=True),
        sa.Column("f2", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "key", name="uq_architectures_job_key"),
    )
    with op.batch_alter_table("architectures", schema=None) as batch_op:
        batch_op.create_index("ix_architectures_job_f1", ["job_id", "f1"], unique=False)
        batch_op.create_index("ix_architectures_job_f2", ["job_id", "f2"], unique=False)
        batch_op.create_index("ix_architectures_job_id", ["job_id", "id"], unique=False)
        batch_op.create_index("ix_architectures_job_iteration", ["job_id", "iteration"], unique=False)

    op.create_table(
        "eval_tasks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires", sa.Float(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("n_lost", sa.Integer(), nullable=False),
        sa.Column("n_completions", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "iteration", "key", name="uq_eval_tasks_job_iter_key"),
    )
    with op.batch_alter_table("eval_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_eval_tasks_claim", ["state", "lease_expires", "id"], unique=False)
        batch_op.create_index("ix_eval_tasks_job_iter_state", ["job_id", "iteration", "state"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["api_tokens.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "key", name="uq_idempotency_owner_key"),
    )
    op.create_table(
        "iterations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("n_archive", sa.Integer(), nullable=False),
        sa.Column("hv", sa.Float(), nullable=True),
        sa.Column("surrogate", sa.JSON(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("engine_state", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "k", name="uq_iterations_job_k"),
    )


def downgrade() -> None:

    op.drop_table("iterations")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("eval_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_tasks_job_iter_state")
        batch_op.drop_index("ix_eval_tasks_claim")

    op.drop_table("eval_tasks")
    with op.batch_alter_table("architectures", schema=None) as batch_op:
        batch_op.drop_index("ix_architectures_job_iteration")
        batch_op.drop_index("ix_architectures_job_id")
        batch_op.drop_index("ix_architectures_job_f2")
        batch_op.drop_index("ix_architectures_job_f1")

    op.drop_table("architectures")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_step")
        batch_op.drop_index("ix_jobs_owner_state_id")
        batch_op.drop_index("ix_jobs_owner_id")

    op.drop_table("jobs")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_hash")

    op.drop_table("api_tokens")

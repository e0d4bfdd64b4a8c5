"""Comment store: comments, label history, admin actions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("post_id", sa.String(256), nullable=True),
        sa.Column("post_url", sa.String(2048), nullable=True),
        sa.Column("author", sa.String(256), nullable=True),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pii_masked", sa.String(64), nullable=False),
        sa.Column("predicted_label", sa.String(16), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("review_reasons", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("engagement", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("flags", sa.String(128), nullable=False),
        sa.Column("topics", sa.String(512), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("human_label", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("platform", "external_id", name="uq_comments_platform_external_id"),
    )
    op.create_index("ix_comments_status_label", "comments", ["status", "label"])
    op.create_index("ix_comments_account", "comments", ["account"])
    op.create_index("ix_comments_posted_at", "comments", ["posted_at"])
    op.create_index("ix_comments_created_at", "comments", ["created_at"])

    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "comment_id",
            sa.Integer(),
            sa.ForeignKey("comments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("previous_label", sa.String(16), nullable=False),
        sa.Column("predicted_label", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_label_events_idempotency"),
    )
    op.create_index("ix_label_events_comment", "label_events", ["comment_id"])
    op.create_index("ix_label_events_created_at", "label_events", ["created_at"])

    op.create_table(
        "comment_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "comment_id",
            sa.Integer(),
            sa.ForeignKey("comments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_comment_events_comment", "comment_events", ["comment_id"])


def downgrade() -> None:
    op.drop_table("comment_events")
    op.drop_table("label_events")
    op.drop_table("comments")

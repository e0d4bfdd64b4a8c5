"""Tables of the comment store (SQLAlchemy 2 declarative models).

The Alembic migrations in `service/migrations` create exactly these tables; a test compares
the two. Timestamps are stored as naive UTC and read back as aware UTC on every backend.
Flags and topics are kept as `,a,b,` strings so that one portable `LIKE '%,a,%'` filters them
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

STATUSES = ("new", "answered", "dismissed", "escalated")
# Ids are 32-bit integers (PostgreSQL `integer`); times outside these years are refused at the
# edges (a year-9999 comment would overflow time-zone arithmetic on the admin page).
MAX_COMMENT_ID = 2**31 - 1
MIN_YEAR, MAX_YEAR = 2000, 2100


class YearOutOfRange(ValueError):
    """A valid time outside MIN_YEAR-MAX_YEAR."""


def bounded_time(value: datetime) -> datetime:
    """`value` in UTC (no zone: UTC) within MIN_YEAR-MAX_YEAR, else ValueError (YearOutOfRange
    when only the year is wrong)."""
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("time out of range") from None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise YearOutOfRange(f"time must be within the years {MIN_YEAR}-{MAX_YEAR}")
    return value


def has_nul(*values: object) -> bool:
    """PostgreSQL cannot store a NUL character in text; every edge refuses it."""
    return any(isinstance(value, str) and "\x00" in value for value in values)


PLATFORMS = ("instagram", "facebook", "x", "youtube", "tiktok", "other")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes out, naive UTC in the database; a naive datetime given is UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def join_tags(values: list[str] | tuple[str, ...]) -> str:
    return "," + ",".join(values) + "," if values else ""


def split_tags(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


class Base(DeclarativeBase):
    pass


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("platform", "external_id", name="uq_comments_platform_external_id"),
        Index("ix_comments_status_label", "status", "label"),
        Index("ix_comments_account", "account"),
        Index("ix_comments_posted_at", "posted_at"),
        Index("ix_comments_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(256))
    account: Mapped[str] = mapped_column(String(128))
    post_id: Mapped[str | None] = mapped_column(String(256))
    post_url: Mapped[str | None] = mapped_column(String(2048))
    author: Mapped[str | None] = mapped_column(String(256))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    # The text as submitted, except NIK/KK/phone digits masked before storing.
    text: Mapped[str] = mapped_column(Text)
    pii_masked: Mapped[str] = mapped_column(String(64), default="")
    # The prediction made on arrival.
    predicted_label: Mapped[str] = mapped_column(String(16))
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    review_reasons: Mapped[list[str]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer)
    engagement: Mapped[int] = mapped_column(Integer, default=0)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    flags: Mapped[str] = mapped_column(String(128), default="")
    topics: Mapped[str] = mapped_column(String(512), default="")
    model_version: Mapped[str] = mapped_column(String(128))
    # What the admin works with: the corrected label when there is one, else the prediction.
    label: Mapped[str] = mapped_column(String(16))
    human_label: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="new")
    assignee: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LabelEvent(Base):
    """Append-only history of label corrections."""

    __tablename__ = "label_events"
    __table_args__ = (
        UniqueConstraint("actor", "idempotency_key", name="uq_label_events_idempotency"),
        Index("ix_label_events_comment", "comment_id"),
        Index("ix_label_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16))
    previous_label: Mapped[str] = mapped_column(String(16))
    predicted_label: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CommentEvent(Base):
    """Append-only log of what admins did with a comment: status changes, assignment, notes."""

    __tablename__ = "comment_events"
    __table_args__ = (Index("ix_comment_events_comment", "comment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(128))
    status: Mapped[str | None] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdminUser(Base):
    """A person who logs in to the admin page (`service.web`); the password is an argon2 hash."""

    __tablename__ = "admin_users"
    __table_args__ = (UniqueConstraint("username", name="uq_admin_users_username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(512))
    # "admin" acts on comments; "viewer" only reads the queue and the analytics.
    role: Mapped[str] = mapped_column(String(16), default="admin")
    # The agency accounts the user may see and act on, as ",a,b,"; None: every account.
    accounts: Mapped[str | None] = mapped_column(String(2048))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

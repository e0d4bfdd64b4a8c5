"""What the service does with stored comments: ingest, the priority queue, admin actions,
label corrections, the review list, statistics and the corrections export.

Plain functions over a `Database`; the HTTP routes, the CLI and the admin page call them in
worker threads. Errors are domain exceptions (`NotFound`, `Conflict`, `InvalidQuery`).
"""

from __future__ import annotations

import base64
import binascii
import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

import orjson
from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import PilahError
from service.labels import LABELS
from service.privacy import mask_pii
from service.store.db import Database
from service.store.schema import (
    MAX_COMMENT_ID,
    MIN_YEAR,
    STATUSES,
    Comment,
    CommentEvent,
    LabelEvent,
    bounded_time,
    has_nul,
    join_tags,
    split_tags,
    utcnow,
)

LAPOR_TYPES: Mapping[str, str] = {
    "aspiration": "aspirasi",
    "complaint": "pengaduan",
    "question": "permintaan informasi",
}
EXPORT_FIELDS = (
    "text",
    "label",
    "topic",
    "lapor_type",
    "comment_id",
    "platform",
    "account",
    "predicted_label",
    "model_version",
    "labelled_by",
    "labelled_at",
)
MAX_PAGE = 200
MAX_COUNT = 2_000_000_000  # likes/replies columns are 32-bit integers
OPEN_STATUSES = ("new", "escalated")


class NotFound(PilahError):
    """No such comment (or not one the caller may see)."""


class Conflict(PilahError):
    """The request contradicts an earlier one (an idempotency key reused for another label)."""


class InvalidQuery(PilahError):
    """A malformed cursor or filter."""


# --- ingest -------------------------------------------------------------------------------


def engagement_points(likes: int, replies: int) -> int:
    """0-10: how many citizens a comment visibly speaks for (replies count double)."""
    return min(10, round(3 * math.log2(1 + max(0, likes) + 2 * max(0, replies))))


@dataclass
class IngestOutcome:
    """Per input comment: ("new", id) or ("duplicate", id), in input order; and the label
    predicted for each new comment (by id)."""

    results: list[tuple[str, int]]
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def new(self) -> int:
        return sum(1 for status, _ in self.results if status == "new")

    @property
    def duplicate(self) -> int:
        return sum(1 for status, _ in self.results if status == "duplicate")


def existing_ids(database: Database, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(platform, external_id) -> stored id, for the keys already stored."""
    found: dict[tuple[str, str], int] = {}
    by_platform: dict[str, list[str]] = defaultdict(list)
    for platform, external_id in keys:
        by_platform[platform].append(external_id)
    with database.reading() as session:
        for platform, ids in by_platform.items():
            for start in range(0, len(ids), 500):
                rows = session.execute(
                    select(Comment.external_id, Comment.id).where(
                        Comment.platform == platform,
                        Comment.external_id.in_(ids[start : start + 500]),
                    )
                )
                for external_id, comment_id in rows:
                    found[(platform, external_id)] = comment_id
    return found


def comment_row(comment: Mapping[str, Any], analysis: Mapping[str, Any]) -> dict[str, Any]:
    """The stored row of an incoming comment and its analysis; identity numbers masked."""
    text, masked = mask_pii(comment["text"])
    now = utcnow()
    likes = min(MAX_COUNT, comment.get("likes") or 0)
    replies = min(MAX_COUNT, comment.get("replies") or 0)
    scores = analysis["scores"]
    ranked = sorted(scores.values(), reverse=True)
    spam = "spam" in analysis["flags"]
    return {
        "platform": comment["platform"],
        "external_id": comment["external_id"],
        "account": comment["account"],
        "post_id": comment.get("post_id"),
        "post_url": comment.get("post_url"),
        "author": mask_pii(comment["author"])[0] if comment.get("author") else None,
        "posted_at": comment.get("posted_at"),
        "likes": likes,
        "replies": replies,
        "text": text,
        "pii_masked": ",".join(masked),
        "predicted_label": analysis["label"],
        "scores": dict(scores),
        "confidence": float(analysis["confidence"]),
        "margin": float(ranked[0] - ranked[1]) if len(ranked) > 1 else 1.0,
        "needs_review": bool(analysis["needs_review"]),
        "review_reasons": list(analysis.get("review_reasons", [])),
        "priority": int(analysis["priority"]["score"]),
        "engagement": 0 if spam else engagement_points(likes, replies),
        "reasons": list(analysis["priority"]["reasons"]),
        "flags": join_tags(list(analysis["flags"])),
        "topics": join_tags(list(analysis["topics"])),
        "model_version": analysis["model_version"],
        "label": analysis["label"],
        "human_label": None,
        "status": "new",
        "assignee": None,
        "created_at": now,
        "updated_at": now,
        "answered_at": None,
    }


def insert_comments(database: Database, rows: Sequence[dict[str, Any]]) -> list[int | None]:
    """Insert rows, skipping those whose (platform, external_id) is already stored (also when
    another writer stored it a moment ago). The new id per row, or None for a duplicate."""
    if not rows:
        return []

    def work(session: Session) -> list[int | None]:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(Comment)
            .on_conflict_do_nothing(index_elements=["platform", "external_id"])
            .returning(Comment.platform, Comment.external_id, Comment.id)
        )
        created: dict[tuple[str, str], int] = {}
        for start in range(0, len(rows), 200):
            chunk = list(rows[start : start + 200])
            for platform, external_id, comment_id in session.execute(statement, chunk):
                created[(platform, external_id)] = comment_id
        return [created.get((row["platform"], row["external_id"])) for row in rows]

    return database.write(work)


def ingest(database: Database, model: Any, comments: Sequence[Mapping[str, Any]]) -> IngestOutcome:
    """Store comments not stored yet, each classified on arrival (on its original text, before
    masking); (platform, external_id) already stored, or repeated in the batch, is a duplicate.
    `model` is a `ServingModel`. Blocking: call it from a worker thread."""
    keys = [(c["platform"], c["external_id"]) for c in comments]
    stored = existing_ids(database, keys)
    fresh: dict[tuple[str, str], int] = {}
    for index, key in enumerate(keys):
        if key not in stored and key not in fresh:
            fresh[key] = index
    todo = list(fresh.values())
    analyses = model.analyse_many([comments[i]["text"] for i in todo]) if todo else []
    rows = [comment_row(comments[i], a) for i, a in zip(todo, analyses, strict=True)]
    created = insert_comments(database, rows)
    lost = [key for key, new_id in zip(fresh, created, strict=True) if new_id is None]
    if lost:  # stored by a concurrent writer between our check and our insert
        stored.update(existing_ids(database, lost))
    new_ids = {key: new_id for key, new_id in zip(fresh, created, strict=True) if new_id}
    results: list[tuple[str, int]] = []
    for index, key in enumerate(keys):
        if fresh.get(key) == index and key in new_ids:
            results.append(("new", new_ids[key]))
        else:
            results.append(("duplicate", stored.get(key) or new_ids[key]))
    labels = {
        new_ids[key]: row["predicted_label"]
        for key, row in zip(fresh, rows, strict=True)
        if key in new_ids
    }
    return IngestOutcome(results, labels)


def accounts_of(database: Database, ids: Iterable[int]) -> dict[int, str]:
    """Comment id -> account."""
    wanted = sorted(set(ids))
    found: dict[int, str] = {}
    with database.reading() as session:
        for start in range(0, len(wanted), 500):
            rows = session.execute(
                select(Comment.id, Comment.account).where(
                    Comment.id.in_(wanted[start : start + 500])
                )
            )
            found.update({comment_id: account for comment_id, account in rows})
    return found


# --- reading comments ---------------------------------------------------------------------


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


# Unanswered comments climb the queue as they wait (a public service answers within a day).
WAITING_STEPS: tuple[tuple[timedelta, int], ...] = (
    (timedelta(hours=48), 10),
    (timedelta(hours=24), 7),
    (timedelta(hours=6), 4),
    (timedelta(hours=1), 2),
)


def waiting_points(waited: timedelta) -> int:
    for threshold, points in WAITING_STEPS:
        if waited >= threshold:
            return points
    return 0


def _waiting_expression(as_of: datetime) -> ColumnElement[int]:
    since = func.coalesce(Comment.posted_at, Comment.created_at)
    whens = [(since <= as_of - threshold, literal(points)) for threshold, points in WAITING_STEPS]
    return case(*whens, else_=literal(0))


def queue_score(as_of: datetime) -> ColumnElement[int]:
    """Stored priority (label, urgency, topic, personal data) + engagement + waiting time.
    Spam (priority 0) stays at the bottom; answered or dismissed comments do not wait."""
    waiting = case(
        (or_(Comment.priority == 0, Comment.status.not_in(OPEN_STATUSES)), literal(0)),
        else_=_waiting_expression(as_of),
    )
    return Comment.priority + Comment.engagement + waiting


def comment_view(comment: Comment, as_of: datetime | None = None) -> dict[str, Any]:
    """The API's representation of a stored comment, with the queue's priority reasons."""
    as_of = as_of or utcnow()
    since = comment.posted_at or comment.created_at
    reasons = list(comment.reasons)
    score = comment.priority
    if comment.engagement:
        reasons.append(
            {
                "code": "engagement",
                "detail": f"{comment.likes} likes, {comment.replies} replies",
                "points": comment.engagement,
            }
        )
        score += comment.engagement
    waiting = 0
    if comment.priority > 0 and comment.status in OPEN_STATUSES:
        waiting = waiting_points(as_of - since)
    if waiting:
        reasons.append(
            {"code": "waiting", "detail": f"waiting {_ago(as_of - since)}", "points": waiting}
        )
        score += waiting
    return {
        "id": comment.id,
        "platform": comment.platform,
        "external_id": comment.external_id,
        "account": comment.account,
        "post_id": comment.post_id,
        "post_url": comment.post_url,
        "author": comment.author,
        "posted_at": comment.posted_at,
        "likes": comment.likes,
        "replies": comment.replies,
        "text": comment.text,
        "pii_masked": split_tags(comment.pii_masked),
        "label": comment.label,
        "predicted_label": comment.predicted_label,
        "human_label": comment.human_label,
        "scores": comment.scores,
        "confidence": comment.confidence,
        "needs_review": comment.needs_review and comment.human_label is None,
        "review_reasons": comment.review_reasons if comment.human_label is None else [],
        "flags": split_tags(comment.flags),
        "topics": split_tags(comment.topics),
        "priority": score,
        "priority_reasons": reasons,
        "model_version": comment.model_version,
        "status": comment.status,
        "assignee": comment.assignee,
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "answered_at": comment.answered_at,
    }


@dataclass(frozen=True)
class QueueFilter:
    labels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = OPEN_STATUSES
    platforms: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    needs_review: bool | None = None
    search: str | None = None
    # Per-account scoping of the caller (None: every account).
    allowed_accounts: frozenset[str] | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.labels:
            conditions.append(Comment.label.in_(self.labels))
        if self.statuses:
            conditions.append(Comment.status.in_(self.statuses))
        if self.platforms:
            conditions.append(Comment.platform.in_(self.platforms))
        if self.accounts:
            conditions.append(Comment.account.in_(self.accounts))
        if self.allowed_accounts is not None:
            conditions.append(Comment.account.in_(sorted(self.allowed_accounts)))
        if self.topics:
            conditions.append(or_(*(Comment.topics.contains(f",{t},") for t in self.topics)))
        for flag in self.flags:
            conditions.append(Comment.flags.contains(f",{flag},"))
        posted = func.coalesce(Comment.posted_at, Comment.created_at)
        if self.since is not None:
            conditions.append(posted >= self.since)
        if self.until is not None:
            conditions.append(posted < self.until)
        if self.needs_review is not None:
            unsure = and_(Comment.needs_review.is_(True), Comment.human_label.is_(None))
            conditions.append(unsure if self.needs_review else ~unsure)
        if self.search:
            pattern = (
                "%"
                + self.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            conditions.append(func.lower(Comment.text).like(pattern, escape="\\"))
        return conditions


def encode_cursor(payload: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, keys: Iterable[str]) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise InvalidQuery(BAD_CURSOR) from None
    if not isinstance(payload, dict) or any(key not in payload for key in keys):
        raise InvalidQuery(BAD_CURSOR)
    return payload


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    as_of: datetime
    extra: dict[str, Any] = field(default_factory=dict)


BAD_CURSOR = "cursor: not a cursor returned by this API"


def _as_of_from(payload: Mapping[str, Any]) -> datetime:
    try:
        return bounded_time(datetime.fromisoformat(str(payload["t"])))
    except ValueError:
        raise InvalidQuery(BAD_CURSOR) from None


def _cursor_int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise InvalidQuery(BAD_CURSOR)
    return value


def _cursor_margin(value: Any) -> float:
    if type(value) not in (int, float) or not 0.0 <= value <= 1.0:  # also refuses NaN
        raise InvalidQuery(BAD_CURSOR)
    return float(value)


def queue(
    database: Database, filters: QueueFilter, limit: int = 50, cursor: str | None = None
) -> Page:
    """Comments by descending queue score, then newest id; the score is computed as of the
    first page's time, so paging through is stable while comments wait."""
    limit = max(1, min(limit, MAX_PAGE))
    if cursor:
        payload = decode_cursor(cursor, ("t", "s", "i"))
        as_of = _as_of_from(payload)
        after: tuple[int, int] | None = (
            _cursor_int(payload["s"], -MAX_COMMENT_ID, MAX_COMMENT_ID),
            _cursor_int(payload["i"], 1, MAX_COMMENT_ID),
        )
    else:
        as_of, after = utcnow(), None
    score = queue_score(as_of)
    query = select(Comment, score.label("score")).where(*filters.conditions())
    if after is not None:
        query = query.where(or_(score < after[0], and_(score == after[0], Comment.id < after[1])))
    query = query.order_by(score.desc(), Comment.id.desc()).limit(limit + 1)
    with database.reading() as session:
        rows = session.execute(query).all()
    items = [comment_view(comment, as_of) for comment, _ in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last_comment, last_score = rows[limit - 1]
        next_cursor = encode_cursor({"t": as_of.isoformat(), "s": last_score, "i": last_comment.id})
    return Page(items, next_cursor, as_of)


def review(
    database: Database, filters: QueueFilter, limit: int = 50, cursor: str | None = None
) -> Page:
    """Open, uncorrected comments the model is least sure of (smallest margin between its two
    best labels): the corrections that teach the next model the most."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Comment).where(*filters.conditions(), Comment.human_label.is_(None))
    if cursor:
        payload = decode_cursor(cursor, ("m", "i"))
        margin = _cursor_margin(payload["m"])
        last_id = _cursor_int(payload["i"], 1, MAX_COMMENT_ID)
        query = query.where(
            or_(Comment.margin > margin, and_(Comment.margin == margin, Comment.id > last_id))
        )
    query = query.order_by(Comment.margin.asc(), Comment.id.asc()).limit(limit + 1)
    with database.reading() as session:
        rows = list(session.scalars(query))
    as_of = utcnow()
    items = [comment_view(comment, as_of) for comment in rows[:limit]]
    for item, comment in zip(items, rows, strict=False):
        item["margin"] = comment.margin
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"m": last.margin, "i": last.id})
    return Page(items, next_cursor, as_of)


def _visible(comment: Comment | None, allowed: frozenset[str] | None) -> Comment:
    if comment is None or (allowed is not None and comment.account not in allowed):
        raise NotFound("no such comment")
    return comment


def get_comment(
    database: Database, comment_id: int, allowed: frozenset[str] | None = None
) -> dict[str, Any]:
    with database.reading() as session:
        comment = _visible(session.get(Comment, comment_id), allowed)
        view = comment_view(comment)
        view["history"] = history(session, comment_id)
    return view


def history(session: Session, comment_id: int) -> list[dict[str, Any]]:
    """Label corrections and admin actions on a comment, oldest first."""
    events: list[dict[str, Any]] = []
    for event in session.scalars(
        select(LabelEvent).where(LabelEvent.comment_id == comment_id).order_by(LabelEvent.id)
    ):
        events.append(
            {
                "type": "label",
                "at": event.created_at,
                "actor": event.actor,
                "label": event.label,
                "previous_label": event.previous_label,
                "predicted_label": event.predicted_label,
                "model_version": event.model_version,
            }
        )
    for action in session.scalars(
        select(CommentEvent).where(CommentEvent.comment_id == comment_id).order_by(CommentEvent.id)
    ):
        events.append(
            {
                "type": "action",
                "at": action.created_at,
                "actor": action.actor,
                "status": action.status,
                "assignee": action.assignee,
                "note": action.note,
            }
        )
    events.sort(key=lambda event: event["at"])
    return events


# --- admin actions ------------------------------------------------------------------------


_UNSET: Any = object()


def update_comment(
    database: Database,
    comment_id: int,
    actor: str,
    status: str | None = None,
    assignee: str | None = _UNSET,
    note: str | None = None,
    allowed: frozenset[str] | None = None,
) -> dict[str, Any]:
    """Change status and/or assignee and/or add a note; every change is logged."""
    if status is not None and status not in STATUSES:
        raise InvalidQuery(f"status: one of {', '.join(STATUSES)}")
    if has_nul(note, None if assignee is _UNSET else assignee):
        raise InvalidQuery("note and assignee must not contain a NUL character")
    if note is not None:
        note = mask_pii(note)[0]
    if assignee is not _UNSET and assignee is not None:
        assignee = mask_pii(assignee)[0]

    def work(session: Session) -> dict[str, Any]:
        comment = _visible(session.get(Comment, comment_id), allowed)
        now = utcnow()
        if status is not None and status != comment.status:
            comment.status = status
            comment.answered_at = now if status == "answered" else None
        if assignee is not _UNSET:
            comment.assignee = assignee or None
        comment.updated_at = now
        session.add(
            CommentEvent(
                comment_id=comment.id,
                actor=actor,
                status=status,
                assignee=None if assignee is _UNSET else (assignee or ""),
                note=note,
                created_at=now,
            )
        )
        session.flush()
        view = comment_view(comment, now)
        view["history"] = history(session, comment.id)
        return view

    return database.write(work)


@dataclass(frozen=True)
class LabelOutcome:
    comment: dict[str, Any]
    event_id: int
    replayed: bool


def correct_label(
    database: Database,
    comment_id: int,
    label: str,
    actor: str,
    idempotency_key: str | None = None,
    allowed: frozenset[str] | None = None,
) -> LabelOutcome:
    """Record an admin's label (append-only; the prediction and model version are kept).
    A retry with the same idempotency key replays the first outcome; the same key for a
    different comment or label is a conflict."""
    if label not in LABELS:
        raise InvalidQuery(f"label: one of {', '.join(LABELS)}")

    def replay(session: Session) -> LabelOutcome | None:
        if idempotency_key is None:
            return None
        event = session.scalars(
            select(LabelEvent).where(
                LabelEvent.actor == actor, LabelEvent.idempotency_key == idempotency_key
            )
        ).first()
        if event is None:
            return None
        if event.comment_id != comment_id or event.label != label:
            raise Conflict("Idempotency-Key was already used for another label request")
        comment = _visible(session.get(Comment, comment_id), allowed)
        return LabelOutcome(comment_view(comment), event.id, replayed=True)

    def work(session: Session) -> LabelOutcome:
        earlier = replay(session)
        if earlier is not None:
            return earlier
        comment = _visible(session.get(Comment, comment_id), allowed)
        now = utcnow()
        event = LabelEvent(
            comment_id=comment.id,
            label=label,
            previous_label=comment.label,
            predicted_label=comment.predicted_label,
            model_version=comment.model_version,
            actor=actor,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        session.add(event)
        comment.human_label = label
        comment.label = label
        comment.updated_at = now
        session.flush()
        return LabelOutcome(comment_view(comment, now), event.id, replayed=False)

    try:
        return database.write(work)
    except IntegrityError:
        # Two concurrent retries with one key: the other one won; replay its outcome.
        with database.reading() as session:
            outcome = replay(session)
        if outcome is None:
            raise
        return outcome


# --- statistics ---------------------------------------------------------------------------


def _day(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return str(value)[:10]


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {label: round(counts.get(label, 0) / total, 4) if total else 0.0 for label in LABELS}


def answer_summary(rows: Iterable[Any]) -> dict[str, Any]:
    """Comments, answered, share answered, median hours to answer; each row has `status`,
    `answered_at` and `posted` (when the comment was posted, else stored)."""
    total = 0
    waited: list[float] = []
    for row in rows:
        total += 1
        if row.status == "answered" and row.answered_at is not None:
            waited.append(max(0.0, (row.answered_at - row.posted).total_seconds() / 3600))
    median = statistics.median(waited) if waited else None
    return {
        "total": total,
        "answered": len(waited),
        "answered_share": round(len(waited) / total, 4) if total else 0.0,
        "median_hours_to_answer": round(median, 2) if median is not None else None,
    }


def stats(
    database: Database,
    since: datetime | None = None,
    until: datetime | None = None,
    allowed: frozenset[str] | None = None,
    accounts: Sequence[str] = (),
) -> dict[str, Any]:
    """Label counts and shares per day and per account (label drift), answered shares and
    median time to answer per label and per account."""
    until = until or utcnow() + timedelta(seconds=1)
    since = since or max(until - timedelta(days=30), datetime(MIN_YEAR, 1, 1, tzinfo=UTC))
    filters = QueueFilter(
        statuses=(), since=since, until=until, allowed_accounts=allowed, accounts=tuple(accounts)
    )
    posted = func.coalesce(Comment.posted_at, Comment.created_at)
    day = func.date(posted)
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(LABELS, 0))
    per_day_account: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(LABELS, 0)
    )
    with database.reading() as session:
        grouped = session.execute(
            select(day, Comment.account, Comment.label, func.count())
            .where(*filters.conditions())
            .group_by(day, Comment.account, Comment.label)
        ).all()
        answered_rows = session.execute(
            select(
                Comment.account,
                Comment.label,
                Comment.status,
                posted.label("posted"),
                Comment.answered_at,
            )
            .where(*filters.conditions())
            .where(Comment.flags.not_like("%,spam,%"))
        ).all()
    for raw_day, account, label, count in grouped:
        key = _day(raw_day)
        per_day[key][label] = per_day[key].get(label, 0) + count
        per_day_account[(key, account)][label] = (
            per_day_account[(key, account)].get(label, 0) + count
        )

    by_label = {
        label: answer_summary([r for r in answered_rows if r.label == label]) for label in LABELS
    }
    accounts_seen = sorted({r.account for r in answered_rows})
    by_account = {
        account: answer_summary([r for r in answered_rows if r.account == account])
        for account in accounts_seen
    }
    return {
        "since": since,
        "until": until,
        "days": [
            {"day": key, "total": sum(c.values()), "counts": c, "shares": _shares(c)}
            for key, c in sorted(per_day.items())
        ],
        "days_by_account": [
            {
                "day": key,
                "account": account,
                "total": sum(c.values()),
                "counts": c,
                "shares": _shares(c),
            }
            for (key, account), c in sorted(per_day_account.items())
        ],
        "answers_by_label": by_label,
        "answers_by_account": by_account,
    }


def label_counts_recent(
    database: Database, hours: int = 24
) -> dict[tuple[str, str], tuple[int, float]]:
    """(account, label) -> (count, share of the account's comments) over the last `hours`."""
    since = utcnow() - timedelta(hours=hours)
    with database.reading() as session:
        rows = session.execute(
            select(Comment.account, Comment.label, func.count())
            .where(Comment.created_at >= since)
            .group_by(Comment.account, Comment.label)
        ).all()
    totals: dict[str, int] = defaultdict(int)
    for account, _label, count in rows:
        totals[account] += count
    return {
        (account, label): (count, round(count / totals[account], 4))
        for account, label, count in rows
    }


# --- export ---------------------------------------------------------------------------------


def corrections(
    database: Database, since: datetime | None = None, allowed: frozenset[str] | None = None
) -> Iterator[dict[str, Any]]:
    """Each corrected comment once, with its latest label (in the dataset format)."""
    latest = (
        select(LabelEvent.comment_id, func.max(LabelEvent.id).label("event_id"))
        .group_by(LabelEvent.comment_id)
        .subquery()
    )
    query = (
        select(Comment, LabelEvent)
        .join(latest, latest.c.comment_id == Comment.id)
        .join(LabelEvent, LabelEvent.id == latest.c.event_id)
        .order_by(LabelEvent.id)
    )
    if since is not None:
        query = query.where(LabelEvent.created_at >= since)
    if allowed is not None:
        query = query.where(Comment.account.in_(sorted(allowed)))
    with database.reading() as session:
        for comment, event in session.execute(query):
            topics = split_tags(comment.topics)
            yield {
                "text": comment.text,
                "label": event.label,
                "topic": topics[0] if topics else "",
                "lapor_type": LAPOR_TYPES.get(event.label, ""),
                "comment_id": comment.id,
                "platform": comment.platform,
                # The one free-form column besides the text (kept exact for training): never
                # a spreadsheet formula.
                "account": "'" + comment.account
                if comment.account[:1] in ("=", "+", "-", "@", "\t", "\r")
                else comment.account,
                "predicted_label": event.predicted_label,
                "model_version": event.model_version,
                "labelled_by": event.actor,
                "labelled_at": event.created_at.isoformat(),
            }


def write_corrections_csv(rows: Iterable[Mapping[str, Any]], handle: TextIO) -> int:
    """CSV with a header row; `handle` is opened with newline=""."""
    writer = csv.DictWriter(handle, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count

"""Figures of the analytics page and the monthly report ("pemantauan dan evaluasi").

One query reads the period's comments (a few columns each) and the figures are counted in
Python, so that days, weeks and months follow the admins' time zone (WIB/WITA/WIT) rather
than UTC, and topics (stored as ",bansos,jalan,") are counted the same way on SQLite and
PostgreSQL. Answer figures follow `service.store.comments.stats`: spam is left out, a
comment counts as answered when its status is `answered`, and the time to answer runs from
posting (or arrival) to the answer.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, TextIO

from markupsafe import Markup, escape
from sqlalchemy import func, select

from service.labels import LABELS
from service.store.comments import OPEN_STATUSES, QueueFilter
from service.store.comments import answer_summary as store_answer_summary
from service.store.db import Database
from service.store.schema import Comment, split_tags, utcnow
from service.web.texts import (
    BANSOS,
    LABEL_COLOURS,
    LABEL_NAMES,
    MONTHS,
    TOPIC_ORDER,
    label_name,
    long_date,
    number,
    topic_name,
)

PERIOD_DAYS: tuple[int, ...] = (7, 30, 90, 365)
TOP_TOPICS = 10
_MONTH = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})$")


class BadPeriod(ValueError):
    """A period parameter that is not one the page offers."""


@dataclass(frozen=True)
class Period:
    """[since, until) in UTC, with the local zone its days are counted in."""

    since: datetime
    until: datetime
    zone: tzinfo
    title: str
    key: str  # "30" (days) or "2026-11" (month)
    month: str | None = None

    def local_days(self) -> list[date]:
        first = self.since.astimezone(self.zone).date()
        last = (self.until - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def days_period(days: int, zone: tzinfo, now: datetime | None = None) -> Period:
    """The last `days` local days, today included."""
    if days not in PERIOD_DAYS:
        raise BadPeriod(f"periode: {', '.join(map(str, PERIOD_DAYS))} hari")
    now = now or utcnow()
    today = now.astimezone(zone).date()
    since = _local_midnight(today - timedelta(days=days - 1), zone)
    until = _local_midnight(today + timedelta(days=1), zone)
    return Period(since, until, zone, f"{days} hari terakhir", str(days))


def parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.match(value)
    if match is None:
        raise BadPeriod("bulan: tulis seperti 2026-11")
    year, month = int(match["year"]), int(match["month"])
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        raise BadPeriod("bulan: tulis seperti 2026-11")
    return year, month


def month_period(value: str, zone: tzinfo) -> Period:
    year, month = parse_month(value)
    start = date(year, month, 1)
    end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return Period(
        _local_midnight(start, zone),
        _local_midnight(end, zone),
        zone,
        f"{MONTHS[month - 1]} {year}",
        f"{year:04d}-{month:02d}",
        month=f"{year:04d}-{month:02d}",
    )


def current_month(zone: tzinfo, now: datetime | None = None) -> str:
    local = (now or utcnow()).astimezone(zone)
    return f"{local.year:04d}-{local.month:02d}"


def shift_month(value: str, months: int) -> str:
    year, month = parse_month(value)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    account: str
    label: str
    predicted_label: str
    human_label: str | None
    status: str
    posted: datetime
    answered_at: datetime | None
    topics: tuple[str, ...]
    spam: bool
    urgent: bool


def load_rows(
    database: Database,
    period: Period,
    allowed: frozenset[str] | None = None,
    accounts: Sequence[str] = (),
) -> list[Row]:
    filters = QueueFilter(
        statuses=(),
        since=period.since,
        until=period.until,
        allowed_accounts=allowed,
        accounts=tuple(accounts),
    )
    posted = func.coalesce(Comment.posted_at, Comment.created_at)
    query = select(
        Comment.account,
        Comment.label,
        Comment.predicted_label,
        Comment.human_label,
        Comment.status,
        posted,
        Comment.answered_at,
        Comment.topics,
        Comment.flags,
    ).where(*filters.conditions())
    with database.reading() as session:
        result = session.execute(query).all()
    rows = []
    for account, label, predicted, human, status, when, answered_at, topics, flags in result:
        flag_list = split_tags(flags)
        rows.append(
            Row(
                account=account,
                label=label,
                predicted_label=predicted,
                human_label=human,
                status=status,
                posted=when,
                answered_at=answered_at,
                topics=tuple(split_tags(topics)),
                spam="spam" in flag_list,
                urgent="urgent" in flag_list,
            )
        )
    return rows


def visible_accounts(database: Database, allowed: frozenset[str] | None = None) -> list[str]:
    """The accounts that have comments (of those the user may see)."""
    query = select(Comment.account).distinct().order_by(Comment.account)
    if allowed is not None:
        query = query.where(Comment.account.in_(sorted(allowed)))
    with database.reading() as session:
        return [account for (account,) in session.execute(query)]


def count_matching(database: Database, filters: QueueFilter, uncorrected: bool = False) -> int:
    """How many comments the filters match (`uncorrected`: without an admin's label)."""
    conditions = filters.conditions()
    if uncorrected:
        conditions.append(Comment.human_label.is_(None))
    with database.reading() as session:
        found = session.execute(
            select(func.count()).select_from(Comment).where(*conditions)
        ).scalar()
    return int(found or 0)


# --- counting -----------------------------------------------------------------------------


def answer_summary(rows: Iterable[Row]) -> dict[str, Any]:
    """The store's answer figures, spam left out as in the API's statistics."""
    return store_answer_summary(row for row in rows if not row.spam)


def _label_counts(rows: Iterable[Row]) -> dict[str, int]:
    counts = dict.fromkeys(LABELS, 0)
    for row in rows:
        counts[row.label] = counts.get(row.label, 0) + 1
    return counts


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {label: round(counts.get(label, 0) / total, 4) if total else 0.0 for label in LABELS}


def compute(rows: Sequence[Row], period: Period) -> dict[str, Any]:
    """Every figure of the analytics page and the report, from the period's rows."""
    zone = period.zone
    by_day: dict[date, list[Row]] = defaultdict(list)
    for row in rows:
        by_day[row.posted.astimezone(zone).date()].append(row)
    days: list[dict[str, Any]] = []
    for day in period.local_days():
        counts = _label_counts(by_day.get(day, ()))
        days.append({"day": day.isoformat(), "counts": counts, "total": sum(counts.values())})

    by_week: dict[date, list[Row]] = defaultdict(list)
    for day, day_rows in by_day.items():
        by_week[day - timedelta(days=day.weekday())].extend(day_rows)
    weeks: list[dict[str, Any]] = []
    for week in sorted({d - timedelta(days=d.weekday()) for d in period.local_days()}):
        counts = _label_counts(by_week.get(week, ()))
        weeks.append(
            {
                "week": week.isoformat(),
                "total": sum(counts.values()),
                "counts": counts,
                "shares": _shares(counts),
            }
        )

    useful = [row for row in rows if not row.spam]
    topic_rows: dict[str, list[Row]] = defaultdict(list)
    for row in useful:
        for topic in row.topics:
            topic_rows[topic].append(row)
    order = {topic: i for i, topic in enumerate(TOPIC_ORDER)}
    topics = [
        topic_figures(topic, topic_rows[topic], len(useful))
        for topic in sorted(topic_rows, key=lambda t: (-len(topic_rows[t]), order.get(t, 99), t))
    ]
    accounts = sorted({row.account for row in rows})
    corrected = [row for row in rows if row.human_label is not None]
    label_counts = _label_counts(rows)
    return {
        "period": {
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "title": period.title,
            "key": period.key,
        },
        "totals": {
            "comments": len(rows),
            "spam": sum(1 for row in rows if row.spam),
            "urgent": sum(1 for row in rows if row.urgent),
            "open": sum(1 for row in rows if row.status in OPEN_STATUSES and not row.spam),
            "escalated": sum(1 for row in rows if row.status == "escalated"),
            "dismissed": sum(1 for row in rows if row.status == "dismissed"),
            "corrected": len(corrected),
            "model_agreed": sum(1 for row in corrected if row.human_label == row.predicted_label),
            **{f"answer_{k}": v for k, v in answer_summary(rows).items()},
        },
        "labels": {"counts": label_counts, "shares": _shares(label_counts)},
        "days": days,
        "weeks": weeks,
        "answers_by_label": {
            label: answer_summary(row for row in rows if row.label == label) for label in LABELS
        },
        "answers_by_account": {
            account: answer_summary(row for row in rows if row.account == account)
            for account in accounts
        },
        "labels_by_account": {
            account: _label_counts(row for row in rows if row.account == account)
            for account in accounts
        },
        "topics": topics,
        "bansos": topic_figures(BANSOS, topic_rows.get(BANSOS, []), len(useful)),
    }


def topic_figures(topic: str, rows: Sequence[Row], useful_total: int) -> dict[str, Any]:
    return {
        "topic": topic,
        "name": topic_name(topic),
        "count": len(rows),
        "share": round(len(rows) / useful_total, 4) if useful_total else 0.0,
        "open": sum(1 for row in rows if row.status in OPEN_STATUSES),
        "counts": _label_counts(rows),
        **answer_summary(rows),
    }


def figures(
    database: Database,
    period: Period,
    allowed: frozenset[str] | None = None,
    accounts: Sequence[str] = (),
) -> dict[str, Any]:
    return compute(load_rows(database, period, allowed, accounts), period)


def report_figures(
    database: Database,
    period: Period,
    allowed: frozenset[str] | None = None,
    accounts: Sequence[str] = (),
) -> dict[str, Any]:
    """The month's figures and, for comparison, the month before's."""
    assert period.month is not None
    current = figures(database, period, allowed, accounts)
    previous = figures(
        database, month_period(shift_month(period.month, -1), period.zone), allowed, accounts
    )
    current["previous"] = {
        "title": previous["period"]["title"],
        "totals": previous["totals"],
        "labels": previous["labels"],
    }
    return current


# --- CSV ----------------------------------------------------------------------------------

CSV_FIELDS = ("bagian", "tanggal", "akun", "label", "topik", "ukuran", "nilai")


def _cell(value: Any) -> str:
    """Text that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def csv_rows(figures: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    period = figures["period"]
    yield {"bagian": "periode", "ukuran": "mulai", "nilai": period["since"]}
    yield {"bagian": "periode", "ukuran": "sampai", "nilai": period["until"]}
    for key, value in figures["totals"].items():
        yield {"bagian": "ringkasan", "ukuran": key, "nilai": value}
    for label in LABELS:
        yield {
            "bagian": "label",
            "label": LABEL_NAMES[label],
            "ukuran": "jumlah",
            "nilai": figures["labels"]["counts"][label],
        }
        yield {
            "bagian": "label",
            "label": LABEL_NAMES[label],
            "ukuran": "porsi",
            "nilai": figures["labels"]["shares"][label],
        }
    for day in figures["days"]:
        for label in LABELS:
            yield {
                "bagian": "harian",
                "tanggal": day["day"],
                "label": LABEL_NAMES[label],
                "ukuran": "jumlah",
                "nilai": day["counts"][label],
            }
    for week in figures["weeks"]:
        for label in LABELS:
            yield {
                "bagian": "pekanan",
                "tanggal": week["week"],
                "label": LABEL_NAMES[label],
                "ukuran": "porsi",
                "nilai": week["shares"][label],
            }
    summaries = ("total", "answered", "answered_share", "median_hours_to_answer")
    for label, summary in figures["answers_by_label"].items():
        for key in summaries:
            yield {
                "bagian": "jawaban_per_label",
                "label": LABEL_NAMES[label],
                "ukuran": key,
                "nilai": summary[key],
            }
    for account, summary in figures["answers_by_account"].items():
        for key in summaries:
            yield {
                "bagian": "jawaban_per_akun",
                "akun": account,
                "ukuran": key,
                "nilai": summary[key],
            }
    for topic in figures["topics"]:
        for key in ("count", "share", "open", *summaries[2:]):
            yield {"bagian": "topik", "topik": topic["name"], "ukuran": key, "nilai": topic[key]}
        for label in LABELS:
            yield {
                "bagian": "topik_per_label",
                "topik": topic["name"],
                "label": LABEL_NAMES[label],
                "ukuran": "count",
                "nilai": topic["counts"][label],
            }


def write_csv(figures: Mapping[str, Any], handle: TextIO) -> None:
    writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for row in csv_rows(figures):
        writer.writerow({name: _cell(row.get(name)) for name in CSV_FIELDS})


# --- static SVG charts (the printable report) ---------------------------------------------


def svg_daily(days: Sequence[Mapping[str, Any]], width: int = 680, height: int = 220) -> Markup:
    """Stacked bars of comments per day by label, with a legend; no script needed."""
    left, right, top, bottom = 34, 8, 10, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((day["total"] for day in days), default=0)
    scale_max = max(1, _nice_ceiling(peak))
    slot = plot_w / max(1, len(days))
    bar = max(1.0, slot * 0.72)
    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Komentar per hari menurut label" xmlns="http://www.w3.org/2000/svg">'
    ]
    for step in range(5):
        value = scale_max * step / 4
        y = top + plot_h - plot_h * step / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d9dde3" '
            f'stroke-width="1"/><text x="{left - 4}" y="{y + 3:.1f}" font-size="9" '
            f'text-anchor="end" fill="#4b5563">{number(value)}</text>'
        )
    every = max(1, round(len(days) / 10))
    for index, day in enumerate(days):
        x = left + slot * index + (slot - bar) / 2
        y = top + plot_h
        for label in LABELS:
            count = day["counts"][label]
            if not count:
                continue
            h = plot_h * count / scale_max
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{LABEL_COLOURS[label]}"><title>{escape(day["day"])} '
                f"{LABEL_NAMES[label]}: {count}</title></rect>"
            )
        if index % every == 0:
            parsed = date.fromisoformat(day["day"])
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 12}" font-size="9" '
                f'text-anchor="middle" fill="#4b5563">{parsed.day}/{parsed.month}</text>'
            )
    parts.append(_legend(left, height - 14))
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_hbars(
    items: Sequence[tuple[str, float, str]],
    width: int = 420,
    value_format: str = "count",
    highlight: str | None = None,
) -> Markup:
    """Horizontal bars: (name, value, colour) per row; `highlight` names a row in bold.
    Sized for half an A4 page: the text stays readable when printed."""
    row_h, label_w, right = 24, 170, 44
    height = row_h * max(1, len(items)) + 8
    peak = max((value for _, value, _ in items), default=0) or 1
    plot_w = width - label_w - right
    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, (name, value, colour) in enumerate(items):
        y = 4 + index * row_h
        w = plot_w * value / peak
        weight = ' font-weight="700"' if name == highlight else ""
        shown = number(100 * value) + "%" if value_format == "percent" else number(value)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end" '
            f'fill="#111827"{weight}>{escape(name)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 8}" '
            f'fill="{colour}" rx="2"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12" '
            f'fill="#111827"{weight}>{shown}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(x: float, y: float) -> str:
    parts = []
    for label in LABELS:
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 8}" width="10" height="10" fill="{LABEL_COLOURS[label]}"/>'
            f'<text x="{x + 14:.1f}" y="{y + 1}" font-size="10" fill="#111827">'
            f"{LABEL_NAMES[label]}</text>"
        )
        x += 24 + 7 * len(LABEL_NAMES[label])
    return "".join(parts)


def _nice_ceiling(value: float) -> int:
    """4 * a round step >= value, so that the 4 grid lines fall on round numbers."""
    if value <= 0:
        return 4
    step = value / 4
    magnitude = 10 ** (len(str(int(step))) - 1)
    for factor in (1, 2, 2.5, 5, 10):
        if step <= factor * magnitude:
            return int(4 * factor * magnitude)
    return int(4 * 10 * magnitude)


def period_text(period: Period) -> str:
    last = period.until - timedelta(seconds=1)
    return f"{long_date(period.since, period.zone)} - {long_date(last, period.zone)}"


def label_colour(label: str) -> str:
    return LABEL_COLOURS.get(label, "#6b7280")


__all__ = [
    "PERIOD_DAYS",
    "BadPeriod",
    "Period",
    "compute",
    "count_matching",
    "current_month",
    "days_period",
    "figures",
    "label_name",
    "load_rows",
    "month_period",
    "report_figures",
    "shift_month",
    "svg_daily",
    "svg_hbars",
    "visible_accounts",
    "write_csv",
]

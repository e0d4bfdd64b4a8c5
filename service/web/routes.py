"""Pages and actions of the admin page under `/admin` (server-rendered, htmx for the actions).

Handlers call the store functions directly, in worker threads bounded by `store_threads`.
Every failure an admin can cause (unknown comment, bad filter or month, busy database,
missing CSRF token) becomes a page or message with the right status, never a 500.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import anyio
from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from service.labels import LABELS
from service.store import comments as store
from service.store.db import StoreBusy
from service.store.schema import MAX_COMMENT_ID, PLATFORMS, STATUSES, utcnow
from service.web import analytics, users
from service.web import auth as web_auth
from service.web.auth import (
    PREFIX,
    LoginThrottle,
    WebConfig,
    client_address,
    csrf_ok,
    csrf_token,
    safe_next,
)
from service.web.texts import (
    BANSOS,
    FLAG_NAMES,
    LABEL_COLOURS,
    LABEL_NAMES,
    MASK_NAMES,
    PLATFORM_NAMES,
    REVIEW_REASON_NAMES,
    STATUS_NAMES,
    TOPIC_ORDER,
    ZONE_NAMES,
    age,
    label_name,
    local_time,
    reason_text,
    safe_url,
    topic_name,
)

log = logging.getLogger("pilah.web")
T = TypeVar("T")
PAGE_SIZE = 30
MAX_NOTE = 2000
MAX_SEARCH = 200
MAX_ACCOUNT = 128
_COMMENT_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
STATUS_ACTIONS: Mapping[str, str] = {
    "answered": "Ditandai dijawab",
    "dismissed": "Diabaikan",
    "escalated": "Dieskalasi",
    "new": "Dibuka lagi",
}
OPEN_USER = users.User(
    id=0, username="admin", role="admin", accounts=None, disabled=False, fingerprint=""
)


class PageError(Exception):
    """A failure shown to the admin as a page (or, to htmx, as a message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Exception):
    """No (valid) session while login is required."""


@dataclass
class WebState:
    config: WebConfig
    templates: Jinja2Templates
    throttle: LoginThrottle


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# --- store calls --------------------------------------------------------------------------


async def run_store(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    runtime = request.app.state.runtime
    database = runtime.database
    if database is None:
        raise PageError(503, "Basis data belum siap. Coba lagi sebentar lagi.")
    try:
        return await anyio.to_thread.run_sync(
            partial(work, database, *args, **kwargs), limiter=runtime.store_limiter()
        )
    except store.NotFound:
        raise PageError(404, "Komentar tidak ditemukan, atau bukan dari akun Anda.") from None
    except store.InvalidQuery as exc:
        raise PageError(400, f"Permintaan tidak valid: {exc}") from None
    except store.Conflict as exc:
        raise PageError(409, str(exc)) from None
    except users.UserError as exc:
        raise PageError(400, str(exc)) from None
    except analytics.BadPeriod as exc:
        raise PageError(400, f"Periode tidak valid: {exc}") from None
    except StoreBusy:
        raise PageError(503, "Basis data sedang sibuk. Coba lagi sebentar lagi.") from None
    except SQLAlchemyError as exc:
        log.error("database error: %s", type(exc).__name__, exc_info=True)
        raise PageError(503, "Basis data tidak tersedia. Coba lagi nanti.") from None


# --- who is asking ------------------------------------------------------------------------


async def current_user(request: Request) -> users.User | None:
    if not web_state(request).config.auth_enabled:
        return OPEN_USER
    user_id = request.session.get("uid")
    fingerprint = request.session.get("fp")
    if not isinstance(user_id, int) or not isinstance(fingerprint, str):
        return None
    user = await run_store(request, users.get_user, user_id)
    if user is None or user.disabled or user.fingerprint != fingerprint:
        request.session.pop("uid", None)
        request.session.pop("fp", None)
        return None
    return user


async def require_user(request: Request) -> users.User:
    user = await current_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded (or multipart, without files) form as plain strings."""
    async with request.form(max_files=0, max_fields=50) as form:
        return _strings(form)


def _strings(form: FormData) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def require_action(request: Request) -> tuple[users.User, dict[str, str]]:
    """A logged-in user who may act, and the form, after the CSRF check."""
    user = await require_user(request)
    form = await read_form(request)
    if not csrf_ok(request, form):
        raise PageError(403, "Sesi formulir kedaluwarsa (CSRF). Muat ulang halaman lalu coba lagi.")
    if not user.can_act:
        raise PageError(403, "Akun Anda hanya dapat melihat, tidak dapat mengubah komentar.")
    return user, form


# --- rendering ----------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    state = web_state(request)
    zone = state.config.timezone
    base: dict[str, Any] = {
        "user": None,
        "tab": "",
        "csrf": csrf_token(request),
        "auth_enabled": state.config.auth_enabled,
        "zone_name": ZONE_NAMES.get(str(zone), str(zone)),
        "here": _here(request),
    }
    base.update(context)
    return state.templates.TemplateResponse(
        request, template, base, status_code=status, headers=dict(headers or {})
    )


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def card_view(item: Mapping[str, Any], now: datetime, zone: Any) -> dict[str, Any]:
    """What a comment card shows, in Indonesian."""
    scores = item.get("scores") or {}
    ranked = sorted(scores.items(), key=lambda pair: -pair[1])
    posted = item.get("posted_at") or item.get("created_at")
    return {
        "id": item["id"],
        "text": item["text"],
        "platform": item["platform"],
        "platform_name": PLATFORM_NAMES.get(item["platform"], item["platform"]),
        "account": item["account"],
        "author": item.get("author"),
        "label": item["label"],
        "label_name": label_name(item["label"]),
        "predicted_label": item["predicted_label"],
        "human_label": item.get("human_label"),
        "confidence": float(item.get("confidence") or 0.0),
        "label_score": float(scores.get(item["label"], 0.0)),
        "runner_up": [(label, score) for label, score in ranked[:2]],
        "needs_review": bool(item.get("needs_review")),
        "review_reasons": [REVIEW_REASON_NAMES.get(r, r) for r in item.get("review_reasons", [])],
        "priority": item.get("priority", 0),
        "reasons": [reason_text(r) for r in item.get("priority_reasons", [])],
        "flags": [(flag, FLAG_NAMES.get(flag, flag)) for flag in item.get("flags", [])],
        "masked": [MASK_NAMES.get(kind, kind) for kind in item.get("pii_masked", [])],
        "topics": [(topic, topic_name(topic)) for topic in item.get("topics", [])],
        "age": age(posted, now),
        "posted": local_time(posted, zone),
        "post_url": safe_url(item.get("post_url")),
        "status": item["status"],
        "status_name": STATUS_NAMES.get(item["status"], item["status"]),
        "assignee": item.get("assignee"),
        "margin": item.get("margin"),
        "likes": item.get("likes", 0),
        "replies": item.get("replies", 0),
        "history": [_history_view(event, zone) for event in reversed(item.get("history") or [])],
    }


def _history_view(event: Mapping[str, Any], zone: Any) -> dict[str, Any]:
    if event["type"] == "label":
        what = f"label: {label_name(event.get('previous_label'))} → {label_name(event['label'])}"
    else:
        parts = []
        if event.get("status"):
            parts.append(f"status: {STATUS_NAMES.get(event['status'], event['status'])}")
        if event.get("assignee"):
            parts.append(f"ditugaskan ke {event['assignee']}")
        what = "; ".join(parts)
    return {
        "at": local_time(event["at"], zone),
        "actor": event["actor"],
        "what": what,
        "note": event.get("note"),
    }


def comment_id_of(raw: str) -> int:
    if not _COMMENT_ID.match(raw) or int(raw) > MAX_COMMENT_ID:
        raise PageError(404, "Komentar tidak ditemukan.")
    return int(raw)


# --- filters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    queue: store.QueueFilter
    form: dict[str, str]  # the chosen values, for the filter form and links
    active: int  # how many filters (besides the default status) are set


def _choices(params: Any, name: str, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    values = [value for value in params.getlist(name) if value != ""]
    for value in values:
        if allowed is not None and value not in allowed:
            raise PageError(400, f"Filter {what} tidak dikenal.")
        if len(value) > MAX_ACCOUNT:
            raise PageError(400, f"Filter {what} terlalu panjang.")
        if "\x00" in value:
            raise PageError(400, f"Filter {what} tidak valid.")
    return values


def _day(value: str | None, what: str) -> date | None:
    if not value:
        return None
    if not _DATE.match(value):
        raise PageError(400, f"Tanggal {what} tidak valid (tulis seperti 2026-11-28).")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise PageError(400, f"Tanggal {what} tidak valid.") from None
    if not 2000 <= parsed.year <= 2100:
        raise PageError(400, f"Tanggal {what} tidak valid.")
    return parsed


def parse_filters(request: Request, user: users.User) -> Filters:
    params = request.query_params
    labels = _choices(params, "label", LABELS, "label")
    statuses = _choices(params, "status", (*STATUSES, "all"), "status")
    platforms = _choices(params, "platform", PLATFORMS, "platform")
    accounts = _choices(params, "account", None, "akun")
    topics = _choices(params, "topic", TOPIC_ORDER, "topik")
    flags = _choices(params, "flag", tuple(FLAG_NAMES), "tanda")
    review = params.get("review", "")
    if review not in ("", "1", "0"):
        raise PageError(400, "Filter tinjauan tidak dikenal.")
    search = params.get("q", "").strip()
    if len(search) > MAX_SEARCH or "\x00" in search:
        raise PageError(400, f"Kata pencarian paling banyak {MAX_SEARCH} karakter.")
    zone = web_state(request).config.timezone
    since_day = _day(params.get("since"), "mulai")
    until_day = _day(params.get("until"), "sampai")
    since = (
        datetime(since_day.year, since_day.month, since_day.day, tzinfo=zone) if since_day else None
    )
    until = (
        datetime(until_day.year, until_day.month, until_day.day, tzinfo=zone) + timedelta(days=1)
        if until_day
        else None
    )
    queue = store.QueueFilter(
        labels=tuple(labels),
        statuses=() if "all" in statuses else (tuple(statuses) or store.OPEN_STATUSES),
        platforms=tuple(platforms),
        accounts=tuple(accounts),
        topics=tuple(topics),
        flags=tuple(flags),
        since=since,
        until=until,
        needs_review=None if review == "" else review == "1",
        search=search or None,
        allowed_accounts=user.accounts,
    )
    form = {
        "label": labels[0] if labels else "",
        "status": statuses[0] if statuses else "",
        "platform": platforms[0] if platforms else "",
        "account": accounts[0] if accounts else "",
        "topic": topics[0] if topics else "",
        "flag": flags[0] if flags else "",
        "review": review,
        "q": search,
        "since": since_day.isoformat() if since_day else "",
        "until": until_day.isoformat() if until_day else "",
    }
    active = sum(1 for key, value in form.items() if value and key != "q")
    return Filters(queue, form, active)


def _query(values: Mapping[str, str], **extra: str) -> str:
    merged = {key: value for key, value in {**values, **extra}.items() if value}
    return urlencode(merged)


# --- the router ---------------------------------------------------------------------------


def build_web_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if not web_state(request).config.auth_enabled:
            return RedirectResponse(PREFIX + "/", status_code=303)
        if await current_user(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        return render(
            request,
            "login.html",
            {"next": safe_next(request.query_params.get("next")), "error": None, "username": ""},
        )

    @router.post("/login")
    async def login(request: Request) -> Response:
        state = web_state(request)
        if not state.config.auth_enabled:
            return RedirectResponse(PREFIX + "/", status_code=303)
        form = await read_form(request)
        target = safe_next(form.get("next"))
        if not csrf_ok(request, form):
            return render(
                request,
                "login.html",
                {
                    "next": target,
                    "error": "Sesi formulir kedaluwarsa. Silakan coba lagi.",
                    "username": "",
                },
                status=403,
            )
        username = form.get("username", "").strip()[:64]
        password = form.get("password", "")
        address = client_address(request)
        if state.throttle.blocked(username, address):
            return render(
                request,
                "login.html",
                {
                    "next": target,
                    "error": "Terlalu banyak percobaan gagal. Tunggu 15 menit lalu coba lagi.",
                    "username": username,
                },
                status=429,
                headers={"Retry-After": "900"},
            )
        user = await run_store(request, users.authenticate, username, password)
        if user is None:
            state.throttle.failed(username, address)
            await anyio.sleep(web_auth.FAILED_LOGIN_DELAY)
            return render(
                request,
                "login.html",
                {
                    "next": target,
                    "error": "Nama pengguna atau kata sandi salah.",
                    "username": username,
                },
                status=401,
            )
        state.throttle.succeeded(username, address)
        request.session.clear()  # a fresh session (and CSRF token) for the logged-in user
        request.session.update({"uid": user.id, "fp": user.fingerprint})
        csrf_token(request)
        log.info("admin login", extra={"user": user.username})
        return RedirectResponse(target, status_code=303)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        if not csrf_ok(request, form):
            raise PageError(403, "Sesi formulir kedaluwarsa (CSRF). Muat ulang halaman.")
        request.session.clear()
        target = PREFIX + "/login" if web_state(request).config.auth_enabled else PREFIX + "/"
        return RedirectResponse(target, status_code=303)

    async def comment_list(request: Request, tab: str) -> Response:
        user = await require_user(request)
        filters = parse_filters(request, user)
        cursor = request.query_params.get("cursor") or None
        if cursor is not None and len(cursor) > 1000:
            raise PageError(400, "Penanda halaman tidak valid.")
        lister = store.queue if tab == "queue" else store.review
        page = await run_store(request, lister, filters.queue, PAGE_SIZE, cursor)
        total = await run_store(
            request, analytics.count_matching, filters.queue, uncorrected=tab == "review"
        )
        flagged = None
        if tab == "review":
            flagged = await run_store(
                request,
                analytics.count_matching,
                replace(filters.queue, needs_review=True),
                uncorrected=True,
            )
        accounts = await run_store(request, analytics.visible_accounts, user.accounts)
        zone = web_state(request).config.timezone
        now = utcnow()
        next_url = None
        if page.next_cursor:
            next_url = f"{request.url.path}?{_query(filters.form, cursor=page.next_cursor)}"
        return render(
            request,
            "queue.html",
            {
                "user": user,
                "tab": tab,
                "cards": [card_view(item, now, zone) for item in page.items],
                "filters": filters.form,
                "active_filters": filters.active,
                "total": total,
                "flagged": flagged,
                "accounts": accounts,
                "next_url": next_url,
                "first_page": cursor is None,
            },
        )

    @router.get("/")
    async def queue_page(request: Request) -> Response:
        return await comment_list(request, "queue")

    @router.get("/review")
    async def review_page(request: Request) -> Response:
        return await comment_list(request, "review")

    @router.get("/comments/{comment_id}")
    async def comment_page(request: Request, comment_id: str) -> Response:
        user = await require_user(request)
        found = await run_store(
            request, store.get_comment, comment_id_of(comment_id), user.accounts
        )
        zone = web_state(request).config.timezone
        return render(
            request,
            "comment.html",
            {"user": user, "tab": "", "card": card_view(found, utcnow(), zone)},
        )

    def acted(
        request: Request,
        updated: Mapping[str, Any],
        user: users.User,
        message: str,
        form_next: str | None,
    ) -> Response:
        zone = web_state(request).config.timezone
        if is_htmx(request):
            return render(
                request,
                "_card.html",
                {
                    "user": user,
                    "c": card_view(updated, utcnow(), zone),
                    "here": safe_next(form_next),
                },
                headers={"HX-Trigger": json.dumps({"pilah-toast": message})},
            )
        return RedirectResponse(f"{safe_next(form_next)}#c-{updated['id']}", status_code=303)

    @router.post("/comments/{comment_id}/status")
    async def set_status(request: Request, comment_id: str) -> Response:
        user, form = await require_action(request)
        identifier = comment_id_of(comment_id)
        status = form.get("status", "")
        if status not in STATUSES:
            raise PageError(422, "Status tidak dikenal.")
        updated = await run_store(
            request,
            store.update_comment,
            identifier,
            user.username,
            status=status,
            allowed=user.accounts,
        )
        return acted(request, updated, user, STATUS_ACTIONS[status], form.get("next"))

    @router.post("/comments/{comment_id}/label")
    async def set_label(request: Request, comment_id: str) -> Response:
        user, form = await require_action(request)
        identifier = comment_id_of(comment_id)
        label = form.get("label", "")
        if label not in LABELS:
            raise PageError(422, "Label tidak dikenal.")
        outcome = await run_store(
            request, store.correct_label, identifier, label, user.username, None, user.accounts
        )
        message = f"Label diubah: {LABEL_NAMES[label]}"
        return acted(request, outcome.comment, user, message, form.get("next"))

    @router.post("/comments/{comment_id}/note")
    async def add_note(request: Request, comment_id: str) -> Response:
        user, form = await require_action(request)
        identifier = comment_id_of(comment_id)
        note = form.get("note", "").strip()
        if not note:
            raise PageError(422, "Catatan kosong.")
        if len(note) > MAX_NOTE or "\x00" in note:
            raise PageError(422, f"Catatan paling banyak {MAX_NOTE} karakter.")
        updated = await run_store(
            request,
            store.update_comment,
            identifier,
            user.username,
            note=note,
            allowed=user.accounts,
        )
        return acted(request, updated, user, "Catatan disimpan", form.get("next"))

    def period_of(request: Request) -> analytics.Period:
        zone = web_state(request).config.timezone
        month = request.query_params.get("month")
        try:
            if month:
                return analytics.month_period(month, zone)
            raw = request.query_params.get("days", "30")
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 3:
                raise analytics.BadPeriod("periode: 7, 30, 90 atau 365 hari")
            return analytics.days_period(int(raw), zone)
        except analytics.BadPeriod as exc:
            raise PageError(400, f"Periode tidak valid: {exc}") from None

    def account_of(request: Request) -> str:
        account = request.query_params.get("account", "")
        if len(account) > MAX_ACCOUNT:
            raise PageError(400, "Nama akun terlalu panjang.")
        if "\x00" in account:
            raise PageError(400, "Nama akun tidak valid.")
        return account

    @router.get("/analytics")
    async def analytics_page(request: Request) -> Response:
        user = await require_user(request)
        period = period_of(request)
        account = account_of(request)
        found = await run_store(
            request, analytics.figures, period, user.accounts, (account,) if account else ()
        )
        accounts = await run_store(request, analytics.visible_accounts, user.accounts)
        return render(
            request,
            "analytics.html",
            {
                "user": user,
                "tab": "analytics",
                "f": found,
                "period": period,
                "period_text": analytics.period_text(period),
                "account": account,
                "accounts": accounts,
                "chart_data": chart_data(found),
                "csv_query": _query(
                    {
                        "days": period.key if period.month is None else "",
                        "month": period.month or "",
                        "account": account,
                    }
                ),
                "period_days": analytics.PERIOD_DAYS,
                "bansos": BANSOS,
            },
        )

    @router.get("/analytics.csv")
    async def analytics_csv(request: Request) -> Response:
        user = await require_user(request)
        period = period_of(request)
        account = account_of(request)
        found = await run_store(
            request, analytics.figures, period, user.accounts, (account,) if account else ()
        )
        buffer = io.StringIO()
        analytics.write_csv(found, buffer)
        name = f"pilah-analitik-{period.key}{'-' + account if account else ''}.csv"
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
        )

    @router.get("/report")
    async def report_page(request: Request) -> Response:
        user = await require_user(request)
        zone = web_state(request).config.timezone
        month = request.query_params.get("month") or analytics.current_month(zone)
        try:
            period = analytics.month_period(month, zone)
        except analytics.BadPeriod as exc:
            raise PageError(400, f"Bulan tidak valid: {exc}") from None
        account = account_of(request)
        found = await run_store(
            request, analytics.report_figures, period, user.accounts, (account,) if account else ()
        )
        topics = found["topics"][: analytics.TOP_TOPICS]
        topic_bars = [
            (t["name"], float(t["count"]), "#a35f00" if t["topic"] == BANSOS else "#475569")
            for t in topics
        ]
        label_bars = [
            (LABEL_NAMES[label], float(found["labels"]["counts"][label]), LABEL_COLOURS[label])
            for label in LABELS
        ]
        return render(
            request,
            "report.html",
            {
                "user": user,
                "tab": "report",
                "f": found,
                "period": period,
                "period_text": analytics.period_text(period),
                "account": account,
                "daily_svg": analytics.svg_daily(found["days"]),
                "labels_svg": analytics.svg_hbars(label_bars),
                "topics_svg": analytics.svg_hbars(
                    topic_bars, highlight=analytics.topic_name(BANSOS)
                ),
                "previous_month": analytics.shift_month(period.key, -1),
                "next_month": analytics.shift_month(period.key, 1),
                "generated": local_time(utcnow(), zone),
                "bansos": BANSOS,
                "csv_query": _query({"month": period.key, "account": account}),
            },
        )

    @router.get("/{rest:path}")
    async def not_found(request: Request, rest: str) -> Response:
        raise PageError(404, "Halaman tidak ditemukan.")

    return router


def chart_data(found: Mapping[str, Any]) -> dict[str, Any]:
    """The figures the analytics page's charts draw (Chart.js reads them as JSON)."""
    labels = [
        {"key": label, "name": LABEL_NAMES[label], "colour": LABEL_COLOURS[label]}
        for label in LABELS
    ]
    topics = found["topics"][: analytics.TOP_TOPICS]
    return {
        "labels": labels,
        "days": [
            {"day": day["day"], "counts": day["counts"], "total": day["total"]}
            for day in found["days"]
        ],
        "weeks": [
            {"week": w["week"], "shares": w["shares"], "total": w["total"]} for w in found["weeks"]
        ],
        "answers_by_label": found["answers_by_label"],
        "answers_by_account": found["answers_by_account"],
        "topics": [
            {
                "topic": t["topic"],
                "name": t["name"],
                "count": t["count"],
                "bansos": t["topic"] == BANSOS,
            }
            for t in topics
        ],
    }


# --- error responses ----------------------------------------------------------------------


async def page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if is_htmx(request):
        return Response(
            exc.message,
            status_code=exc.status,
            media_type="text/plain; charset=utf-8",
            headers={"X-Pilah-Error": quote(exc.message)},
        )
    user = None
    with contextlib.suppress(PageError):
        user = await current_user(request)
    return render(
        request,
        "error.html",
        {"user": user, "tab": "", "status": exc.status, "message": exc.message},
        status=exc.status,
    )


async def login_required(request: Request, exc: Exception) -> Response:
    back = _here(request) if request.method == "GET" else PREFIX + "/"
    target = PREFIX + "/login?" + urlencode({"next": back})
    if is_htmx(request):
        return Response(
            "login", status_code=401, headers={"HX-Redirect": target}, media_type="text/plain"
        )
    return RedirectResponse(target, status_code=303)

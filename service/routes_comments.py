"""Routes of the comment store: ingest, the queue, admin actions, feedback, statistics.

Database work runs in worker threads (bounded by `store_threads`), classification of an
ingested batch too, so the event loop never waits on either. Store errors are translated
here: unknown comment 404, reused idempotency key or bad cursor 422, a database that stays
busy or is unreachable 503 with Retry-After (never a 500).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
import orjson
from fastapi import APIRouter, Header, Path, Query
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from service.deps import AdminStore, ClientModel, ClientStore, StoreCall
from service.http import JSON_TYPE, ApiError, JSONRoute, describe_errors
from service.schemas import (
    ApiTime,
    CommentBatch,
    CommentIn,
    CommentPage,
    CommentUpdate,
    ErrorBody,
    IngestResponse,
    Label,
    LabelRequest,
    LabelResponse,
    Platform,
    SafeStr,
    Stats,
    Status,
    StoredComment,
)
from service.store import comments as store
from service.store.db import StoreBusy
from service.store.schema import MAX_COMMENT_ID
from service.validation import text_problem

log = logging.getLogger("pilah.store")
T = TypeVar("T")
_COMMENT = TypeAdapter(CommentIn)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

ERRORS = {
    400: "Malformed request.",
    401: "Missing or unknown API key.",
    403: "The API key's role does not allow this route.",
    404: "No such comment, or not one of the key's accounts.",
    413: "Request body too large.",
    415: "Content-Type is not application/json.",
    422: "Validation error (also: a bad cursor, an Idempotency-Key reused for another label).",
    429: "Rate limit exceeded; see Retry-After.",
    503: "Model or database not available right now; see Retry-After.",
}
SECURITY: dict[str, Any] = {"security": [{"bearer": []}, {"apiKey": []}]}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": ERRORS[s]} for s in statuses}


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code=status, media_type=JSON_TYPE, headers=headers
    )


async def in_store(call: StoreCall, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store function in a worker thread, with domain errors as HTTP errors."""
    database = call.database

    def run() -> T:
        return work(database, *args, **kwargs)

    try:
        return await anyio.to_thread.run_sync(run, limiter=call.runtime.store_limiter())
    except store.NotFound as exc:
        raise ApiError(404, "comment_not_found", str(exc)) from None
    except store.Conflict as exc:
        raise ApiError(422, "idempotency_key_reused", str(exc)) from None
    except store.InvalidQuery as exc:
        raise ApiError(422, "invalid_query", str(exc)) from None
    except StoreBusy as exc:
        raise ApiError(503, "store_busy", str(exc), headers={"Retry-After": "1"}) from None
    except SQLAlchemyError as exc:
        log.error("database error: %s", type(exc).__name__, exc_info=True)
        raise ApiError(
            503, "store_unavailable", "the database is not available", headers={"Retry-After": "5"}
        ) from None


Checked = tuple[dict[str, Any] | None, dict[str, str] | None]


def check_comment(item: Any, call: StoreCall) -> Checked:
    """One ingest item: the comment, or an error entry {code, message} (never quoting text)."""
    try:
        comment = _COMMENT.validate_python(item)
    except ValidationError as exc:
        message = describe_errors(exc.errors(include_input=False, include_url=False), empty="item")
        return None, {"code": "validation_error", "message": message}
    problem = text_problem(comment.text, call.settings)
    if problem is None and "\x00" in comment.text:
        problem = ("invalid_text", "text contains a NUL character")
    if problem is not None:
        return None, {"code": problem[0], "message": problem[1]}
    if call.accounts is not None and comment.account not in call.accounts:
        return None, {"code": "account_not_allowed", "message": "account: not one of this key's"}
    return comment.model_dump(), None


class ReviewQuery(BaseModel):
    """Filters of the review list (query parameters; repeat one to allow several values)."""

    label: list[Label] | None = None
    status: list[Status] | None = Field(
        default=None, description="Default: new and escalated (the open ones)."
    )
    platform: list[Platform] | None = None
    account: list[Annotated[SafeStr, Field(max_length=128)]] | None = None
    topic: list[Annotated[SafeStr, Field(max_length=64)]] | None = Field(
        default=None, description="bansos, jalan, banjir, sampah, kesehatan, adminduk, ..."
    )
    since: ApiTime | None = Field(default=None, description="Posted at or after (ISO 8601).")
    until: ApiTime | None = Field(default=None, description="Posted before (ISO 8601).")
    limit: int = Field(default=50, ge=1, le=store.MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=1000, description="From next_cursor.")

    def filter(self, call: StoreCall) -> store.QueueFilter:
        return store.QueueFilter(
            labels=tuple(self.label or ()),
            statuses=tuple(self.status) if self.status else store.OPEN_STATUSES,
            platforms=tuple(self.platform or ()),
            accounts=tuple(self.account or ()),
            topics=tuple(self.topic or ()),
            flags=tuple(getattr(self, "flag", None) or ()),
            since=self.since,
            until=self.until,
            needs_review=getattr(self, "needs_review", None),
            search=getattr(self, "q", None) or None,
            allowed_accounts=call.accounts,
        )


class QueueQuery(ReviewQuery):
    """Filters of the queue."""

    flag: list[Literal["urgent", "spam", "pii"]] | None = Field(
        default=None, description="Comments with all of these flags."
    )
    needs_review: bool | None = Field(
        default=None, description="Only (or no) uncertain predictions."
    )
    q: SafeStr | None = Field(default=None, max_length=200, description="Words in the text.")


SinceQ = Annotated[ApiTime | None, Query(description="Posted at or after (ISO 8601).")]
UntilQ = Annotated[ApiTime | None, Query(description="Posted before (ISO 8601).")]
AccountQ = Annotated[list[Annotated[SafeStr, Query(max_length=128)]] | None, Query()]


def page_response(page: store.Page) -> Response:
    return json_response(
        {"items": page.items, "next_cursor": page.next_cursor, "as_of": page.as_of}
    )


CommentId = Annotated[int, Path(ge=1, le=MAX_COMMENT_ID)]


def build_comments_router() -> APIRouter:
    router = APIRouter(route_class=JSONRoute, tags=["comments"])

    @router.post(
        "/v1/comments",
        openapi_extra=SECURITY,
        response_model=IngestResponse,
        responses=responses(400, 401, 403, 413, 415, 422, 429, 503),
        summary="Store and classify up to max_batch_items comments",
    )
    async def ingest_comments(
        body: CommentBatch, call: ClientModel, store_call: ClientStore
    ) -> Any:
        """Each new comment is classified on arrival and queued; posting a (`platform`,
        `external_id`) again is reported as `duplicate` and changes nothing. Invalid items are
        `rejected` with a reason; the others are stored."""
        items = body.items
        if not items:
            raise ApiError(422, "empty_batch", "items: at least one item is required")
        if len(items) > call.settings.max_batch_items:
            raise ApiError(
                422,
                "batch_too_large",
                f"items: at most {call.settings.max_batch_items} items per request",
            )
        model = call.model

        def check_and_store(database: Any) -> tuple[list[Checked], store.IngestOutcome]:
            """Validation and classification of a large batch both stay off the event loop."""
            checked = [check_comment(item, store_call) for item in items]
            valid = [comment for comment, _ in checked if comment is not None]
            outcome = store.ingest(database, model, valid)
            if store_call.accounts is not None:  # never reveal another account's comment
                duplicates = [i for status, i in outcome.results if status == "duplicate"]
                owners = store.accounts_of(database, duplicates)
                allowed = store_call.accounts
                outcome.results = [
                    ("conflict", 0)
                    if status == "duplicate" and owners.get(i) not in allowed
                    else (status, i)
                    for status, i in outcome.results
                ]
            return checked, outcome

        checked, outcome = await in_store(store_call, check_and_store)
        stored = iter(outcome.results)
        results: list[dict[str, Any]] = []
        for index, (comment, error) in enumerate(checked):
            if comment is None:
                results.append({"index": index, "status": "rejected", "id": None, "error": error})
                continue
            status, comment_id = next(stored)
            if status == "conflict":
                results.append(
                    {
                        "index": index,
                        "status": "rejected",
                        "id": None,
                        "error": {
                            "code": "external_id_taken",
                            "message": "platform+external_id is already stored for an account "
                            "this key cannot see",
                        },
                    }
                )
                continue
            results.append(
                {
                    "index": index,
                    "status": status,
                    "id": comment_id,
                    "platform": comment["platform"],
                    "external_id": comment["external_id"],
                    "label": outcome.labels.get(comment_id) if status == "new" else None,
                }
            )
        rejected = sum(1 for result in results if result["status"] == "rejected")
        if rejected:
            for _, error in checked:
                if error is not None:
                    call.runtime.metrics.item_errors.labels(error["code"]).inc()
        return {
            "model_version": model.version,
            "new": outcome.new,
            "duplicate": outcome.duplicate,
            "rejected": rejected,
            "results": results,
        }

    @router.get(
        "/v1/queue",
        openapi_extra=SECURITY,
        response_model=CommentPage,
        responses=responses(400, 401, 403, 422, 429, 503),
        summary="Comments most important first",
    )
    async def queue(call: ClientStore, query: Annotated[QueueQuery, Query()]) -> Response:
        """Ordered by priority: the predicted (or corrected) label's weight, urgency,
        vulnerable-people topics, personal data, engagement (likes, replies) and waiting time,
        each shown in `priority_reasons`. Cursor pagination: pass `next_cursor` back with the
        same filters; the order is frozen at the first page's `as_of`."""
        page = await in_store(call, store.queue, query.filter(call), query.limit, query.cursor)
        return page_response(page)

    @router.get(
        "/v1/review",
        openapi_extra=SECURITY,
        response_model=CommentPage,
        responses=responses(400, 401, 403, 422, 429, 503),
        summary="Comments the model is least sure of",
    )
    async def review(call: ClientStore, query: Annotated[ReviewQuery, Query()]) -> Response:
        """Uncorrected comments by increasing margin between the model's two best labels:
        correcting these teaches the next model the most (active learning)."""
        page = await in_store(call, store.review, query.filter(call), query.limit, query.cursor)
        return page_response(page)

    @router.get(
        "/v1/comments/{comment_id}",
        openapi_extra=SECURITY,
        response_model=StoredComment,
        responses=responses(400, 401, 403, 404, 422, 429, 503),
        summary="One stored comment with its history",
    )
    async def get_comment(comment_id: CommentId, call: ClientStore) -> Response:
        found = await in_store(call, store.get_comment, comment_id, call.accounts)
        return json_response(found)

    @router.patch(
        "/v1/comments/{comment_id}",
        openapi_extra=SECURITY,
        response_model=StoredComment,
        responses=responses(400, 401, 403, 404, 413, 415, 422, 429, 503),
        summary="Change status, assign, add a note (admin)",
    )
    async def update_comment(
        comment_id: CommentId, body: CommentUpdate, call: AdminStore
    ) -> Response:
        """`answered` records the time of the answer (for time-to-answer statistics). Every
        change is kept in the comment's history with who made it."""
        fields = body.model_fields_set
        if not fields:
            raise ApiError(422, "validation_error", "body: give status, assignee or note")
        kwargs: dict[str, Any] = {"status": body.status, "note": body.note}
        if "assignee" in fields:
            kwargs["assignee"] = body.assignee
        updated = await in_store(
            call,
            store.update_comment,
            comment_id,
            call.caller.name,
            allowed=call.accounts,
            **kwargs,
        )
        return json_response(updated)

    @router.post(
        "/v1/comments/{comment_id}/label",
        openapi_extra=SECURITY,
        response_model=LabelResponse,
        responses=responses(400, 401, 403, 404, 413, 415, 422, 429, 503),
        summary="Correct the label (admin)",
    )
    async def correct_label(
        comment_id: CommentId,
        body: LabelRequest,
        call: AdminStore,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=200,
                description="Makes retries safe: the same key replays the first result.",
            ),
        ] = None,
    ) -> Response:
        """Appends to the comment's label history (the prediction and the model version are
        kept) and makes the label the comment's working label. The acknowledged label is
        committed before the response is sent."""
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(422, "validation_error", "Idempotency-Key: 1-200 printable characters")
        outcome = await in_store(
            call,
            store.correct_label,
            comment_id,
            body.label,
            call.caller.name,
            idempotency_key,
            call.accounts,
        )
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return json_response(
            {
                "event_id": outcome.event_id,
                "replayed": outcome.replayed,
                "comment": outcome.comment,
            },
            headers=headers,
        )

    @router.get(
        "/v1/stats",
        openapi_extra=SECURITY,
        response_model=Stats,
        responses=responses(400, 401, 403, 422, 429, 503),
        summary="Label shares per day and account; answer rates and times",
    )
    async def stats(
        call: ClientStore,
        since: SinceQ = None,
        until: UntilQ = None,
        account: AccountQ = None,
    ) -> Response:
        """Label drift (share of each label per day, overall and per account) and, per label
        and per account, the share answered and the median hours to answer. Default: the
        last 30 days."""
        figures = await in_store(call, store.stats, since, until, call.accounts, account or ())
        return json_response(figures)

    @router.get(
        "/v1/labels/export",
        openapi_extra=SECURITY,
        response_class=Response,
        responses={
            200: {
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "Corrected labels in the dataset format of datasets/.",
            },
            **responses(400, 401, 403, 422, 429, 503),
        },
        summary="Corrected labels as training data (admin)",
    )
    async def export_labels(call: AdminStore, since: SinceQ = None) -> Response:
        """Each corrected comment once with its latest label: `text,label,topic,lapor_type,...`
        (`lapor_type`: aspirasi, pengaduan, permintaan informasi)."""

        def work(database: Any) -> str:
            buffer = io.StringIO()
            store.write_corrections_csv(store.corrections(database, since, call.accounts), buffer)
            return buffer.getvalue()

        content = await in_store(call, work)
        return Response(
            content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="pilah-labels.csv"'},
        )

    return router

"""Request and response bodies of the HTTP API, with the examples shown in the OpenAPI docs.

Text limits (length, emptiness) are checked by the service with its settings, not here, so
that an item of a batch can fail on its own; `service.app` writes the configured limits
into the OpenAPI schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

Label = Literal["complaint", "question", "aspiration", "praise", "other"]
Platform = Literal["instagram", "facebook", "x", "youtube", "tiktok", "other"]
Flag = Literal["urgent", "spam", "pii"]
ReviewReason = Literal["low_confidence", "small_margin"]

EXAMPLE_TEXTS = {
    "keluhan": "Min, jalan di Jl. Kaligawe rusak parah dan berlubang, sudah 3 bulan tidak diperbaiki",
    "pertanyaan": "Kak, syarat daftar PKH apa aja ya? Makasih min",
    "aspirasi": "Alangkah baiknya di taman kota ditambah tempat sampah terpilah",
    "pujian": "Mantap pak wali, pelayanan dukcapil sekarang cepat 👍",
    "darurat": "Tolong min, banjir setinggi lutut di Genuk, warga butuh evakuasi!",
}


class ClassifyRequest(BaseModel):
    """One comment to classify."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"text": EXAMPLE_TEXTS["keluhan"], "id": "ig-18023", "platform": "instagram"},
                {"text": EXAMPLE_TEXTS["pertanyaan"], "platform": "facebook"},
            ]
        },
    )

    text: str = Field(
        description="The comment as the citizen wrote it (slang, emoji and broken encoding are fine).",
        examples=[EXAMPLE_TEXTS["keluhan"]],
        # Documented here, enforced by the service (which also counts invisible-only text
        # as empty) so that the error says `empty_text` / `text_too_long`.
        json_schema_extra={"pattern": r"\S", "minLength": 1, "maxLength": 5000},
    )
    id: str | None = Field(
        default=None,
        description="Your identifier for the comment, returned unchanged.",
        examples=["ig-18023"],
    )
    platform: Platform | None = Field(
        default=None, description="Where the comment was posted.", examples=["instagram"]
    )


_ITEM_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1000,
    "items": {"$ref": "#/components/schemas/ClassifyRequest"},
    "description": "Comments to classify, at most `max_batch_items` (see GET /v1/model). "
    "An invalid item gets its own error entry; the other items are still classified.",
}


class BatchRequest(BaseModel):
    """Up to `max_batch_items` comments; results come back in input order."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"id": "1", "text": EXAMPLE_TEXTS["keluhan"], "platform": "instagram"},
                        {"id": "2", "text": EXAMPLE_TEXTS["pujian"]},
                        {"id": "3", "text": EXAMPLE_TEXTS["darurat"], "platform": "x"},
                    ]
                }
            ]
        },
    )

    # Items are validated one by one by the service, so they are `Any` here; the schema
    # still documents them as ClassifyRequest.
    items: Annotated[list[Any], WithJsonSchema(_ITEM_SCHEMA)]


class Scores(BaseModel):
    """Probability of every label (they sum to 1)."""

    complaint: float = Field(ge=0, le=1)
    question: float = Field(ge=0, le=1)
    aspiration: float = Field(ge=0, le=1)
    praise: float = Field(ge=0, le=1)
    other: float = Field(ge=0, le=1)


class Feature(BaseModel):
    feature: str = Field(
        description="A stemmed word or word pair the model knows; `^word` is one of the "
        "comment's first tokens (words, ?, !, emoji); <url>, <mention>, <neg>... are "
        "placeholders and cues."
    )
    weight: float = Field(description="How far it pushed the decision (log-odds units).")


class Explanation(BaseModel):
    """The features that pushed the comment towards `label` rather than `versus`, strongest
    first: each feature's tf-idf value times the difference of its weights for the two labels."""

    versus: Label | None = Field(description="The runner-up label.")
    features: list[Feature]


class PriorityReason(BaseModel):
    code: str = Field(examples=["label", "urgent", "topic", "pii", "spam"])
    detail: str = Field(examples=["complaint 0.93"])
    points: int


class Priority(BaseModel):
    """How soon an admin should look at the comment (0-100) and why."""

    score: int = Field(ge=0, le=100)
    reasons: list[PriorityReason]


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "ig-18023",
                    "label": "complaint",
                    "confidence": 0.93,
                    "scores": {
                        "complaint": 0.93,
                        "question": 0.03,
                        "aspiration": 0.02,
                        "praise": 0.01,
                        "other": 0.01,
                    },
                    "needs_review": False,
                    "review_reasons": [],
                    "explanation": {
                        "versus": "question",
                        "features": [
                            {"feature": "rusak", "weight": 1.42},
                            {"feature": "tidak baik", "weight": 0.61},
                        ],
                    },
                    "priority": {
                        "score": 50,
                        "reasons": [
                            {"code": "label", "detail": "complaint 0.93", "points": 45},
                            {"code": "topic", "detail": "jalan", "points": 5},
                        ],
                    },
                    "flags": [],
                    "topics": ["jalan"],
                    "model_version": "20261128-205605-18aef410",
                }
            ]
        }
    )

    id: str | None = None
    label: Label
    confidence: float = Field(ge=0, le=1)
    scores: Scores
    needs_review: bool = Field(
        description="True when the confidence is below the label's threshold or the top two "
        "scores are close (thresholds in GET /v1/model)."
    )
    review_reasons: list[ReviewReason]
    explanation: Explanation
    priority: Priority
    flags: list[Flag] = Field(
        description="urgent (disaster, accident, emergency), spam (online gambling, promotion), "
        "pii (NIK/KK, phone number or e-mail address in the text)."
    )
    topics: list[str] = Field(examples=[["bansos", "adminduk"]])
    model_version: str


class ItemError(BaseModel):
    code: str = Field(examples=["empty_text"])
    message: str


class BatchResult(BaseModel):
    index: int = Field(ge=0, description="Position of the item in the request.")
    id: str | None = None
    result: ClassifyResponse | None = None
    error: ItemError | None = None


class BatchResponse(BaseModel):
    model_version: str
    count: int
    failed: int = Field(description="Items that got an error instead of a result.")
    results: list[BatchResult]


class Thresholds(BaseModel):
    min_confidence: dict[str, float]
    min_margin: float
    source: Literal["manifest", "default"]


class Limits(BaseModel):
    max_text_chars: int
    max_batch_items: int
    max_body_bytes: int
    max_id_chars: int


class ModelInfo(BaseModel):
    version: str
    labels: list[str]
    created_at: str | None
    classifier: str | None
    metrics: dict[str, Any]
    thresholds: Thresholds
    limits: Limits


class ReloadRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{}, {"version": "20261128-205605-18aef410"}]},
    )

    version: str | None = Field(
        default=None,
        description="A version in the models folder (default: the newest).",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    )


class ReloadResponse(BaseModel):
    previous_version: str | None
    model_version: str
    changed: bool
    load_seconds: float


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str


class ErrorDetail(BaseModel):
    code: str = Field(examples=["text_too_long"])
    message: str = Field(examples=["text is longer than 5000 characters"])
    request_id: str = Field(examples=["3f2a9c1e5b7d4e0f8a6b2c9d1e3f5a7b"])


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- the comment store: ingest, queue, feedback -------------------------------------------


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _bounded(value: datetime) -> datetime:
    from service.store.schema import bounded_time

    return bounded_time(value)


SafeStr = Annotated[str, AfterValidator(_no_nul)]
ApiTime = Annotated[datetime, AfterValidator(_bounded)]

Status = Literal["new", "answered", "dismissed", "escalated"]


class CommentIn(BaseModel):
    """A comment from one of the agency's accounts. (`platform`, `external_id`) identifies it:
    posting it again stores nothing new."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "platform": "instagram",
                    "external_id": "17990011223344556",
                    "account": "pemkotsemarang",
                    "post_id": "C9xYz12AbCd",
                    "post_url": "https://www.instagram.com/p/C9xYz12AbCd/",
                    "author": "warga_genuk",
                    "posted_at": "2026-11-27T08:15:00Z",
                    "likes": 14,
                    "replies": 2,
                    "text": EXAMPLE_TEXTS["keluhan"],
                }
            ]
        },
    )

    platform: Platform
    external_id: SafeStr = Field(min_length=1, max_length=256, description="The platform's id.")
    account: SafeStr = Field(
        min_length=1, max_length=128, description="The agency account it was posted on."
    )
    text: str = Field(
        description="As written; NIK/KK and phone numbers are masked before storing.",
        json_schema_extra={"pattern": r"\S", "minLength": 1, "maxLength": 5000},
    )
    post_id: SafeStr | None = Field(default=None, max_length=256)
    post_url: SafeStr | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    author: SafeStr | None = Field(default=None, max_length=256)
    posted_at: ApiTime | None = Field(
        default=None, description="ISO 8601; no zone means UTC; years 2000-2100."
    )
    likes: int = Field(default=0, ge=0, le=2_000_000_000)
    replies: int = Field(default=0, ge=0, le=2_000_000_000)


_COMMENT_ITEMS: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": 1000,
    "items": {"$ref": "#/components/schemas/CommentIn"},
    "description": "At most `max_batch_items` comments. An invalid item is rejected on its "
    "own (with a reason); the others are stored.",
}


class CommentBatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: Annotated[list[Any], WithJsonSchema(_COMMENT_ITEMS)]


class IngestResult(BaseModel):
    index: int = Field(ge=0)
    status: Literal["new", "duplicate", "rejected"]
    id: int | None = Field(description="Pilah's id of the stored comment.")
    platform: str | None = None
    external_id: str | None = None
    label: Label | None = Field(default=None, description="The predicted label of a new comment.")
    error: ItemError | None = None


class IngestResponse(BaseModel):
    model_version: str
    new: int
    duplicate: int
    rejected: int
    results: list[IngestResult]


class HistoryEntry(BaseModel):
    type: Literal["label", "action"]
    at: datetime
    actor: str
    label: Label | None = None
    previous_label: Label | None = None
    predicted_label: Label | None = None
    model_version: str | None = None
    status: Status | None = None
    assignee: str | None = None
    note: str | None = None


class StoredComment(BaseModel):
    id: int
    platform: str
    external_id: str
    account: str
    post_id: str | None
    post_url: str | None
    author: str | None
    posted_at: datetime | None
    likes: int
    replies: int
    text: str
    pii_masked: list[str] = Field(description="Kinds of numbers masked: idnum, phone.")
    label: Label = Field(description="The admin's label if corrected, else the prediction.")
    predicted_label: Label
    human_label: Label | None
    scores: Scores
    confidence: float
    needs_review: bool
    review_reasons: list[ReviewReason]
    flags: list[Flag]
    topics: list[str]
    priority: int = Field(
        ge=0, description="Queue priority: the comment's priority plus engagement and waiting."
    )
    priority_reasons: list[PriorityReason]
    model_version: str
    status: Status
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    answered_at: datetime | None
    margin: float | None = Field(
        default=None, description="Review list only: gap between the two best scores."
    )
    history: list[HistoryEntry] | None = None


class CommentPage(BaseModel):
    items: list[StoredComment]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    as_of: datetime


class CommentUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "answered", "note": "Sudah dibalas via DM"}]},
    )

    status: Status | None = None
    assignee: SafeStr | None = Field(default=None, max_length=128)
    note: SafeStr | None = Field(default=None, max_length=2000)


class LabelRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"label": "question"}]}
    )

    label: Label


class LabelResponse(BaseModel):
    event_id: int
    replayed: bool = Field(description="True when an Idempotency-Key retry replayed the result.")
    comment: StoredComment


class DayCounts(BaseModel):
    day: str
    account: str | None = None
    total: int
    counts: dict[str, int]
    shares: dict[str, float]


class AnswerSummary(BaseModel):
    total: int
    answered: int
    answered_share: float
    median_hours_to_answer: float | None


class Stats(BaseModel):
    since: datetime
    until: datetime
    days: list[DayCounts]
    days_by_account: list[DayCounts]
    answers_by_label: dict[str, AnswerSummary]
    answers_by_account: dict[str, AnswerSummary]

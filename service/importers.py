"""Reading platform comment exports (CSV, JSON, JSONL) into normalised comment records.

`read_export(path)` yields one `ImportRow` per record of the file: either a normalised
`comment` dict or a one-line `error` (never quoting the comment's text, which is citizens'
personal data). Problems that make the whole file unusable (not UTF-8, a spreadsheet workbook,
empty, invalid JSON, no text column, no records) raise `ImportFileError` when `read_export` is
called, before any row is produced; only a CSV that breaks down part-way (e.g. an unclosed quote
or a field over the csv module's 131,072-character limit) raises it during the iteration.

Formats (decided by the content, the extension only breaks ties):
- CSV: UTF-8 with or without BOM, any newline style, quoted multi-line fields; the delimiter is
  `,`, `;` (Excel in the Indonesian locale) or tab, whichever the header line uses most. Header
  names match case-insensitively. Streamed. Record number = data row number (header excluded;
  blank rows and rows of empty cells are skipped but counted, so record N is spreadsheet row
  N + 1).
- JSONL (`.jsonl`, `.ndjson`, or a `.json` whose first line is a whole object followed by more
  lines): one object per line, streamed. Record number = line number; blank lines are skipped, a
  line that is not a JSON object is a rejected row.
- JSON: an array of comment objects, or an object holding the array under `data` (Graph API,
  X API v2), `items` (YouTube Data API), `comments` (TikTok) or `results`; any other object is
  read as a single comment. Loaded whole. Record number = index + 1. X API v2 `includes.users`
  are joined to the tweets by `author_id` (as `author`), so `author.username` resolves.

Field sources per platform: the first candidate path holding a non-empty value wins. A path is
a literal key first (CSV headers such as `public_metrics.like_count` from twarc-csv), then a
dotted walk through nested objects. `account` (the account the comment was posted on) comes
from the record's `account` field, else from the `account` argument (`--account`). Without a
`post_url`, X and YouTube rows get one built from `post_id`.

| platform | field | source paths (first non-empty wins) |
|---|---|---|
| instagram | external_id | id, pk |
| instagram | text | text |
| instagram | account | account |
| instagram | author | ownerUsername, owner.username, username, user.username |
| instagram | posted_at | timestamp, created_at |
| instagram | likes | likesCount, like_count, comment_like_count |
| instagram | replies | repliesCount, replies_count, child_comment_count |
| instagram | post_id | media.id, media_id, mediaId, postId, post_id |
| instagram | post_url | postUrl, permalink, post_url |
| facebook | external_id | id, comment_id, commentId |
| facebook | text | message, text |
| facebook | account | account |
| facebook | author | from.name, profileName, author |
| facebook | posted_at | created_time, date, timestamp |
| facebook | likes | like_count, likesCount, likes_count |
| facebook | replies | comment_count, commentsCount, repliesCount |
| facebook | post_id | post_id, postId, object.id |
| facebook | post_url | postUrl, facebookUrl, post_url, permalink_url |
| x | external_id | id, id_str, tweet_id |
| x | text | note_tweet.text, text, full_text |
| x | account | account |
| x | author | author.username, username, user.screen_name, author_username |
| x | posted_at | created_at |
| x | likes | public_metrics.like_count, like_count, favorite_count |
| x | replies | public_metrics.reply_count, reply_count |
| x | post_id | conversation_id, conversation_id_str |
| x | post_url | post_url |
| youtube | external_id | snippet.topLevelComment.id, id, cid, comment_id, commentId |
| youtube | text | snippet.topLevelComment.snippet.textOriginal, snippet.textOriginal, textOriginal, snippet.topLevelComment.snippet.textDisplay, snippet.textDisplay, textDisplay, text, comment |
| youtube | account | account |
| youtube | author | snippet.topLevelComment.snippet.authorDisplayName, snippet.authorDisplayName, authorDisplayName, author |
| youtube | posted_at | snippet.topLevelComment.snippet.publishedAt, snippet.publishedAt, publishedAt, published_at, time_parsed |
| youtube | likes | snippet.topLevelComment.snippet.likeCount, snippet.likeCount, likeCount, like_count, votes, voteCount |
| youtube | replies | snippet.totalReplyCount, totalReplyCount, reply_count, replyCount, replies |
| youtube | post_id | snippet.videoId, snippet.topLevelComment.snippet.videoId, videoId, video_id |
| youtube | post_url | videoUrl, video_url, pageUrl, post_url |
| tiktok | external_id | cid, comment_id, id |
| tiktok | text | text, comment |
| tiktok | account | account |
| tiktok | author | user.unique_id, uniqueId, unique_id, user.uniqueId, username |
| tiktok | posted_at | create_time, createTimeISO, createTime |
| tiktok | likes | digg_count, diggCount |
| tiktok | replies | reply_comment_total, replyCommentTotal |
| tiktok | post_id | aweme_id, awemeId, video_id, videoId |
| tiktok | post_url | videoWebUrl, video_url, post_url |
| generic | external_id | external_id, id |
| generic | text | text |
| generic | account | account |
| generic | author | author |
| generic | posted_at | posted_at |
| generic | likes | likes |
| generic | replies | replies |
| generic | post_id | post_id |
| generic | post_url | post_url |
| generic | platform | platform |

Values:
- `platform`: the platform's name; a generic row uses its `platform` column when it names one of
  the five platforms (case-insensitive, `twitter` = `x`), otherwise `other`.
- `text`: exactly as in the file (no strip, no Unicode normalisation). Rejected when missing,
  empty or invisible-only ("empty text"), longer than `max_text_chars`, containing NUL, or not
  a string.
- `posted_at`: UTC `datetime`. ISO 8601 (no zone = UTC; `Z`, `+07:00`, `+0700`), `2024-05-01
  13:45[:00]`, `2024/05/01 13:45[:00]`, `... UTC`, X v1.1 `Wed May 01 13:45:00 +0000 2024`,
  RFC 2822, and epoch seconds or milliseconds (>= 1e11) as a number or numeric string.
  Day-first/month-first forms such as `01/05/2024` are ambiguous and rejected ("bad posted_at").
- `likes`, `replies`: integers >= 0 (default 0); `3.0` (pandas) and abbreviated `1.2K`, `3M`,
  `1,2 rb`, `2 jt` are accepted; fractions, negatives and non-numbers reject the row.
- `author`, `account`: stripped, without a leading `@`. `post_url`: http(s) URLs only, else None.
- `external_id` (<= 256 characters): without one, `"h:" + sha256(json [platform, account,
  author, posted_at ISO, text])[:32]`, so re-importing the same export gives the same ids.

Platform detection (`detect_platform`) counts the platform-specific keys found in the CSV header
or the JSON records (`SIGNATURES`); the highest count wins, `generic` when none is found.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from service.errors import PilahError
from service.store.schema import MAX_YEAR, MIN_YEAR, YearOutOfRange, bounded_time
from service.validation import has_visible_text

PLATFORMS: tuple[str, ...] = ("instagram", "facebook", "x", "youtube", "tiktok", "generic")

FIELDS: tuple[str, ...] = (
    "platform",
    "external_id",
    "account",
    "post_id",
    "post_url",
    "author",
    "posted_at",
    "likes",
    "replies",
    "text",
)
MAX_EXTERNAL_ID_CHARS = 256
MAX_ACCOUNT_CHARS = 128
MAX_COUNT = 2**63 - 1  # a signed 64-bit database integer

# field -> candidate source paths, in order of preference (the module docstring's table).
MAPPINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "instagram": {
        # Graph API /{media-id}/comments, Apify instagram-comment-scraper, instaloader-style.
        "external_id": ("id", "pk"),
        "text": ("text",),
        "account": ("account",),
        "author": ("ownerUsername", "owner.username", "username", "user.username"),
        "posted_at": ("timestamp", "created_at"),
        "likes": ("likesCount", "like_count", "comment_like_count"),
        "replies": ("repliesCount", "replies_count", "child_comment_count"),
        "post_id": ("media.id", "media_id", "mediaId", "postId", "post_id"),
        "post_url": ("postUrl", "permalink", "post_url"),
    },
    "facebook": {
        # Graph API /{post-id}/comments, Apify facebook-comments-scraper.
        "external_id": ("id", "comment_id", "commentId"),
        "text": ("message", "text"),
        "account": ("account",),
        "author": ("from.name", "profileName", "author"),
        "posted_at": ("created_time", "date", "timestamp"),
        "likes": ("like_count", "likesCount", "likes_count"),
        "replies": ("comment_count", "commentsCount", "repliesCount"),
        "post_id": ("post_id", "postId", "object.id"),
        "post_url": ("postUrl", "facebookUrl", "post_url", "permalink_url"),
    },
    "x": {
        # API v2 JSON (+ includes.users), twarc-csv, tweet-harvest CSV (v1.1 field names).
        "external_id": ("id", "id_str", "tweet_id"),
        "text": ("note_tweet.text", "text", "full_text"),
        "account": ("account",),
        "author": ("author.username", "username", "user.screen_name", "author_username"),
        "posted_at": ("created_at",),
        "likes": ("public_metrics.like_count", "like_count", "favorite_count"),
        "replies": ("public_metrics.reply_count", "reply_count"),
        "post_id": ("conversation_id", "conversation_id_str"),
        "post_url": ("post_url",),
    },
    "youtube": {
        # Data API commentThreads / comments JSON, youtube-comment-downloader, flat CSVs.
        "external_id": ("snippet.topLevelComment.id", "id", "cid", "comment_id", "commentId"),
        "text": (
            "snippet.topLevelComment.snippet.textOriginal",
            "snippet.textOriginal",
            "textOriginal",
            "snippet.topLevelComment.snippet.textDisplay",
            "snippet.textDisplay",
            "textDisplay",
            "text",
            "comment",
        ),
        "account": ("account",),
        "author": (
            "snippet.topLevelComment.snippet.authorDisplayName",
            "snippet.authorDisplayName",
            "authorDisplayName",
            "author",
        ),
        "posted_at": (
            "snippet.topLevelComment.snippet.publishedAt",
            "snippet.publishedAt",
            "publishedAt",
            "published_at",
            "time_parsed",
        ),
        "likes": (
            "snippet.topLevelComment.snippet.likeCount",
            "snippet.likeCount",
            "likeCount",
            "like_count",
            "votes",
            "voteCount",
        ),
        "replies": (
            "snippet.totalReplyCount",
            "totalReplyCount",
            "reply_count",
            "replyCount",
            "replies",
        ),
        "post_id": (
            "snippet.videoId",
            "snippet.topLevelComment.snippet.videoId",
            "videoId",
            "video_id",
        ),
        "post_url": ("videoUrl", "video_url", "pageUrl", "post_url"),
    },
    "tiktok": {
        # Web API comment list JSON and scraper exports (snake_case and Apify camelCase).
        "external_id": ("cid", "comment_id", "id"),
        "text": ("text", "comment"),
        "account": ("account",),
        "author": ("user.unique_id", "uniqueId", "unique_id", "user.uniqueId", "username"),
        "posted_at": ("create_time", "createTimeISO", "createTime"),
        "likes": ("digg_count", "diggCount"),
        "replies": ("reply_comment_total", "replyCommentTotal"),
        "post_id": ("aweme_id", "awemeId", "video_id", "videoId"),
        "post_url": ("videoWebUrl", "video_url", "post_url"),
    },
    "generic": {
        "external_id": ("external_id", "id"),
        "text": ("text",),
        "account": ("account",),
        "author": ("author",),
        "posted_at": ("posted_at",),
        "likes": ("likes",),
        "replies": ("replies",),
        "post_id": ("post_id",),
        "post_url": ("post_url",),
        "platform": ("platform",),
    },
}

# A post URL built from post_id when the export has none.
POST_URL_TEMPLATES: dict[str, str] = {
    "x": "https://x.com/i/web/status/{}",
    "youtube": "https://www.youtube.com/watch?v={}",
}

# Platform-specific keys: each entry scores one point when all its keys are present.
SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "instagram": (
        ("ownerUsername",),
        ("ownerProfilePicUrl",),
        ("owner.username",),
        ("media.id",),
        ("media_id",),
        ("timestamp", "username"),
    ),
    "facebook": (
        ("message",),
        ("created_time",),
        ("from.name",),
        ("from.id",),
        ("permalink_url",),
        ("profileName",),
        ("profileId",),
        ("facebookUrl",),
        ("feedbackId",),
        ("threadingDepth",),
    ),
    "x": (
        ("author_id",),
        ("conversation_id",),
        ("public_metrics.like_count",),
        ("edit_history_tweet_ids",),
        ("in_reply_to_user_id",),
        ("note_tweet.text",),
        ("id_str",),
        ("full_text",),
        ("favorite_count",),
        ("retweet_count",),
        ("conversation_id_str",),
        ("in_reply_to_screen_name",),
    ),
    "youtube": (
        ("snippet.topLevelComment.id",),
        ("snippet.videoId",),
        ("snippet.totalReplyCount",),
        ("snippet.textOriginal",),
        ("textOriginal",),
        ("textDisplay",),
        ("authorDisplayName",),
        ("totalReplyCount",),
        ("videoId",),
        ("time_parsed",),
        ("votes",),
        ("heart",),
    ),
    "tiktok": (
        ("aweme_id",),
        ("create_time",),
        ("digg_count",),
        ("reply_comment_total",),
        ("user.unique_id",),
        ("awemeId",),
        ("diggCount",),
        ("replyCommentTotal",),
        ("createTimeISO",),
        ("uniqueId",),
        ("videoWebUrl",),
    ),
}

_PLATFORM_NAMES: dict[str, str] = {p: p for p in PLATFORMS if p != "generic"} | {"twitter": "x"}
_JSON_CONTAINERS = ("data", "items", "comments", "results")
_LOOKAHEAD = 1000  # JSONL records inspected up front (platform detection, text field check)
_CHUNK = 1 << 16  # the UTF-8 check streams the file in 64 KiB chunks

_SURROGATE = re.compile("[\ud800-\udfff]")
_NONBLANK = re.compile("[^\\s\ufeff]")
_INTEGER = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_ABBREVIATED = re.compile(r"([0-9]+(?:[.,][0-9]+)?)\s*(k|m|b|rb|jt)", re.IGNORECASE)
_MULTIPLIERS = {"k": 1_000, "rb": 1_000, "m": 1_000_000, "jt": 1_000_000, "b": 1_000_000_000}
_DATE_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%a %b %d %H:%M:%S %z %Y",  # X API v1.1, tweet-harvest
)
_EPOCH_MS = 10**11  # larger epoch values are milliseconds (1e11 s is the year 5138)


class ImportFileError(PilahError):
    """The whole export is unusable (encoding, format, no text column, no records)."""


@dataclass(frozen=True)
class ImportRow:
    record: int
    comment: dict[str, Any] | None
    error: str | None


class _Missing:
    pass


_MISSING: Any = _Missing()


# ---------------------------------------------------------------------------------- records


def read_export(
    path: Path,
    platform: str | None = None,
    account: str | None = None,
    max_text_chars: int = 5000,
) -> Iterator[ImportRow]:
    """One ImportRow per record of a CSV/JSON/JSONL export, in file order.

    File-level problems raise ImportFileError now; a bad `platform` raises ValueError."""
    if platform is not None and platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (expected one of {', '.join(PLATFORMS)})")
    if max_text_chars < 1:
        raise ValueError("max_text_chars must be at least 1")
    path = Path(path)
    source = _open_source(path)
    chosen = platform or _detect(source.keys)
    text_paths = MAPPINGS[chosen]["text"]
    if not any(p in source.keys for p in text_paths):
        where = "column" if source.kind == "csv" else "field"
        raise ImportFileError(
            f"{path}: no text {where} for platform {chosen} (expected one of: {', '.join(text_paths)})"
        )
    return _rows(source, chosen, account, max_text_chars)


def detect_platform(path: Path) -> str:
    """The platform whose export format the file's columns/keys match best, else "generic".

    Raises ImportFileError for a file read_export would refuse as unreadable."""
    return _detect(_open_source(Path(path)).keys)


def mapping_table() -> str:
    """The column mappings as a Markdown table (also in the module docstring)."""
    lines = [
        "| platform | field | source paths (first non-empty wins) |",
        "|---|---|---|",
    ]
    for platform, mapping in MAPPINGS.items():
        for field, paths in mapping.items():
            lines.append(f"| {platform} | {field} | {', '.join(paths)} |")
    return "\n".join(lines)


def _rows(
    source: _Source, platform: str, account: str | None, max_text_chars: int
) -> Iterator[ImportRow]:
    for number, raw, problem in source.records():
        if problem is not None:
            yield ImportRow(number, None, problem)
            continue
        try:
            comment = normalise_comment(raw, platform, account, max_text_chars)
        except ValueError as exc:
            yield ImportRow(number, None, str(exc))
        else:
            yield ImportRow(number, comment, None)


# ------------------------------------------------------------------------------ normalising


def normalise_comment(
    raw: Mapping[str, Any],
    platform: str,
    account: str | None,
    max_text_chars: int = 5000,
) -> dict[str, Any]:
    """The contract's comment dict for one raw record; ValueError(reason) for a bad record.

    Reasons are short fixed phrases: they never quote the text or any other value."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}")
    if not isinstance(raw, Mapping):
        raise ValueError("record is not an object")
    mapping = MAPPINGS[platform]

    text = _first(raw, mapping["text"])
    if text is _MISSING:
        raise ValueError("empty text")
    if not isinstance(text, str):
        raise ValueError("text is not a string")
    if len(text) > max_text_chars:
        raise ValueError(f"text longer than {max_text_chars} characters")
    if "\x00" in text:
        raise ValueError("text contains a NUL character")
    if _SURROGATE.search(text):
        raise ValueError("text is not valid Unicode")
    if not has_visible_text(text):  # the API's own notion of "empty text"
        raise ValueError("empty text")

    if platform == "generic":
        named = _first(raw, mapping["platform"])
        key = named.strip().lower() if isinstance(named, str) else ""
        out_platform = _PLATFORM_NAMES.get(key, "other")
    else:
        out_platform = platform

    handle = _handle(_first(raw, mapping["account"]), "account") or _handle(account, "account")
    if handle is None:
        raise ValueError("no account: pass --account")
    if len(handle) > MAX_ACCOUNT_CHARS:
        raise ValueError(f"account longer than {MAX_ACCOUNT_CHARS} characters")

    author = _handle(_first(raw, mapping["author"]), "author")
    posted_at = _datetime(_first(raw, mapping["posted_at"]))
    likes = _count(_first(raw, mapping["likes"]), "likes")
    replies = _count(_first(raw, mapping["replies"]), "replies")
    post_id = _string(_first(raw, mapping["post_id"]), "post_id")
    post_url = _url(_first(raw, mapping["post_url"]))
    if post_url is None and post_id is not None and out_platform in POST_URL_TEMPLATES:
        post_url = POST_URL_TEMPLATES[out_platform].format(quote(post_id, safe=""))

    external_id = _string(_first(raw, mapping["external_id"]), "external_id")
    if external_id is None:
        external_id = derived_id(out_platform, handle, author, posted_at, text)
    elif len(external_id) > MAX_EXTERNAL_ID_CHARS:
        raise ValueError(f"external_id longer than {MAX_EXTERNAL_ID_CHARS} characters")
    for name, value in (
        ("external_id", external_id),
        ("account", handle),
        ("post_id", post_id),
        ("post_url", post_url),
        ("author", author),
    ):
        if value is not None and "\x00" in value:
            raise ValueError(f"{name} contains a NUL character")

    return {
        "platform": out_platform,
        "external_id": external_id,
        "account": handle,
        "post_id": post_id,
        "post_url": post_url,
        "author": author,
        "posted_at": posted_at,
        "likes": likes,
        "replies": replies,
        "text": text,
    }


def derived_id(
    platform: str, account: str, author: str | None, posted_at: datetime | None, text: str
) -> str:
    """The deterministic external_id of a comment that has none in its export."""
    stamp = posted_at.isoformat() if posted_at is not None else None
    payload = json.dumps([platform, account, author, stamp, text], ensure_ascii=False)
    return "h:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    """record[path] as a literal key, else a walk through nested objects; _MISSING if absent."""
    if path in record:
        return record[path]
    if "." not in path:
        return _MISSING
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _first(record: Mapping[str, Any], paths: Iterable[str]) -> Any:
    """The first candidate's value that is neither absent, null nor the empty string."""
    for path in paths:
        value = _lookup(record, path)
        if value is not _MISSING and value is not None and value != "":
            return value
    return _MISSING


def _string(value: Any, field: str) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"bad {field}")
    if _SURROGATE.search(value):
        raise ValueError(f"{field} is not valid Unicode")
    return value.strip() or None


def _handle(value: Any, field: str) -> str | None:
    """A user or account name without surrounding space or a leading @."""
    name = _string(value, field)
    if name is None:
        return None
    return name.removeprefix("@").strip() or None


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or _SURROGATE.search(value):
        return None
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
        return None
    return url


def _count(value: Any, field: str) -> int:
    """A non-negative integer count; absent or empty means 0."""
    if value is _MISSING or value is None:
        return 0
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        number = _count_string(value.strip())
    if number is None:
        raise ValueError(f"non-integer {field}")
    if number < 0:
        raise ValueError(f"negative {field}")
    if number > MAX_COUNT:
        raise ValueError(f"{field} out of range")
    return number


def _count_string(text: str) -> int | None:
    if not text:
        return 0
    if _INTEGER.fullmatch(text):
        return int(text.split(".")[0])
    match = _ABBREVIATED.fullmatch(text)
    if match:
        amount = Decimal(match.group(1).replace(",", "."))
        return int(amount * _MULTIPLIERS[match.group(2).lower()])
    return None


def _datetime(value: Any) -> datetime | None:
    if value is _MISSING or value is None:
        return None
    parsed: datetime | None = None
    try:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, bool):
            parsed = None
        elif isinstance(value, int | float):
            parsed = _from_epoch(Decimal(value))
        elif isinstance(value, str):
            parsed = _datetime_string(value.strip())
    except (ValueError, OverflowError, OSError, InvalidOperation):
        parsed = None
    if parsed is None:
        raise ValueError("bad posted_at")
    try:
        return bounded_time(parsed)
    except YearOutOfRange:
        raise ValueError(f"posted_at outside {MIN_YEAR}-{MAX_YEAR}") from None
    except ValueError:
        raise ValueError("bad posted_at") from None


def _from_epoch(seconds: Decimal) -> datetime:
    if not seconds.is_finite():
        raise ValueError("not a finite number")
    if abs(seconds) >= _EPOCH_MS:
        seconds = seconds / 1000
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def _datetime_string(text: str) -> datetime | None:
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        return _from_epoch(Decimal(text))
    if text.endswith((" UTC", " GMT")):
        text = text[:-4] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    try:
        return parsedate_to_datetime(text)  # RFC 2822
    except (TypeError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------------- sources

# (record number, raw record, rejection reason or None)
_Record = tuple[int, Mapping[str, Any], str | None]


@dataclass(frozen=True)
class _Source:
    kind: str  # "csv", "json" or "jsonl"
    keys: frozenset[str]  # CSV header, or the key paths of the first _LOOKAHEAD JSON records
    records: Callable[[], Iterator[_Record]]  # reads (again) from the start


def _open_source(path: Path) -> _Source:
    _check_bytes(path)
    kind = _sniff(path)
    if kind == "csv":
        return _csv_source(path)
    if kind == "jsonl":
        return _jsonl_source(path)
    return _json_source(path)


def _check_bytes(path: Path) -> None:
    """Readable, not a workbook, UTF-8 throughout, not blank: checked in one streaming pass."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    blank = True
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
                raise ImportFileError(
                    f"{path}: a spreadsheet workbook, not CSV; save it as 'CSV UTF-8' first"
                )
            if head.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise ImportFileError(f"{path}: UTF-16 text; re-save it as UTF-8")
            handle.seek(0)
            while chunk := handle.read(_CHUNK):
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    position = offset - pending + exc.start
                    raise ImportFileError(
                        f"{path}: not UTF-8 (byte {position}); re-save it as UTF-8"
                    ) from None
                blank = blank and not _NONBLANK.search(text)
                offset += len(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{path}: not UTF-8 (truncated at the end); re-save it as UTF-8"
                ) from None
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc.strerror})") from None
    if blank:
        raise ImportFileError(f"{path}: the file is empty")


def _sniff(path: Path) -> str:
    """'csv', 'json' or 'jsonl', from the first non-blank line (the extension breaks ties)."""
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        lines = (line for line in handle if line.strip())
        first = next(lines, "").strip()
        if first.startswith("["):
            return "json"
        if first.startswith("{"):
            if suffix in {".jsonl", ".ndjson"}:
                return "jsonl"
            if next(lines, None) is None:
                return "json"  # a one-line document
            try:
                return "jsonl" if isinstance(json.loads(first), dict) else "json"
            except (ValueError, RecursionError):
                return "json"  # e.g. the "{" of a pretty-printed object
    if suffix in {".json", ".jsonl", ".ndjson"}:
        raise ImportFileError(f"{path}: invalid JSON (line 1 does not start an object or array)")
    return "csv"


def _csv_delimiter(header_line: str) -> str:
    counts: dict[str, int] = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _known_names() -> dict[str, str]:
    """lower-cased name -> canonical spelling, for every path the mappings and signatures use."""
    names = {p for m in MAPPINGS.values() for paths in m.values() for p in paths}
    names |= {k for sigs in SIGNATURES.values() for sig in sigs for k in sig}
    return {name.lower(): name for name in sorted(names)}


_KNOWN_NAMES = _known_names()


def _canonical_header(header: list[str]) -> list[str]:
    """Header names stripped, and matched case-insensitively to the names the mappings use."""
    stripped = [name.strip() for name in header]
    present = set(stripped)
    result = []
    for name in stripped:
        canonical = _KNOWN_NAMES.get(name.lower(), name)
        result.append(canonical if canonical not in present else name)
    return result


def _csv_source(path: Path) -> _Source:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header_line = next((line for line in handle if line.strip()), "")
    delimiter = _csv_delimiter(header_line)

    def rows() -> Iterator[tuple[int, list[str]]]:
        """(data row number, cells) after the header; number 0 is the header."""
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            number = -1
            try:
                for cells in reader:
                    if number == -1 and not any(c.strip() for c in cells):
                        continue  # blank lines before the header
                    number += 1
                    yield number, cells
            except csv.Error as exc:
                raise ImportFileError(
                    f"{path}: malformed CSV at record {max(number + 1, 1)} ({exc})"
                ) from None

    header: list[str] | None = None
    has_data = False
    for number, cells in rows():
        if number == 0:
            header = _canonical_header(cells)
        elif any(cell.strip() for cell in cells):
            has_data = True
            break
    if header is None or not has_data:
        raise ImportFileError(f"{path}: no comments in the file (only a header)")
    columns = header

    def records() -> Iterator[_Record]:
        for number, cells in rows():
            if number == 0 or not any(cell.strip() for cell in cells):
                continue
            yield number, dict(zip(columns, cells, strict=False)), None

    return _Source("csv", frozenset(columns), records)


def _jsonl_source(path: Path) -> _Source:
    def records() -> Iterator[_Record]:
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except (ValueError, RecursionError):
                    yield number, {}, "invalid JSON"
                    continue
                if isinstance(value, dict):
                    yield number, value, None
                else:
                    yield number, {}, "record is not a JSON object"

    keys: set[str] = set()
    for index, (number, value, problem) in enumerate(records()):
        if index == 0 and problem == "invalid JSON":
            raise ImportFileError(f"{path}: invalid JSON at line {number}")
        keys |= _key_paths([value])
        if index + 1 >= _LOOKAHEAD:
            break
    return _Source("jsonl", frozenset(keys), records)


def _json_source(path: Path) -> _Source:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path}: invalid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise ImportFileError(f"{path}: invalid JSON (nested too deeply)") from None
    items: list[Any]
    if isinstance(document, list):
        items = document
    elif isinstance(document, dict):
        container = next(
            (k for k in _JSON_CONTAINERS if isinstance(document.get(k), list)),
            None,
        )
        items = document[container] if container else [document]
        items = _join_x_users(items, document)
    else:
        raise ImportFileError(f"{path}: JSON holds a single value, not comments")
    if not items:
        raise ImportFileError(f"{path}: no comments in the file")
    objects = [item for item in items[: _LOOKAHEAD * 2] if isinstance(item, dict)]

    def records() -> Iterator[_Record]:
        for index, item in enumerate(items, start=1):
            if isinstance(item, dict):
                yield index, item, None
            else:
                yield index, {}, "record is not a JSON object"

    return _Source("json", _key_paths(objects[:_LOOKAHEAD]), records)


def _join_x_users(items: list[Any], document: Mapping[str, Any]) -> list[Any]:
    """X API v2: put each tweet's user object (from includes.users) under `author`."""
    includes = document.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    if not isinstance(users, list):
        return items
    by_id = {str(u["id"]): u for u in users if isinstance(u, dict) and "id" in u}
    joined: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "author" not in item:
            user = by_id.get(str(item.get("author_id")))
            if user is not None:
                item = {**item, "author": user}
        joined.append(item)
    return joined


def _key_paths(records: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Every dotted path through nested objects (not into arrays) of the records."""
    paths: set[str] = set()

    def walk(node: Mapping[str, Any], prefix: str, depth: int) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            paths.add(path)
            if isinstance(value, Mapping) and depth < 6:
                walk(value, path + ".", depth + 1)

    for record in records:
        walk(record, "", 0)
    return frozenset(paths)


def _detect(keys: frozenset[str]) -> str:
    scores = {
        platform: sum(all(key in keys for key in signature) for signature in signatures)
        for platform, signatures in SIGNATURES.items()
    }
    best = max(scores, key=lambda p: scores[p])  # ties: the first in PLATFORMS order
    return best if scores[best] > 0 else "generic"

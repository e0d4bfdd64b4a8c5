"""Checks of submitted comments against the configured limits (one place for the single and
the batch route, so both report the same codes). Messages never quote the text."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter, ValidationError

from service.http import describe_errors
from service.schemas import ClassifyRequest
from service.settings import Settings

# Anything a reader can see: not whitespace, not a control, format or filler character.
_VISIBLE = re.compile(
    "[^\\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U000e0000-\U000e0fff]"
)
_ITEM = TypeAdapter(ClassifyRequest)


def has_visible_text(text: str) -> bool:
    """False for empty, whitespace-only or invisible-only text (zero-width, bidi, fillers)."""
    return _VISIBLE.search(text) is not None


def text_problem(text: str, settings: Settings) -> tuple[str, str] | None:
    """(code, message) when a comment text breaks a limit, else None."""
    if len(text) > settings.max_text_chars:
        return "text_too_long", f"text is longer than {settings.max_text_chars} characters"
    if not has_visible_text(text):
        return "empty_text", "text is empty or whitespace only"
    return None


def id_problem(item_id: str | None, settings: Settings) -> tuple[str, str] | None:
    if item_id is not None and len(item_id) > settings.max_id_chars:
        return "validation_error", f"id: longer than {settings.max_id_chars} characters"
    return None


def request_problem(request: ClassifyRequest, settings: Settings) -> tuple[str, str] | None:
    return text_problem(request.text, settings) or id_problem(request.id, settings)


def validate_item(
    item: Any, settings: Settings
) -> tuple[ClassifyRequest | None, dict[str, str] | None]:
    """One batch item: the parsed request, or an error entry {code, message}."""
    try:
        request = _ITEM.validate_python(item)
    except ValidationError as exc:
        message = describe_errors(exc.errors(include_input=False, include_url=False), empty="item")
        return None, {"code": "validation_error", "message": message}
    problem = request_problem(request, settings)
    if problem is not None:
        return None, {"code": problem[0], "message": problem[1]}
    return request, None


def item_id(item: Any, settings: Settings) -> str | None:
    """The id of a batch item when it has a usable one (also for invalid items)."""
    if isinstance(item, dict):
        value = item.get("id")
        if isinstance(value, str) and len(value) <= settings.max_id_chars:
            return value
    return None

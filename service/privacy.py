"""Masking of citizens' identity numbers before a comment is stored or exported.

NIK and KK numbers (16 digits, also written in groups) and phone numbers (08xx, +62 8xx,
62 8xx) have every digit replaced by `*`; separators stay, so an admin still sees that a
number was there and what kind. Nothing else in the text changes, and the original digits
are not kept anywhere.
"""

from __future__ import annotations

import re

MASK = "*"

# 16 digits, optionally grouped by spaces, dots or dashes (3374 0123 4567 8901).
_ID_NUMBER = re.compile(r"(?<![\d])\d(?:[ .-]?\d){15}(?![\d])")
# Indonesian mobile numbers: 08.., +628.., 628.., 8 to 12 digits after the 8, grouped or not.
_PHONE = re.compile(r"(?<![\w+])(?:\+62|62|0)[ .-]?\(?8\)?(?:[ .-]?\d){7,12}(?![\d])")
_DIGIT = re.compile(r"\d")


def _mask(match: re.Match[str]) -> str:
    return _DIGIT.sub(MASK, match.group(0))


def mask_pii(text: str) -> tuple[str, list[str]]:
    """The text with NIK/KK and phone numbers masked, and the kinds found (`idnum`, `phone`)."""
    if sum(ch.isdigit() for ch in text) < 9:  # neither kind fits in fewer digits
        return text, []
    kinds: list[str] = []
    masked, count = _ID_NUMBER.subn(_mask, text)
    if count:
        kinds.append("idnum")
    masked, count = _PHONE.subn(_mask, masked)
    if count:
        kinds.append("phone")
    return masked, kinds

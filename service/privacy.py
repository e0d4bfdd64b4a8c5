"""Masking of citizens' identity numbers before a comment is stored or exported.

NIK and KK numbers (16 digits, also written in groups), mobile numbers (08xx, +62 8xx, 62 8xx)
and landlines with their area code ((024) 358 4512, 0274-512345, +62 24 3584512) have every
digit replaced by `*`; separators stay, so an admin still sees that a
number was there and what kind. Nothing else in the text changes, and the original digits
are not kept anywhere.
"""

from __future__ import annotations

import re

MASK = "*"

# Between digit groups: up to two (three for phones, with brackets) spaces of any kind, dots,
# slashes or dashes. Digits are Unicode digits (full-width ones too).
_SEP = "[\\s./\u2010-\u2015\u2212-]"
# 16 digits: NIK / KK (3374 0123 4567 8901, 3374.0123.4567.8901, ...).
_ID_NUMBER = re.compile(rf"(?<!\d)\d(?:{_SEP}{{0,2}}\d){{15}}(?!\d)")
# Indonesian mobile numbers: 08.., +62 8.., 62 8.., +62 (0) 8.., (0812) 3456 7890, wa0812...
_PHONE = re.compile(
    rf"(?<![\d+])(?:\+\s?\(?[6６][2２]\)?(?:{_SEP}{{0,2}}\(?[0０]\)?)?|[6６][2２]|\(?[0０])"
    rf"{_SEP}{{0,2}}\(?[8８](?:[\s./()\u2010-\u2015\u2212-]{{0,3}}\d){{7,12}}(?!\d)"
)
# Landlines: +62 or 0, an area code of 2-3 digits that does not start with 8 (a mobile number)
# or 1, then 5-8 digits, and any further line after a slash: "(024) 3584512", "0274-512345",
# "+62 (0)24 358 4512", "021-5551234/5551235". No slash inside (letter numbers such as
# 027/1234/2024), and at least 9 digits in all (dates such as 02032024 have 8).
_LINE_SEP = "[\\s.\u2010-\u2015\u2212-]"
_LANDLINE = re.compile(
    rf"(?<![\d+])(?:\+\s?[6６][2２]{_LINE_SEP}{{0,3}}(?:\(\s?[0０]\s?\){_LINE_SEP}{{0,2}})?\(?"
    rf"|\(?\s?[0０]\s?)[2-79２-７９]\d{{1,2}}\)?{_LINE_SEP}{{0,3}}\d(?:{_LINE_SEP}?\d){{4,7}}(?!\d)"
    rf"(?:\s{{0,2}}/\s{{0,2}}\d(?:{_LINE_SEP}?\d){{4,7}}(?!\d))*"
)
_MIN_LANDLINE_DIGITS = 9
_DIGIT = re.compile(r"\d")


def _mask(match: re.Match[str]) -> str:
    return _DIGIT.sub(MASK, match.group(0))


def _mask_landline(match: re.Match[str]) -> str:
    number = match.group(0)
    return number if sum(ch.isdigit() for ch in number) < _MIN_LANDLINE_DIGITS else _mask(match)


def mask_pii(text: str) -> tuple[str, list[str]]:
    """The text with NIK/KK and phone numbers masked, and the kinds found (`idnum`, `phone`)."""
    if sum(ch.isdigit() for ch in text) < 9:  # no kind fits in fewer digits
        return text, []
    kinds: list[str] = []
    masked, count = _ID_NUMBER.subn(_mask, text)
    if count:
        kinds.append("idnum")
    masked, mobiles = _PHONE.subn(_mask, masked)
    without_landlines = _LANDLINE.sub(_mask_landline, masked)
    if mobiles or without_landlines != masked:
        kinds.append("phone")
    masked = without_landlines
    return masked, kinds

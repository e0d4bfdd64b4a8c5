"""What the admin page shows, in Indonesian: names of labels, statuses, flags, topics and
priority reasons, colours, and times in the admins' own time zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from service.labels import LABELS

LABEL_NAMES: Mapping[str, str] = {
    "complaint": "Keluhan",
    "question": "Pertanyaan",
    "aspiration": "Aspirasi",
    "praise": "Pujian",
    "other": "Lainnya",
}
# Distinct hues that stay apart for the common colour-vision deficiencies; every chart and
# pill also carries the label's name.
LABEL_COLOURS: Mapping[str, str] = {
    "complaint": "#c8362f",
    "question": "#1f6fc5",
    "aspiration": "#a35f00",
    "praise": "#1e7b43",
    "other": "#6b7280",
}
# Keyboard shortcuts 1-5 in LABELS order.
LABEL_KEYS: Mapping[str, str] = {label: str(i) for i, label in enumerate(LABELS, start=1)}

STATUS_NAMES: Mapping[str, str] = {
    "new": "Baru",
    "answered": "Dijawab",
    "dismissed": "Diabaikan",
    "escalated": "Dieskalasi",
}
FLAG_NAMES: Mapping[str, str] = {
    "urgent": "Darurat",
    "spam": "Spam/promosi",
    "pii": "Data pribadi",
}
PLATFORM_NAMES: Mapping[str, str] = {
    "instagram": "Instagram",
    "facebook": "Facebook",
    "x": "X",
    "youtube": "YouTube",
    "tiktok": "TikTok",
    "other": "Lainnya",
}
TOPIC_NAMES: Mapping[str, str] = {
    "bansos": "Bansos & kemiskinan",
    "jalan": "Jalan",
    "banjir": "Banjir & drainase",
    "sampah": "Sampah",
    "kesehatan": "Kesehatan",
    "adminduk": "Adminduk (KTP, KK, akta)",
    "pendidikan": "Pendidikan",
    "transportasi": "Transportasi",
    "air_bersih": "Air bersih",
    "penerangan": "Penerangan & listrik",
    "keamanan": "Keamanan",
    "perizinan": "Perizinan",
    "pajak": "Pajak & retribusi",
    "kepegawaian": "Kepegawaian",
    "ekonomi": "Ekonomi & UMKM",
}
# The topics of `service.signals.TOPICS`, in its order (not imported from there: that module
# pulls in the text pipeline, and the app must import without it; a test keeps them equal).
TOPIC_ORDER: tuple[str, ...] = tuple(TOPIC_NAMES)
# The social-assistance / poverty topic, shown on its own everywhere.
BANSOS = "bansos"
REVIEW_REASON_NAMES: Mapping[str, str] = {
    "low_confidence": "keyakinan rendah",
    "small_margin": "dua label bersaing",
}
MASK_NAMES: Mapping[str, str] = {"idnum": "NIK/KK", "phone": "nomor HP"}
MONTHS: tuple[str, ...] = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
ZONE_NAMES: Mapping[str, str] = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Jayapura": "WIT",
}


def label_name(label: str | None) -> str:
    return LABEL_NAMES.get(label or "", label or "-")


def topic_name(topic: str) -> str:
    return TOPIC_NAMES.get(topic, topic.replace("_", " ").capitalize())


def number(value: float | int | None, digits: int = 0) -> str:
    """Indonesian number format: 1.234,5."""
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def percent(share: float | None, digits: int = 0) -> str:
    return "-" if share is None else number(100 * share, digits) + "%"


def hours(value: float | None) -> str:
    """Median time to answer, readable: '45 mnt', '5,2 jam', '3,1 hari'."""
    if value is None:
        return "-"
    if value < 1:
        return f"{round(value * 60)} mnt"
    if value < 48:
        return f"{number(value, 1)} jam"
    return f"{number(value / 24, 1)} hari"


def age(moment: datetime | None, now: datetime) -> str:
    """'baru saja', '12 mnt lalu', '5 jam lalu', '3 hari lalu'."""
    if moment is None:
        return "-"
    delta = now - moment
    if delta < timedelta(minutes=1):
        return "baru saja"
    if delta < timedelta(hours=1):
        return f"{int(delta.total_seconds() // 60)} mnt lalu"
    if delta < timedelta(hours=48):
        return f"{int(delta.total_seconds() // 3600)} jam lalu"
    return f"{delta.days} hari lalu"


def local_time(moment: datetime | None, zone: tzinfo) -> str:
    if moment is None:
        return "-"
    try:
        local = moment.astimezone(zone)
    except (OverflowError, ValueError):  # a stored time at the edge of the calendar
        local = moment
    return f"{local.day} {MONTHS[local.month - 1][:3]} {local.year} {local:%H.%M}"


def long_date(moment: datetime, zone: tzinfo | None = None) -> str:
    try:
        local = moment.astimezone(zone) if zone is not None else moment
    except (OverflowError, ValueError):
        local = moment
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}"


_LABEL_DETAIL = re.compile(r"^(?P<label>[a-z]+) (?P<score>[0-9.]+)$")
_WAITING = re.compile(r"^waiting (?P<amount>[0-9]+) (?P<unit>h|days)$")
_ENGAGEMENT = re.compile(r"^(?P<likes>[0-9]+) likes, (?P<replies>[0-9]+) replies$")


def reason_text(reason: Mapping[str, Any]) -> str:
    """One priority reason of the queue (`priority_reasons`), in Indonesian."""
    code = str(reason.get("code", ""))
    detail = str(reason.get("detail", ""))
    if code == "label" and (match := _LABEL_DETAIL.match(detail)):
        score = float(match["score"])
        return f"label {label_name(match['label'])} ({percent(score)})"
    if code == "urgent":
        return f"darurat: {detail}"
    if code == "topic":
        return "topik rentan: " + ", ".join(topic_name(t.strip()) for t in detail.split(","))
    if code == "pii":
        return "data pribadi di komentar publik"
    if code == "engagement" and (match := _ENGAGEMENT.match(detail)):
        return f"{match['likes']} suka, {match['replies']} balasan"
    if code == "waiting" and (match := _WAITING.match(detail)):
        unit = "jam" if match["unit"] == "h" else "hari"
        return f"menunggu {match['amount']} {unit}"
    if code == "spam":
        return "spam/promosi (judi online, iklan)"
    return detail or code


def safe_url(url: str | None) -> str | None:
    """Only http(s) links are shown (never javascript: or data:)."""
    if url and re.match(r"^https?://[^\s]+$", url, flags=re.IGNORECASE):
        return url
    return None

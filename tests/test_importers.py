"""Export importers: each platform's column mapping on a synthetic export, byte-exact text,
deterministic derived ids, platform detection, row rejections (never quoting the text) and
whole-file errors."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import importers
from service.errors import PilahError
from service.importers import (
    MAPPINGS,
    PLATFORMS,
    ImportFileError,
    ImportRow,
    derived_id,
    detect_platform,
    normalise_comment,
    read_export,
)

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
KEYS = [
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
]
# Every reason normalise_comment/read_export may give: fixed phrases, no room for a value.
FIELD = r"(likes|replies|posted_at|external_id|post_id|author|account|text)"
REASON = re.compile(
    r"empty text|text is not a string|text longer than \d+ characters"
    r"|text contains a NUL character|no account: pass --account"
    rf"|account longer than \d+ characters|external_id longer than \d+ characters"
    rf"|bad {FIELD}|non-integer {FIELD}|negative {FIELD}|{FIELD} out of range"
    rf"|{FIELD} is not valid Unicode|invalid JSON|record is not a JSON object"
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def read(path: Path, **kwargs: Any) -> list[ImportRow]:
    kwargs.setdefault("account", "pemkot.contoh")
    return list(read_export(path, **kwargs))


def accepted(path: Path, **kwargs: Any) -> dict[int, dict[str, Any]]:
    return {row.record: row.comment for row in read(path, **kwargs) if row.comment is not None}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return path


def reason_of(*args: Any, **kwargs: Any) -> str:
    """The ValueError reason normalise_comment gives for these arguments."""
    with pytest.raises(ValueError) as info:
        normalise_comment(*args, **kwargs)
    return str(info.value)


def generic_row(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"text": "min jalan di gg. Mawar rusak parah 😭", "external_id": "e1"}
    row.update(fields)
    return row


# ------------------------------------------------------------------- one export per platform


def test_instagram_apify_export() -> None:
    rows = read(EXPORTS / "instagram_apify.json")
    assert [r.record for r in rows] == [1, 2, 3, 4]
    assert all(r.error is None for r in rows)
    first = rows[0].comment
    assert first == {
        "platform": "instagram",
        "external_id": "17990011223344556",
        "account": "pemkot.contoh",
        "post_id": None,
        "post_url": "https://www.instagram.com/p/C6aBcDeF123/",
        "author": "warga.sukodono",
        "posted_at": utc(2024, 5, 1, 6, 45, 12),
        "likes": 12,
        "replies": 2,
        "text": "min jalan depan SDN 3 Sukodono rusak parah, udh 3 bulan gk diperbaiki2 😭 @dinaskominfo",
    }
    assert list(first) == KEYS
    second = rows[1].comment
    assert second is not None
    assert second["text"] == "wkwkwk ðŸ˜‚ adminnya lucu bgt"  # mojibake kept as it is
    assert (second["likes"], second["replies"]) == (3, 0)  # "3" as a string; no repliesCount
    fourth = rows[3].comment
    assert fourth is not None
    assert "3515012345678901" in fourth["text"] and fourth["author"] == "pak.darmo"


def test_instagram_graph_api_export() -> None:
    comments = accepted(EXPORTS / "instagram_graph.json")
    assert sorted(comments) == [1, 2, 3]
    assert comments[1]["post_id"] == "17912345678901234"  # media.id
    assert comments[1]["author"] == "pak_rt07"
    assert comments[1]["posted_at"] == utc(2024, 5, 2, 1, 2, 3)  # "+0000"
    assert comments[1]["likes"] == 4
    assert comments[3]["text"] == "ngono wae terus tiap tahun, dalane tetep bolong"


def test_facebook_graph_api_export() -> None:
    rows = read(EXPORTS / "facebook_graph.json")
    assert [(r.record, r.error) for r in rows] == [
        (1, None),
        (2, None),
        (3, "empty text"),  # a sticker-only comment has message ""
        (4, None),
    ]
    first = rows[0].comment
    assert first is not None
    assert first["external_id"] == "122100000000000001_987654321"
    assert first["text"] == "dalane rusak mboten didandani-dandani, pripun niki pak? 😭"
    assert first["author"] == "Sri Wahyuni"  # from.name
    assert first["posted_at"] == utc(2024, 5, 3, 8, 15)
    assert (first["likes"], first["replies"]) == (4, 1)
    assert first["post_url"].endswith("/posts/122100000000000001?comment_id=987654321")
    assert rows[1].comment is not None and "0812-3456-7890" in rows[1].comment["text"]
    assert rows[3].comment is not None and rows[3].comment["author"] is None  # no `from`


def test_facebook_scraper_csv_export() -> None:
    comments = accepted(EXPORTS / "facebook_apify.csv")
    assert sorted(comments) == [1, 2, 3]
    assert comments[1]["author"] == "Andi Saputra"
    assert comments[1]["external_id"] == "Y29tbWVudDoxMjM0NTY3ODkwXzEx"
    assert comments[1]["post_url"] == "https://www.facebook.com/pemkot.contoh/posts/pfbid02abcDEF"
    assert comments[1]["likes"] == 7
    assert comments[2]["text"] == "usul min:\nadakan car free day tiap minggu di alun2 👍"
    assert comments[2]["posted_at"] == utc(2024, 5, 4, 3, 0)
    assert comments[3]["likes"] == 0  # empty cell


def test_x_api_v2_export() -> None:
    comments = accepted(EXPORTS / "x_api_v2.json")
    assert sorted(comments) == [1, 2, 3]
    first = comments[1]
    assert first["author"] == "arek_suroboyo"  # author_id joined to includes.users
    assert first["post_id"] == "1785999999999999999"  # conversation_id
    assert first["post_url"] == "https://x.com/i/web/status/1785999999999999999"
    assert (first["likes"], first["replies"]) == (7, 1)  # public_metrics
    assert first["posted_at"] == utc(2024, 5, 4, 10, 0)
    # A long post: the full note_tweet.text, not the truncated `text`.
    assert comments[2]["text"].endswith("makasih min, semoga dibaca 🙏")
    assert len(comments[2]["text"]) > 280 and "…" not in comments[2]["text"]
    assert comments[3]["author"] is None  # author_id without a user in includes


def test_x_tweet_harvest_csv_export() -> None:
    comments = accepted(EXPORTS / "x_tweet_harvest.csv")
    assert comments[1] == {
        "platform": "x",
        "external_id": "1785900000000000001",
        "account": "pemkot.contoh",
        "post_id": "1785888888888888888",
        "post_url": "https://x.com/i/web/status/1785888888888888888",
        "author": "budi_santoso",
        "posted_at": utc(2024, 5, 2, 3, 4, 5),  # "Thu May 02 03:04:05 +0000 2024"
        "likes": 15,
        "replies": 2,
        "text": "@pemkot_contoh banjir lagi di jl. ahmad yani, kapan beres nya? 😭 #banjir",
    }
    assert comments[2]["text"] == "@pemkot_contoh mboten wonten tanggapan blas min"


def test_youtube_comment_threads_export() -> None:
    comments = accepted(EXPORTS / "youtube_comment_threads.json")
    assert sorted(comments) == [1, 2, 3]
    first = comments[1]
    assert first["text"] == "terima kasih & semangat pak 👏👏"  # textOriginal, not the HTML
    assert first["author"] == "mas_bayu"  # "@mas_bayu"
    assert first["external_id"] == "UgxAAAAAAAAAAAAAAAAA4AaABAg"
    assert first["post_id"] == "aBcDeFgHiJk"
    assert first["post_url"] == "https://www.youtube.com/watch?v=aBcDeFgHiJk"
    assert (first["likes"], first["replies"]) == (3, 2)
    assert first["posted_at"] == utc(2024, 5, 5, 12, 0)
    assert (
        comments[2]["text"]
        == "min, video lengkap sosialisasi PPDB ada gk?\nsoalnya yg kemarin kepotong"
    )


def test_youtube_comment_downloader_export_is_json_lines_in_a_json_file() -> None:
    comments = accepted(EXPORTS / "youtube_downloader.json")
    assert sorted(comments) == [1, 2, 3]
    assert comments[1]["likes"] == 1200  # votes "1,2 rb"
    assert comments[1]["replies"] == 3
    assert comments[1]["posted_at"] == datetime(2024, 5, 5, 9, 6, 40, 500000, tzinfo=UTC)
    assert comments[1]["author"] == "nadia_putri"
    assert comments[2]["replies"] == 0  # replies ""
    assert comments[3]["external_id"] == "UgzDDDDDDDDDDDDDDDDD4AaABAg.A1b2C3d4E5f"


def test_tiktok_json_lines_export() -> None:
    rows = read(EXPORTS / "tiktok_comments.jsonl")
    assert [r.record for r in rows] == [1, 2, 4]  # line numbers; line 3 is blank
    first = rows[0].comment
    assert first == {
        "platform": "tiktok",
        "external_id": "7365000000000000001",
        "account": "pemkot.contoh",
        "post_id": "7364999999999999999",
        "post_url": None,
        "author": "cewek_mojokerto",  # user.unique_id
        "posted_at": utc(2024, 5, 5, 11, 53, 20),  # create_time 1714910000
        "likes": 25,
        "replies": 3,
        "text": "kak ini daftarnya dmn? link nya mana 🙏",
    }
    assert rows[1].comment is not None and rows[1].comment["text"] == "hadir\u200b min 😂"


def test_generic_csv_export() -> None:
    rows = read(EXPORTS / "generic.csv", account="pemkot.arg")
    assert [(r.record, r.error) for r in rows] == [
        (1, None),
        (2, None),
        (3, None),
        (4, "empty text"),
        (5, "bad posted_at"),
        (6, "negative likes"),
    ]
    first, second, third = (rows[i].comment for i in range(3))
    assert first == {
        "platform": "instagram",  # "Instagram"
        "external_id": "ext-001",
        "account": "pemkot.contoh",  # the file's account wins over the argument
        "post_id": "C6post1",
        "post_url": "https://www.instagram.com/p/C6post1/",
        "author": "warga01",  # "@warga01"
        "posted_at": utc(2024, 5, 6, 13, 45),
        "likes": 3,  # "3.0"
        "replies": 1,
        "text": "Assalamualaikum min,\r\nlampu PJU di Jl. Kenanga mati 3 hari 😭\r\nmohon dicek 🙏",
    }
    assert second is not None and third is not None
    assert second["platform"] == "x"  # "twitter"
    assert second["account"] == "pemkot.arg"  # empty in the file: the argument
    assert second["posted_at"] == utc(2024, 5, 6, 10, 6, 40)  # epoch milliseconds
    assert second["external_id"] == derived_id(
        "x", "pemkot.arg", "siti_nurhaliza", second["posted_at"], second["text"]
    )
    assert third["platform"] == "other"  # "whatsapp"
    assert third["post_url"] is None  # javascript: URL
    assert third["posted_at"] == utc(2024, 5, 6, 13, 0)  # +07:00 converted to UTC


@pytest.mark.parametrize(
    ("name", "platform"),
    [
        ("instagram_apify.json", "instagram"),
        ("instagram_graph.json", "instagram"),
        ("facebook_graph.json", "facebook"),
        ("facebook_apify.csv", "facebook"),
        ("x_api_v2.json", "x"),
        ("x_tweet_harvest.csv", "x"),
        ("youtube_comment_threads.json", "youtube"),
        ("youtube_downloader.json", "youtube"),
        ("tiktok_comments.jsonl", "tiktok"),
        ("generic.csv", "generic"),
    ],
)
def test_detect_platform(name: str, platform: str) -> None:
    assert detect_platform(EXPORTS / name) == platform


def test_detect_platform_from_flat_csv_headers(tmp_path: Path) -> None:
    tiktok = write(
        tmp_path, "t.csv", "cid,text,create_time,digg_count,aweme_id\n1,halo min,1714910000,2,9\n"
    )
    plain = write(tmp_path, "p.csv", "id,text\n1,halo min\n")
    twarc = write(
        tmp_path,
        "tw.csv",
        "id,conversation_id,author.username,public_metrics.like_count,created_at,text\n"
        "5,4,@warga,9,2024-05-01T00:00:00.000Z,halo min\n",
    )
    assert detect_platform(tiktok) == "tiktok"
    assert detect_platform(plain) == "generic"
    assert detect_platform(twarc) == "x"
    comment = next(read_export(twarc, account="a")).comment
    assert comment is not None  # literal dotted CSV headers resolve
    assert (comment["author"], comment["likes"], comment["post_id"]) == ("warga", 9, "4")


def test_mapping_table_in_docstring_matches_the_data() -> None:
    assert importers.__doc__ is not None
    assert importers.mapping_table() in importers.__doc__
    assert set(MAPPINGS) == set(PLATFORMS)
    for platform, mapping in MAPPINGS.items():
        assert set(mapping) >= set(KEYS) - {"platform"}, platform


# ------------------------------------------------------------------------ text and ids


TRICKY_TEXTS = [
    "min,\r\nlampu mati\r\n3 hari 😭",
    "baris1\rbaris2\nbaris3",
    "  spasi di depan dan belakang  ",
    "hadir\u200b min\u200d👨\u200d👩\u200d👧",
    "ðŸ˜‚ðŸ˜‚ wkwk",
    'dia bilang "mboten" lho, gimana ; pak',
    "e\u0301 vs \u00e9 \ufeffBOM di tengah",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_text_is_byte_exact_from_csv(tmp_path: Path, text: str) -> None:
    quoted = text.replace('"', '""')
    path = write(tmp_path, "e.csv", f'\ufeffid,text\r\n1,"{quoted}"\r\n')
    (row,) = read(path)
    assert row.comment is not None
    assert row.comment["text"] == text
    assert row.comment["text"].encode("utf-8") == text.encode("utf-8")


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_text_is_byte_exact_from_json_and_jsonl(tmp_path: Path, text: str) -> None:
    record = {"id": "1", "text": text}
    as_json = write(tmp_path, "e.json", json.dumps([record], ensure_ascii=False))
    as_jsonl = write(tmp_path, "e.jsonl", json.dumps(record) + "\n")
    for path in (as_json, as_jsonl):
        (row,) = read(path)
        assert row.comment is not None and row.comment["text"] == text


def test_derived_ids_are_deterministic(tmp_path: Path) -> None:
    content = (
        "author,posted_at,text\n"
        "@siti,2024-05-06T17:00:00+07:00,min KK baru syaratnya apa?\n"
        "siti,2024-05-06T10:00:00Z,min KK baru syaratnya apa?\n"
        "siti,1714989600,min KK baru syaratnya apa?\n"
        "siti,1714989600,min KK baru syaratnya apa ?\n"
        "budi,1714989600,min KK baru syaratnya apa?\n"
    )
    path = write(tmp_path, "d.csv", content)
    first = [r.comment["external_id"] for r in read(path) if r.comment]
    again = [r.comment["external_id"] for r in read(path) if r.comment]
    assert first == again
    # the same comment written three ways gets one id; other text or author, another id
    assert first[0] == first[1] == first[2]
    assert len({first[0], first[3], first[4]}) == 3
    payload = json.dumps(
        [
            "other",
            "pemkot.contoh",
            "siti",
            "2024-05-06T10:00:00+00:00",
            "min KK baru syaratnya apa?",
        ],
        ensure_ascii=False,
    )
    assert first[0] == "h:" + hashlib.sha256(payload.encode()).hexdigest()[:32]
    other_account = [
        r.comment["external_id"] for r in read(path, account="pemkot.lain") if r.comment
    ]
    assert other_account[0] != first[0]


def test_external_id_from_numbers_and_limits() -> None:
    def external_id(value: Any) -> str:
        return normalise_comment(generic_row(external_id=value), "generic", "a")["external_id"]

    assert external_id(12345) == "12345"
    assert external_id(" e-7 ") == "e-7"
    assert external_id("  ").startswith("h:")  # blank: derived
    assert external_id("x" * 256) == "x" * 256
    too_long = reason_of(generic_row(external_id="x" * 257), "generic", "a")
    assert too_long == "external_id longer than 256 characters"
    assert reason_of(generic_row(external_id=1.5), "generic", "a") == "bad external_id"


# -------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T13:45:00Z", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01T13:45:00.123Z", datetime(2024, 5, 1, 13, 45, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T20:45:00+07:00", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01T13:45:00+0000", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01T13:45:00", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01 13:45:00", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01 13:45", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01", utc(2024, 5, 1)),
        ("2024/05/01 13:45:00", utc(2024, 5, 1, 13, 45)),
        ("2024-05-01 13:45:00 UTC", utc(2024, 5, 1, 13, 45)),
        ("Wed May 01 13:45:00 +0000 2024", utc(2024, 5, 1, 13, 45)),
        ("Wed, 01 May 2024 20:45:00 +0700", utc(2024, 5, 1, 13, 45)),
        (1714571100, utc(2024, 5, 1, 13, 45)),
        ("1714571100", utc(2024, 5, 1, 13, 45)),
        (1714571100000, utc(2024, 5, 1, 13, 45)),
        (" 1714571100000 ", utc(2024, 5, 1, 13, 45)),
        (1714571100.25, datetime(2024, 5, 1, 13, 45, 0, 250000, tzinfo=UTC)),
        (datetime(2024, 5, 1, 20, 45), utc(2024, 5, 1, 20, 45)),
        ("", None),
        (None, None),
    ],
)
def test_posted_at_forms(value: Any, expected: datetime | None) -> None:
    posted_at = normalise_comment(generic_row(posted_at=value), "generic", "a")["posted_at"]
    assert posted_at == expected
    if posted_at is not None:
        assert posted_at.utcoffset() is not None and posted_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "value",
    [
        "kemarin",
        "2 hari yang lalu",
        "01/05/2024",
        "2024-13-01",
        "2024-05-01T25:00",
        True,
        1e30,
        float("nan"),
        [2024],
        {"t": 1},
    ],
)
def test_bad_posted_at(value: Any) -> None:
    assert reason_of(generic_row(posted_at=value), "generic", "a") == "bad posted_at"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        ("", 0),
        (" 7 ", 7),
        (7, 7),
        ("3.0", 3),
        (3.0, 3),
        ("+4", 4),
        ("1.2K", 1200),
        ("1,2 rb", 1200),
        ("2 jt", 2_000_000),
        ("1.5M", 1_500_000),
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_counts(value: Any, expected: int) -> None:
    comment = normalise_comment(generic_row(likes=value, replies=value), "generic", "a")
    assert (comment["likes"], comment["replies"]) == (expected, expected)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (-1, "negative"),
        ("-3", "negative"),
        (2.5, "non-integer"),
        ("2.5", "non-integer"),
        ("banyak", "non-integer"),
        (True, "non-integer"),
        (float("inf"), "non-integer"),
        ("1,234", "non-integer"),
        ([1], "non-integer"),
        (2**63, "out of range"),
    ],
)
def test_bad_counts(value: Any, reason: str) -> None:
    for field in ("likes", "replies"):
        with pytest.raises(ValueError) as info:
            normalise_comment(generic_row(**{field: value}), "generic", "a")
        expected = f"{field} out of range" if reason == "out of range" else f"{reason} {field}"
        assert str(info.value) == expected


def test_account_author_and_urls() -> None:
    comment = normalise_comment(
        generic_row(author=" @warga01 ", account="@pemkot.file", post_url=" https://x.com/p/1 "),
        "generic",
        "pemkot.arg",
    )
    assert (comment["author"], comment["account"]) == ("warga01", "pemkot.file")
    assert comment["post_url"] == "https://x.com/p/1"
    assert normalise_comment(generic_row(), "generic", " @pemkot.arg")["account"] == "pemkot.arg"
    assert reason_of(generic_row(), "generic", None) == "no account: pass --account"
    assert reason_of(generic_row(account="  "), "generic", "@") == "no account: pass --account"
    assert (
        reason_of(generic_row(account="a" * 129), "generic", None)
        == "account longer than 128 characters"
    )
    for url in ["ftp://x.com/a", "javascript:alert(1)", "www.instagram.com/p/1", "https://", 7]:
        assert normalise_comment(generic_row(post_url=url), "generic", "a")["post_url"] is None


def test_nested_record_for_the_rest_ingest() -> None:
    raw = {
        "id": "Ugx1",
        "snippet": {
            "videoId": "vid1",
            "totalReplyCount": 4,
            "topLevelComment": {
                "id": "Ugx1",
                "snippet": {
                    "textOriginal": "mantul pak 👍",
                    "authorDisplayName": "@ibu.rt",
                    "publishedAt": "2024-05-01T00:00:00Z",
                    "likeCount": 2,
                },
            },
        },
    }
    comment = normalise_comment(raw, "youtube", "pemkab.contoh")
    assert comment == {
        "platform": "youtube",
        "external_id": "Ugx1",
        "account": "pemkab.contoh",
        "post_id": "vid1",
        "post_url": "https://www.youtube.com/watch?v=vid1",
        "author": "ibu.rt",
        "posted_at": utc(2024, 5, 1),
        "likes": 2,
        "replies": 4,
        "text": "mantul pak 👍",
    }


# ---------------------------------------------------------------------------- rejections

SECRET = "tolong dicek NIK 3515012345678901 hp 0812-3456-7890 rumah sy"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"text": ""}, "empty text"),
        ({"text": None}, "empty text"),
        ({"text": " \t\r\n "}, "empty text"),
        ({"text": "\u200b\u200b"}, "empty text"),
        ({"text": SECRET * 100}, "text longer than 5000 characters"),
        ({"text": SECRET + "\x00"}, "text contains a NUL character"),
        ({"text": SECRET + "\ud83d"}, "text is not valid Unicode"),
        ({"text": 12345}, "text is not a string"),
        ({"posted_at": "kemarin sore"}, "bad posted_at"),
        ({"likes": -5}, "negative likes"),
        ({"replies": "dua"}, "non-integer replies"),
        ({"author": {"name": SECRET}}, "bad author"),
        ({"external_id": "x" * 300}, "external_id longer than 256 characters"),
    ],
)
def test_rejection_reasons(fields: dict[str, Any], reason: str) -> None:
    raw = {"text": SECRET, "external_id": "e1"} | fields
    with pytest.raises(ValueError) as info:
        normalise_comment(raw, "generic", "pemkot.contoh")
    assert str(info.value) == reason
    assert "3515012345678901" not in reason and "tolong" not in reason


def test_text_limit_is_a_parameter() -> None:
    assert normalise_comment(generic_row(text="a" * 10), "generic", "a", max_text_chars=10)
    assert (
        reason_of(generic_row(text="a" * 10), "generic", "a", max_text_chars=9)
        == "text longer than 9 characters"
    )


def test_file_rejections_never_quote_the_text(tmp_path: Path) -> None:
    lines = [
        "text,posted_at,likes,replies,external_id",
        f"{SECRET},besok,1,1,a",
        f"{SECRET},2024-05-01,-1,1,b",
        f"{SECRET},2024-05-01,1,1.5,c",
        f"{SECRET} {'x' * 5000},2024-05-01,1,1,d",
        f'"{SECRET}\x00",2024-05-01,1,1,e',
        f"{SECRET},2024-05-01,1,1,{'f' * 257}",
        f"{SECRET},2024-05-01,1,1,g",
    ]
    path = write(tmp_path, "r.csv", "\r\n".join(lines) + "\r\n")
    rows = read(path)
    assert [r.record for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    errors = [r.error for r in rows[:-1]]
    assert errors == [
        "bad posted_at",
        "negative likes",
        "non-integer replies",
        "text longer than 5000 characters",
        "text contains a NUL character",
        "external_id longer than 256 characters",
    ]
    for row in rows[:-1]:
        assert row.comment is None and row.error is not None
        assert REASON.fullmatch(row.error)
        assert "3515012345678901" not in row.error and "\n" not in row.error
    assert rows[-1].error is None and rows[-1].comment is not None
    assert rows[-1].comment["text"] == SECRET


def test_json_lines_and_array_item_problems_are_row_rejections(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path,
        "c.jsonl",
        '{"cid": "1", "text": "halo min"}\n\n{"cid": "2", "text": "rusak\n[1, 2]\n{"cid": "3", "text": "ok"}\n',
    )
    assert [(r.record, r.error) for r in read(jsonl, platform="tiktok")] == [
        (1, None),
        (3, "invalid JSON"),
        (4, "record is not a JSON object"),
        (5, None),
    ]
    array = write(tmp_path, "a.json", '[{"text": "halo"}, "halo", {"text": "  "}]')
    assert [(r.record, r.error) for r in read(array)] == [
        (1, None),
        (2, "record is not a JSON object"),
        (3, "empty text"),
    ]


# -------------------------------------------------------------------------- file formats


def test_csv_record_numbers_count_data_rows(tmp_path: Path) -> None:
    content = 'id,text\r\n1,"baris\r\ndua"\r\n\r\n3,tiga\r\n,\r\n5,lima'  # no final newline
    rows = read(write(tmp_path, "n.csv", content))
    assert [(r.record, r.comment and r.comment["text"]) for r in rows] == [
        (1, "baris\r\ndua"),
        (3, "tiga"),
        (5, "lima"),  # row 4 has only empty cells (Excel leaves such rows): skipped, counted
    ]


def test_semicolon_csv_with_bom_and_case_insensitive_headers(tmp_path: Path) -> None:
    path = write(
        tmp_path, "excel.csv", "\ufeffExternal_ID;Text;Likes;Author\r\nz1;halo, min;2;@warga\r\n"
    )
    (row,) = read(path)
    assert row.comment is not None
    assert (row.comment["external_id"], row.comment["text"], row.comment["likes"]) == (
        "z1",
        "halo, min",
        2,
    )
    assert row.comment["author"] == "warga"


def test_tab_separated_and_old_mac_newlines(tmp_path: Path) -> None:
    path = write(tmp_path, "t.tsv", "id\ttext\r1\tsatu\r2\tdua\r")
    assert [r.comment["text"] for r in read(path) if r.comment] == ["satu", "dua"]


def test_json_object_containers(tmp_path: Path) -> None:
    for key in ("data", "items", "comments", "results"):
        path = write(tmp_path, f"{key}.json", json.dumps({key: [{"text": "halo"}], "next": None}))
        assert [r.comment["text"] for r in read(path) if r.comment] == ["halo"]
    single = write(tmp_path, "one.json", '{"id": "9", "text": "satu aja"}')
    assert [r.comment["external_id"] for r in read(single) if r.comment] == ["9"]


def test_forced_platform(tmp_path: Path) -> None:
    rows = read(EXPORTS / "generic.csv", platform="generic")
    assert rows[0].comment is not None and rows[0].comment["platform"] == "instagram"
    # An Apify Instagram export read as TikTok still has `text`, but TikTok's other columns.
    forced = read(EXPORTS / "instagram_apify.json", platform="tiktok")
    assert forced[0].comment is not None
    assert forced[0].comment["platform"] == "tiktok" and forced[0].comment["author"] is None
    with pytest.raises(ImportFileError, match="no text field for platform instagram"):
        read_export(EXPORTS / "facebook_graph.json", platform="instagram")  # `message`
    with pytest.raises(ValueError, match="unknown platform"):
        read_export(EXPORTS / "generic.csv", platform="friendster")
    with pytest.raises(ValueError, match="unknown platform"):
        normalise_comment(generic_row(), "twitter", "a")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "cp1252.csv",
            "id,text\n1,\u201cmantap\u201d pak\n".encode("cp1252"),
            "not UTF-8 (byte 10)",
        ),
        ("latin.json", '[{"text": "caf\xe9"}]'.encode("latin-1"), "not UTF-8 (byte 14)"),
        ("cut.csv", "id,text\n1,ok 😭".encode()[:-1], "not UTF-8 (truncated at the end)"),
        ("utf16.csv", "id,text\n1,halo\n".encode("utf-16"), "UTF-16"),
        ("book.xlsx", b"PK\x03\x04\x14\x00\x06\x00rest", "spreadsheet workbook"),
        ("empty.csv", b"", "the file is empty"),
        ("blank.jsonl", b"\xef\xbb\xbf \r\n\n  ", "the file is empty"),
        ("header.csv", b"id,text\r\n\r\n", "no comments in the file"),
        ("none.json", b"[]", "no comments in the file"),
        ("notext.csv", b"id,message_body\n1,halo\n", "no text column for platform generic"),
        ("broken.json", b'[{"text": "halo"', "invalid JSON (line 1 column"),
        ("number.json", b"42", "invalid JSON"),
        ("scalar.json", b'"halo"', "invalid JSON"),
        ("bad.jsonl", b'{"text": halo}\n{"text": "ok"}\n', "invalid JSON at line 1"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
        ("quote.csv", b'id,text\n1,"halo"x\n', "malformed CSV at record 1"),
    ],
)
def test_whole_file_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(ImportFileError) as info:
        read_export(path, account="a")  # raised at the call, before any row
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, PilahError)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        read_export(tmp_path / "nope.csv")
    with pytest.raises(ImportFileError, match="directory"):
        detect_platform(tmp_path)


def test_error_for_headerless_csv_does_not_quote_the_first_comment(tmp_path: Path) -> None:
    path = write(tmp_path, "noheader.csv", f"{SECRET},2024-05-01\nmantap min,2024-05-02\n")
    with pytest.raises(ImportFileError) as info:
        read_export(path, account="a")
    assert "no text column" in str(info.value) and "3515012345678901" not in str(info.value)


def test_csv_broken_part_way_raises_during_iteration(tmp_path: Path) -> None:
    path = write(tmp_path, "late.csv", 'id,text\n1,satu\n2,dua\n3,"tiga tanpa tutup\n4,empat\n')
    rows = read_export(path, account="a")
    assert next(rows).record == 1
    assert next(rows).record == 2
    with pytest.raises(ImportFileError, match="malformed CSV at record 3"):
        next(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_large_csv_and_jsonl_are_streamed(tmp_path: Path, suffix: str) -> None:
    text = "min jalan di depan pasar rusak parah, tolong diperbaiki 😭 " * 16  # ~1 KB
    path = tmp_path / f"big{suffix}"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if suffix == ".csv":
            writer.writerow(["id", "text", "likes"])
        for i in range(8000):  # ~8 MB
            if suffix == ".csv":
                writer.writerow([i, text, i % 7])
            else:
                handle.write(json.dumps({"id": str(i), "text": text, "likes": i % 7}) + "\n")
    tracemalloc.start()
    try:
        count = sum(1 for row in read_export(path, account="a") if row.comment is not None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 8000
    assert peak < 2_000_000, f"peak {peak} bytes: the file was loaded whole"


# ------------------------------------------------------------------------------ properties

COUNTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.from_regex(r"[+-]?[0-9]{1,25}(\.[0-9]{0,3})?\s?(k|K|rb|jt|M)?", fullmatch=True),
    st.lists(st.integers(), max_size=2),
)
TEXTS = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1),
    st.none(),
    st.integers(),
    st.lists(st.text(), max_size=2),
)


@given(
    text=TEXTS,
    likes=COUNTS,
    replies=COUNTS,
    platform=st.sampled_from(PLATFORMS),
    limit=st.integers(1, 60),
)
def test_normalise_comment_returns_the_contract_or_a_fixed_reason(
    text: Any, likes: Any, replies: Any, platform: str, limit: int
) -> None:
    mapping = MAPPINGS[platform]
    raw = {mapping["text"][0]: text, mapping["likes"][0]: likes, mapping["replies"][0]: replies}
    try:
        comment = normalise_comment(raw, platform, "pemkot.contoh", max_text_chars=limit)
    except ValueError as exc:
        assert REASON.fullmatch(str(exc)), str(exc)
        return
    assert list(comment) == KEYS
    assert comment["text"] is text
    assert isinstance(text, str) and 0 < len(text) <= limit and "\x00" not in text
    for field in ("likes", "replies"):
        assert type(comment[field]) is int and 0 <= comment[field] <= 2**63 - 1
    assert comment["platform"] in PLATFORMS or comment["platform"] == "other"
    assert comment["external_id"].startswith("h:") and len(comment["external_id"]) == 34
    assert comment["account"] == "pemkot.contoh" and comment["posted_at"] is None


@given(
    text=st.text(min_size=1, max_size=200).filter(
        lambda t: any(c.isalnum() for c in t) and "\x00" not in t
    ),
    likes=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
)
def test_valid_comments_are_always_accepted(text: str, likes: int | None) -> None:
    comment = normalise_comment({"text": text, "likes": likes}, "generic", "pemkot.contoh")
    assert comment["text"] == text and comment["likes"] == (likes or 0)


@pytest.mark.parametrize(
    "posted_at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "1999-12-31T00:00:00Z"]
)
def test_times_outside_the_supported_years_are_rejected_per_row(posted_at: str) -> None:
    raw = {"text": "jalan rusak min", "id": "1", "account": "pemkot", "posted_at": posted_at}
    with pytest.raises(ValueError, match="posted_at"):
        normalise_comment(raw, "generic", None)


@pytest.mark.parametrize("field", ["id", "account", "ownerUsername", "postId"])
def test_nul_in_any_field_rejects_the_row(field: str) -> None:
    raw = {"text": "jalan rusak min", "id": "1", "account": "pemkot", field: "a\x00b"}
    with pytest.raises(ValueError, match="NUL"):
        normalise_comment(
            raw, "instagram" if field in ("ownerUsername", "postId") else "generic", None
        )

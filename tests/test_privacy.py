"""NIK/KK, mobile and landline numbers are masked before a comment is stored or exported."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.privacy import mask_pii


@pytest.mark.parametrize(
    ("text", "masked", "kinds"),
    [
        (
            "NIK sy 3374012345678901 blm terdaftar DTKS min",
            "NIK sy **************** blm terdaftar DTKS min",
            ["idnum"],
        ),
        ("KK 3374 0123 4567 8901 gmn?", "KK **** **** **** **** gmn?", ["idnum"]),
        ("wa aja 0812-3456-7890 ya", "wa aja ****-****-**** ya", ["phone"]),
        ("hub +62 812 3456 789", "hub +** *** **** ***", ["phone"]),
        ("call 6281234567890 min", "call ************* min", ["phone"]),
        (
            "nik 3374012345678901 hp 081234567890",
            "nik **************** hp ************",
            ["idnum", "phone"],
        ),
        ("HP (0812) 3456 7890", "HP (****) **** ****", ["phone"]),
        ("+62(0)812 3456 7890", "+**(*)*** **** ****", ["phone"]),
        ("+62 (812) 3456 7890", "+** (***) **** ****", ["phone"]),
        ("wa08123456789 ya", "wa*********** ya", ["phone"]),
        ("０８１２３４５６７８９０", "************", ["phone"]),
        ("0812  3456/7890", "****  ****/****", ["phone"]),
        ("0812–3456–7890", "****–****–****", ["phone"]),
        ("KK 3374 0123/4567  8901", "KK **** ****/****  ****", ["idnum"]),
        (
            "nik 3374012345678901 081234567890",
            "nik **************** ************",
            ["idnum", "phone"],
        ),
        ("telp rumah (024) 3584512 min", "telp rumah (***) ******* min", ["phone"]),
        ("hub 024-7601234 / 0812 3456 7890", "hub ***-******* / **** **** ****", ["phone"]),
        ("+62 24 3584512", "+** ** *******", ["phone"]),
        ("kantor 0274 512345 ya", "kantor **** ****** ya", ["phone"]),
        ("024 - 358 4512", "*** - *** ****", ["phone"]),
        ("+62 (0)24 3584512", "+** (*)** *******", ["phone"]),
        ("telp (0 24) 3584512", "telp (* **) *******", ["phone"]),
        ("021-5551234/5551235 ext 12", "***-*******/******* ext 12", ["phone"]),
    ],
)
def test_identity_numbers_are_masked(text: str, masked: str, kinds: list[str]) -> None:
    assert mask_pii(text) == (masked, kinds)


@pytest.mark.parametrize(
    "text",
    [
        "jalan rusak sejak 2023, RT 05 RW 12 😭",
        "harga beras 15000 per kg",
        "nomor antrean 1234567",  # 7 digits: no phone
        "tgl 12-11-2026 jam 08.30",
        "ðŸ˜‚ðŸ˜‚ mantul pak wali 👍",
        "12345678901234567",  # 17 digits: not a NIK, not a phone
        "tgl 02/03/2024 jam 09.30-12.00",
        "antri nomer 024 dr 300, kode pos 50132",
        "call center 112 atau 1500 123",
        "lahir 05061990, tgl 02032024",
        "surat nomor 027/1234/2024, SK 045/123/2024, nomor 470/0231/2023",
        "kode booking 0312 4567, tiket 027 12345, harga Rp 025.000",
    ],
)
def test_other_text_is_left_byte_exact(text: str) -> None:
    assert mask_pii(text) == (text, [])


@given(st.text())
def test_masking_only_replaces_digits(text: str) -> None:
    masked, kinds = mask_pii(text)
    assert len(masked) == len(text)
    for before, after in zip(text, masked, strict=True):
        assert after == before or (before.isdigit() and after == "*")
    assert (masked != text) == bool(kinds)


@given(
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=30),
    st.from_regex(r"\A3[0-9]{15}\Z"),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=30),
)
def test_no_nik_survives(before: str, nik: str, after: str) -> None:
    masked, kinds = mask_pii(before + nik + after)
    assert nik not in masked
    assert not re.search(r"\d{16}", masked)
    assert "idnum" in kinds

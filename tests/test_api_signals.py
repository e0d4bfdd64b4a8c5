"""Unit tests of the serving pieces: signals (flags, topics, priority), explanations, the
batch/single analysis and the review thresholds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import explain, signals
from service.inference import ServingModel, Thresholds
from service.labels import LABELS
from service.model import LoadedModel
from service.signals import Words, analyse, pii_cues, priority, spam_cues, topics, urgent_cues
from tests.test_api_fastpath import reference_features


def words(text: str) -> Words:
    return Words.from_text(text)


# --- flags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("Tolong min banjir setinggi lutut di Genuk", "banjir"),
        ("rumah kami kebanjiran lagi 😭", "kebanjiran"),
        ("Ada KEBAKARAN di pasar Johar!!", "kebakaran"),
        ("longsor di jalan menuju Gunungpati", "longsor"),
        ("kecelakaan di lampu merah Kalibanteng", "kecelakaan"),
        ("darurat, butuh ambulans sekarang", "darurat"),
        ("pohon tumbang menutup jalan", "pohon tumbang"),
        ("tanggul jebol di Tambaklorok", "tanggul jebol"),
    ],
)
def test_urgent(text: str, cue: str) -> None:
    assert cue in urgent_cues(words(text))
    assert "urgent" in signals.flags(words(text), "complaint")


@pytest.mark.parametrize(
    "text",
    [
        "semoga Semarang bebas banjir",
        "mohon antisipasi banjir sebelum musim hujan",
        "program pencegahan kebakaran di sekolah",
        "jalan rusak di depan SD",
    ],
)
def test_not_urgent(text: str) -> None:
    assert urgent_cues(words(text)) == []


def test_thanks_for_a_rescue_is_not_urgent() -> None:
    text = "terima kasih damkar sudah cepat padamkan kebakaran"
    assert urgent_cues(words(text))
    assert "urgent" not in signals.flags(words(text), "praise")
    assert "urgent" in signals.flags(words(text), "complaint")


@pytest.mark.parametrize(
    "text",
    [
        "SL0T G4C0R hari ini maxwin, daftar di bit.ly/gacor88",
        "situs slot online terpercaya, link alternatif di bio",
        "bocoran rtp hari ini, depo 10rb wd berapapun",
        "promo diskon 50% hubungi wa 081234567890",
        "jual followers murah, order via dm",
    ],
)
def test_spam(text: str) -> None:
    assert spam_cues(words(text))


@pytest.mark.parametrize(
    "text",
    [
        "berantas judi online pak, meresahkan warga",
        "harga beras mahal sekali min",
        "kapan pendaftaran slot vaksin dibuka?",
        "info lowongan kerja di mana ya min?",
    ],
)
def test_not_spam(text: str) -> None:
    assert spam_cues(words(text)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NIK saya 3374010101010001 belum terdaftar", ["xidnumx"]),
        ("hubungi saya di 0812-3456-7890", ["xphonex"]),
        ("email saya budi.santoso@gmail.com", ["xemailx"]),
        ("transfer ke rekening 1234567890", ["rekening"]),
        ("jalan rusak di RT 05 RW 03", []),
        ("omah kebanjiran, tlg hub (024) 3584512 njeh", ["xphonex"]),
        ("telp kantor lurah 024-358 4512 gk pernah diangkat", ["xphonex"]),
        ("NIK 3374010101010001, rumah +62 24 3584512", ["xidnumx", "xphonex"]),
        ("surat no 027/1234/2024 blm diproses", []),
        ("antri dr tgl 02032024 jam 09.30", []),
        ("harga beras 12.500 skrg 14.000/kg", []),
    ],
)
def test_pii(text: str, expected: list[str]) -> None:
    assert pii_cues(words(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kapan PKH tahap 2 cair?", ["bansos"]),
        ("BLT belum cair, NIK sudah terdaftar di DTKS", ["bansos", "adminduk"]),
        ("jalan berlubang di Banyumanik bahaya", ["jalan"]),
        ("sampah menumpuk di TPS pasar", ["sampah", "ekonomi"]),
        ("antrian di puskesmas lama sekali, BPJS ditolak", ["kesehatan"]),
        ("urus akta kelahiran di dukcapil berapa lama?", ["adminduk"]),
        ("PPDB zonasi tidak adil", ["pendidikan"]),
        ("air PDAM mati tiga hari", ["air_bersih"]),
        ("lampu jalan mati di gang 3, rawan begal", ["keamanan", "penerangan"]),
        ("program berjalan lancar, terima kasih", []),
    ],
)
def test_topics(text: str, expected: list[str]) -> None:
    assert sorted(topics(words(text))) == sorted(expected)


# --- priority -------------------------------------------------------------------------------


def scores(label: str, confidence: float = 0.9) -> dict[str, float]:
    rest = (1 - confidence) / (len(LABELS) - 1)
    return {name: confidence if name == label else rest for name in LABELS}


def test_priority_orders_what_an_admin_must_do_first() -> None:
    def score(text: str, label: str) -> int:
        return analyse(words(text), label, scores(label)).priority

    urgent = score("tolong banjir setinggi dada, warga terjebak", "complaint")
    complaint = score("jalan rusak parah belum diperbaiki", "complaint")
    question = score("jam buka dukcapil hari sabtu?", "question")
    aspiration = score("sebaiknya ditambah taman bermain", "aspiration")
    praise = score("mantap pak wali", "praise")
    spam = score("slot gacor maxwin daftar sekarang", "complaint")
    assert urgent > complaint > question > aspiration > praise > spam == 0
    assert spam >= 0 and urgent <= 100


def test_priority_reasons_add_up() -> None:
    result = analyse(
        words("NIK 3374010101010001 kok belum dapat PKH, banjir pula"),
        "complaint",
        scores("complaint"),
    )
    codes = [r.code for r in result.reasons]
    assert codes == ["label", "urgent", "topic", "pii"]
    assert result.priority == min(100, sum(r.points for r in result.reasons))
    assert result.flags == ["urgent", "pii"]


def test_priority_uses_the_score_distribution() -> None:
    sure, unsure = scores("complaint", 0.95), scores("complaint", 0.4)
    assert priority("complaint", sure, [], [])[0] > priority("complaint", unsure, [], [])[0]


def test_priority_clamped() -> None:
    score, _ = priority("complaint", {"complaint": 1.0}, ["urgent", "pii"], ["bansos"], ["x"])
    assert 0 <= score <= 100


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_signals_never_fail(text: str) -> None:
    result = analyse(words(text), "complaint", scores("complaint"))
    assert 0 <= result.priority <= 100
    assert set(result.flags) <= {"urgent", "spam", "pii"}
    assert set(result.topics) <= set(signals.TOPICS)


# --- explanations ---------------------------------------------------------------------------


def test_feature_names_are_readable() -> None:
    names = explain.feature_names(
        {"jalan rusak": 1, "xphonex": 0, "hubungi xurlx": 2, "^xmentionx ^tolong": 3}
    )
    assert names == ["<phone>", "jalan rusak", "hubungi <url>", "^<mention> ^tolong"]


def test_explain_many_matches_explain_one() -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(20, 5))
    names = [f"f{i}" for i in range(20)]
    rows = [[1, 4, 7], [], [0, 2, 3, 5, 9, 11, 19], [8]]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([i for r in rows for i in r], dtype=np.intp)
    values = rng.uniform(0.1, 1.0, size=len(indices))
    top = np.array([0, 1, 2, 3])
    second = np.array([1, 0, 4, 2])
    many = explain.explain_many(names, indices, values, indptr, weights, top, second, 2.0, 3)
    for r, row in enumerate(rows):
        start, end = indptr[r], indptr[r + 1]
        one = explain.explain_one(
            names, row, values[start:end], weights, int(top[r]), int(second[r]), 2.0, 3
        )
        assert many[r] == one
        assert all(f["weight"] > 0 for f in one)


def test_top_two() -> None:
    top, second = explain.top_two(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]))
    assert top.tolist() == [1, 0] and second.tolist() == [2, 2]


# --- the analysis against the model ---------------------------------------------------------


@pytest.fixture(scope="module")
def serving(small_model: LoadedModel) -> ServingModel:
    return ServingModel(small_model)


TEXTS = [
    "Min, jalan di Jl. Kaligawe rusak parah, sudah 3 bulan",
    "syarat daftar PKH apa aja ya?",
    "mantap pak wali 👍👍",
    "SL0T G4C0R maxwin",
    "",
    "xyzzy qwerty",
    "😭😭😭",
    "NIK 3374010101010001 belum cair2 ðŸ˜‚",
]


def test_single_and_batch_agree_with_the_model(
    serving: ServingModel, small_model: LoadedModel
) -> None:
    batch = serving.analyse_many(TEXTS)
    for text, many in zip(TEXTS, batch, strict=True):
        one = serving.analyse_one(text)
        reference = small_model.fast.predict_one(text)
        assert one["label"] == many["label"] == reference.label
        assert one["scores"] == reference.scores
        assert many["scores"] == pytest.approx(one["scores"], abs=2e-6)
        assert one["explanation"]["versus"] == many["explanation"]["versus"]
        assert [f["feature"] for f in one["explanation"]["features"]] == [
            f["feature"] for f in many["explanation"]["features"]
        ]
        assert one["flags"] == many["flags"] and one["topics"] == many["topics"]
    assert serving.analyse_many([]) == []


def test_explanation_is_the_top_contributions(serving: ServingModel) -> None:
    """Features and weights are the largest positive terms of the top-vs-runner-up margin,
    and all terms add up to that margin of the model's own scores."""
    fast = serving.fast
    text = TEXTS[0]
    indices, values = reference_features(fast, fast.normalizer.tokens(text))
    logits = values @ fast.weights[indices] + fast.intercept
    top, second = (int(c[0]) for c in explain.top_two(fast.probabilities(logits)))
    terms = serving.scale * values * (fast.weights[indices, top] - fast.weights[indices, second])
    margin = (logits[top] - fast.intercept[top]) - (logits[second] - fast.intercept[second])
    assert float(terms.sum()) == pytest.approx(serving.scale * float(margin), abs=1e-9)
    expected = sorted(
        (
            (serving.names[i], round(float(t), 4))
            for i, t in zip(indices, terms, strict=True)
            if t > 0
        ),
        key=lambda pair: -pair[1],
    )[: serving.top_k]
    got = serving.analyse_one(text)["explanation"]["features"]
    assert [(f["feature"], f["weight"]) for f in got] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=8))
def test_batch_equals_single_for_any_text(serving: ServingModel, texts: list[str]) -> None:
    for text, many in zip(texts, serving.analyse_many(texts), strict=True):
        one = serving.analyse_one(text)
        assert many["label"] == one["label"]
        assert many["scores"] == pytest.approx(one["scores"], abs=2e-6)


def test_thresholds_from_manifest() -> None:
    default = Thresholds.from_manifest({})
    assert default.source == "default"
    assert default.min_confidence == dict.fromkeys(LABELS, 0.5)
    assert default.min_margin == 0.15
    partial = Thresholds.from_manifest(
        {"thresholds": {"min_confidence": {"complaint": 0.8, "praise": "x"}, "min_margin": 2}}
    )
    assert partial.source == "manifest"
    assert partial.min_confidence["complaint"] == 0.8
    assert partial.min_confidence["praise"] == 0.5
    assert partial.min_margin == 0.15
    assert partial.review_reasons("complaint", 0.7, 0.5) == ["low_confidence"]
    assert partial.review_reasons("complaint", 0.9, 0.1) == ["small_margin"]
    assert partial.review_reasons("complaint", 0.9, 0.5) == []

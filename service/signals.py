"""Rule-based signals beside the classifier: flags, topics and a priority score with reasons.

Plain functions over a comment's words, so they are cheap and easy to test. Each takes
`Words`: the comment's raw words (`service.text.raw_words`: lower case, Unicode repaired,
leetspeak undone, placeholders for phone/ID numbers, URLs and mentions) and its model tokens
(stemmed, slang mapped to standard Indonesian). Cues match either form, except the
`exact` ones, which match the raw word only ("jalan" the road, not "berjalan").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import pairwise

from service.privacy import mask_pii
from service.text import EMAIL, IDNUM, MENTION, NUM, PHONE, URL, raw_words, tokens


class Words:
    """A comment's raw words and model tokens, with the n-gram sets the rules look up."""

    __slots__ = ("_bigrams", "raw", "raw_unigrams", "stems", "text", "unigrams")

    def __init__(self, raw: Sequence[str], stems: Sequence[str], text: str = "") -> None:
        self.text = text  # the comment itself, for the few checks that need its digits
        self.raw = raw = tuple(raw)
        self.stems = stems = tuple(stems)
        self.raw_unigrams = frozenset(raw)
        self.unigrams = self.raw_unigrams.union(stems)
        self._bigrams: frozenset[str] | None = None

    @property
    def bigrams(self) -> frozenset[str]:
        """Every pair of neighbouring raw words and of neighbouring tokens as "a b" (made on
        first use: the rules themselves only need the pairs `bigrams_from` gives)."""
        if self._bigrams is None:
            self._bigrams = frozenset(_pairs(self.raw)).union(_pairs(self.stems))
        return self._bigrams

    def bigrams_from(self, starts: frozenset[str]) -> Set[str]:
        """The bigrams whose first word is in `starts`. For phrases whose `phrase_starts` are
        in `starts`, `phrases & words.bigrams_from(starts) == phrases & words.bigrams`; most
        comments have no such word, and then no pair is written at all."""
        if self._bigrams is not None:
            return self._bigrams
        found: set[str] = set()
        for words in (self.raw, self.stems):
            if not starts.isdisjoint(words):
                found.update([f"{a} {b}" for a, b in pairwise(words) if a in starts])
        return found

    @classmethod
    def from_text(cls, text: str) -> Words:
        """Raw words and default-pipeline tokens of a text (for tests and one-off use)."""
        return cls(raw_words(text), tokens(text), text)

    def __repr__(self) -> str:
        return f"Words(raw={self.raw!r}, stems={self.stems!r})"


def _pairs(words: Sequence[str]) -> list[str]:
    return [f"{a} {b}" for a, b in pairwise(words)]


def phrase_starts(phrases: Iterable[str]) -> frozenset[str]:
    """What a phrase begins with, up to each of its spaces ("a" for "a b"; "x" and "x y" for
    "x y z"): a pair of words (a, b) can only make a phrase that begins with a and a space."""
    return frozenset(p[:i] for p in phrases for i, char in enumerate(p) if char == " ")


@dataclass(frozen=True)
class Lexicon:
    """Cues of one signal: words (raw or stemmed), exact raw words, and two-word phrases."""

    words: frozenset[str] = frozenset()
    exact: frozenset[str] = frozenset()
    phrases: frozenset[str] = frozenset()

    @classmethod
    def build(cls, cues: str, exact: str = "") -> Lexicon:
        """Cues separated by commas; a cue with a space is a phrase."""
        items = [c.strip() for c in cues.split(",") if c.strip()]
        return cls(
            words=frozenset(c for c in items if " " not in c),
            exact=frozenset(c.strip() for c in exact.split(",") if c.strip()),
            phrases=frozenset(c for c in items if " " in c),
        )

    def hits(self, words: Words) -> list[str]:
        found = (
            (self.words & words.unigrams)
            | (self.exact & words.raw_unigrams)
            | (self.phrases & words.bigrams)
        )
        return sorted(found)


class Matcher:
    """Many lexicons at once: three set intersections per comment instead of three per
    lexicon, then a lookup per cue found."""

    def __init__(self, lexicons: Mapping[str, Lexicon]) -> None:
        self.names = list(lexicons)
        self.any_words: dict[str, list[str]] = {}
        self.exact: dict[str, list[str]] = {}
        self.phrases: dict[str, list[str]] = {}
        for name, lexicon in lexicons.items():
            for table, cues in (
                (self.any_words, lexicon.words),
                (self.exact, lexicon.exact),
                (self.phrases, lexicon.phrases),
            ):
                for cue in cues:
                    table.setdefault(cue, []).append(name)
        self._any_keys = frozenset(self.any_words)
        self._exact_keys = frozenset(self.exact)
        self._phrase_keys = frozenset(self.phrases)
        self._phrase_starts = phrase_starts(self._phrase_keys)

    def match(self, words: Words) -> dict[str, list[str]]:
        """Lexicon name -> sorted cues found (lexicons without a hit are absent)."""
        found: dict[str, set[str]] = {}
        for table, cues in (
            (self.any_words, self._any_keys & words.unigrams),
            (self.exact, self._exact_keys & words.raw_unigrams),
            (self.phrases, self._phrase_keys & words.bigrams_from(self._phrase_starts)),
        ):
            for cue in cues:
                for name in table[cue]:
                    found.setdefault(name, set()).add(cue)
        return {name: sorted(found[name]) for name in self.names if name in found}


# --- urgent -------------------------------------------------------------------------------

# Raw word forms only, so that negation can be read from word order.
URGENT_WORDS = frozenset(
    [
        "banjir",
        "kebanjiran",
        "kebakaran",
        "terbakar",
        "damkar",
        "longsor",
        "longsoran",
        "kecelakaan",
        "tabrakan",
        "ditabrak",
        "tertabrak",
        "lakalantas",
        "darurat",
        "emergency",
        "sos",
        "gempa",
        "tsunami",
        "tumbang",
        "evakuasi",
        "tenggelam",
        "hanyut",
        "ledakan",
        "meledak",
        "ambulans",
        "ambulan",
        "kesetrum",
    ]
)
URGENT_PHRASES = frozenset(
    [
        "banjir bandang",
        "tanggul jebol",
        "laka lantas",
        "gawat darurat",
        "puting beliung",
        "pohon tumbang",
        "terseret arus",
        "korban jiwa",
        "kebocoran gas",
        "bocor gas",
        "tersengat listrik",
    ]
)
# A cue right after one of these is not an emergency ("semoga bebas banjir", "cegah banjir").
NEGATORS = frozenset(
    [
        "tidak",
        "tak",
        "gak",
        "ga",
        "nggak",
        "ngga",
        "enggak",
        "engga",
        "bukan",
        "bebas",
        "anti",
        "cegah",
        "mencegah",
        "pencegahan",
        "antisipasi",
        "penanggulangan",
        "tanggulangi",
    ]
)


_URGENT_STARTS = phrase_starts(URGENT_PHRASES)


def urgent_cues(words: Words) -> list[str]:
    """Emergency words and phrases of the comment, minus negated ones ("bebas banjir")."""
    raw = words.raw
    if not (
        URGENT_WORDS & words.raw_unigrams or URGENT_PHRASES & words.bigrams_from(_URGENT_STARTS)
    ):
        return []
    kept = [w for i, w in enumerate(raw) if not (i and raw[i - 1] in NEGATORS)]
    found = (URGENT_WORDS & set(kept)) | (URGENT_PHRASES & set(_pairs(kept)))
    return sorted(found)


# --- spam ---------------------------------------------------------------------------------

GAMBLING_STRONG = Lexicon.build(
    "gacor, maxwin, scatter, sbobet, rtp, slot gacor, link alternatif, situs slot, slot online, "
    "bocoran slot, pola gacor, mahjong ways"
)
GAMBLING_WEAK = Lexicon.build(
    "slot, judol, judi, togel, toto, casino, kasino, poker, jackpot, jp, zeus, olympus, "
    "pragmatic, depo, deposit, wd, withdraw, bandar, taruhan, parlay, bet"
)
PROMO_CONTACT = Lexicon.build(
    f"{URL}, {PHONE}, {EMAIL}, {MENTION}, wa, whatsapp, dm, inbox, bio, link, klik, hubungi, kontak, "
    "cek ig, follow, daftar, gabung, join"
)
PROMO_COMMERCE = Lexicon.build(
    "promo, diskon, jual, dijual, jualan, order, reseller, dropship, endorse, murah, termurah, "
    "cod, ongkir, pinjol, pinjaman online, pinjaman dana, dana cair, followers, subscribe, "
    "giveaway, open po, ready stok, bonus, cuan, member baru, new member, harga"
)


SPAM_LEXICONS: Mapping[str, Lexicon] = {
    "gambling_strong": GAMBLING_STRONG,
    "gambling_weak": GAMBLING_WEAK,
    "contact": PROMO_CONTACT,
    "commerce": PROMO_COMMERCE,
}


def spam_cues(words: Words, found: Mapping[str, list[str]] | None = None) -> list[str]:
    """Online gambling or promotion cues when they add up to spam, else []."""
    if found is None:
        found = MATCHER.match(words)
    strong = found.get("gambling_strong", [])
    weak = found.get("gambling_weak", [])
    contact = found.get("contact", [])
    commerce = found.get("commerce", [])
    if strong or (weak and len(contact) >= 2) or (len(weak) >= 2 and contact):
        return strong + weak + contact
    if commerce and contact and (len(commerce) + len(contact) >= 3 or _has_link(words)):
        return commerce + contact
    return []


def _has_link(words: Words) -> bool:
    return bool({URL, PHONE} & words.raw_unigrams)


# --- personal data --------------------------------------------------------------------------

PII_PLACEHOLDERS = frozenset({PHONE, IDNUM, EMAIL})
ACCOUNT_WORDS = frozenset({"rekening", "rek", "norek", "nomor rekening"})
_MAY_HIDE_PII = frozenset({NUM, URL})


# What `service.privacy` masks, as the placeholders the text pipeline would have given.
_MASKED_AS = {"phone": PHONE, "idnum": IDNUM}


def pii_cues(words: Words) -> list[str]:
    """NIK/KK numbers, phone numbers, e-mail addresses, bank account numbers. Whatever
    `service.privacy` masks before storing counts too (a landline, or a number inside a link,
    reaches the text pipeline as a plain number or a URL)."""
    found = set(PII_PLACEHOLDERS & words.raw_unigrams)
    if words.text and not words.raw_unigrams.isdisjoint(_MAY_HIDE_PII):
        found.update(_MASKED_AS[kind] for kind in mask_pii(words.text)[1])
    cues = sorted(found)
    if ACCOUNT_WORDS.isdisjoint(words.raw_unigrams):
        return cues
    raw = words.raw
    for i, word in enumerate(raw):
        if word in ACCOUNT_WORDS and NUM in raw[i + 1 : i + 4]:
            cues.append("rekening")
            break
    return cues


# --- topics -------------------------------------------------------------------------------

TOPICS: Mapping[str, Lexicon] = {
    "bansos": Lexicon.build(
        "bansos, pkh, bpnt, blt, dtks, dtsen, kpm, pbi, rastra, raskin, bst, p3ke, rtlh, "
        "bantuan, miskin, kemiskinan, kartu sembako, bantuan sosial, bantuan pangan, "
        "program keluarga harapan, keluarga harapan, kis pbi"
    ),
    "jalan": Lexicon.build(
        "aspal, berlubang, jembatan, trotoar, paving, betonisasi, jalan rusak, jalan berlubang, "
        "jalan lubang, jalan bolong, jalan hancur, jalan jelek, jalan ambles, jalan amblas, "
        "jalan licin, jalan gelap, perbaikan jalan, perbaiki jalan, pelebaran jalan, tambal jalan",
        exact="jalanan, lubang",
    ),
    "banjir": Lexicon.build(
        "banjir, kebanjiran, rob, genangan, tergenang, drainase, gorong, selokan, got, tanggul, "
        "normalisasi, rumah pompa, saluran air"
    ),
    "sampah": Lexicon.build(
        "sampah, tps, tpa, tpst, limbah, kebersihan, truk sampah, bank sampah, buang sampah"
    ),
    "kesehatan": Lexicon.build(
        "puskesmas, rsud, bpjs, jkn, dokter, bidan, perawat, nakes, obat, vaksin, vaksinasi, "
        "imunisasi, posyandu, stunting, dbd, covid, pasien, faskes, dinkes, berobat, kesehatan, "
        "rumah sakit, demam berdarah, kis"
    ),
    "adminduk": Lexicon.build(
        "ktp, ektp, akta, akte, dukcapil, disdukcapil, capil, adminduk, kependudukan, domisili, "
        "ikd, nik, kartu keluarga, e ktp, kartu identitas, surat pindah, pindah domisili, "
        "akta kelahiran, kartu identitas anak"
    ),
    "pendidikan": Lexicon.build(
        "sekolah, guru, ppdb, spmb, zonasi, kip, kjp, beasiswa, siswa, murid, smp, sma, smk, "
        "sdn, smpn, sman, smkn, seragam, pendidikan, paud, mahasiswa, kuliah"
    ),
    "transportasi": Lexicon.build(
        "angkot, brt, terminal, stasiun, parkir, macet, kemacetan, ojol, lalin, dishub, halte, "
        "feeder, bus, trans semarang, lampu merah, lalu lintas, traffic light"
    ),
    "air_bersih": Lexicon.build("pdam, pam, air bersih, air mati, air keruh, air pdam"),
    "penerangan": Lexicon.build(
        "pju, pln, listrik, lampu jalan, penerangan jalan, mati lampu, lampu mati"
    ),
    "keamanan": Lexicon.build(
        "maling, begal, pencurian, curanmor, narkoba, tawuran, gangster, preman, pungli, "
        "judi online, judol"
    ),
    "perizinan": Lexicon.build("izin, ijin, perizinan, imb, pbg, nib, oss, slf"),
    "pajak": Lexicon.build("pajak, pbb, retribusi, samsat"),
    "kepegawaian": Lexicon.build("asn, pns, pppk, cpns, honorer, tenaga kontrak"),
    "ekonomi": Lexicon.build(
        "pasar, pedagang, umkm, pkl, loker, pengangguran, lapangan kerja, harga beras, "
        "harga sembako"
    ),
}


MATCHER = Matcher({**SPAM_LEXICONS, **{f"topic:{name}": lex for name, lex in TOPICS.items()}})
_TOPIC_KEYS = tuple((name, f"topic:{name}") for name in TOPICS)


def topics(words: Words, found: Mapping[str, list[str]] | None = None) -> list[str]:
    """Public-service topics the comment is about, in `TOPICS` order."""
    if found is None:
        found = MATCHER.match(words)
    return [name for name, key in _TOPIC_KEYS if key in found]


# --- flags and priority ---------------------------------------------------------------------


def flags(words: Words, label: str | None = None) -> list[str]:
    """`urgent`, `spam`, `pii` (in that order). Thanks for a past rescue is not urgent."""
    return analyse(words, label or "other", {}).flags


LABEL_POINTS: Mapping[str, int] = {
    "complaint": 50,
    "question": 30,
    "aspiration": 20,
    "praise": 5,
    "other": 5,
}
URGENT_POINTS = 35
PII_POINTS = 5
TOPIC_POINTS: Mapping[str, int] = {"bansos": 5, "kesehatan": 5, "banjir": 5, "keamanan": 5}


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str
    points: int

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail, "points": self.points}


def priority(
    label: str,
    scores: Mapping[str, float],
    flag_list: Sequence[str],
    topic_list: Sequence[str],
    urgent: Sequence[str] = (),
) -> tuple[int, list[Reason]]:
    """0-100: what the comment asks of an admin (expected label points under the model's
    scores), plus emergencies, vulnerable-people topics and personal data; spam is 0."""
    if "spam" in flag_list:
        return 0, [Reason("spam", "online gambling or promotion", 0)]
    expected = sum(scores.get(name, 0.0) * points for name, points in LABEL_POINTS.items())
    reasons = [Reason("label", f"{label} {scores.get(label, 0.0):.2f}", round(expected))]
    if "urgent" in flag_list:
        reasons.append(Reason("urgent", ", ".join(urgent) or "emergency", URGENT_POINTS))
    topical = [t for t in topic_list if t in TOPIC_POINTS]
    if topical:
        reasons.append(Reason("topic", ", ".join(topical), max(TOPIC_POINTS[t] for t in topical)))
    if "pii" in flag_list:
        reasons.append(Reason("pii", "personal data in a public comment", PII_POINTS))
    score = max(0, min(100, sum(r.points for r in reasons)))
    return score, reasons


@dataclass(frozen=True)
class Signals:
    flags: list[str]
    topics: list[str]
    priority: int
    reasons: list[Reason]


def analyse(words: Words, label: str, scores: Mapping[str, float]) -> Signals:
    """Every signal of one classified comment."""
    found = MATCHER.match(words)
    urgent = urgent_cues(words) if label != "praise" else []
    flag_list = ["urgent"] if urgent else []
    if spam_cues(words, found):
        flag_list.append("spam")
    if pii_cues(words):
        flag_list.append("pii")
    topic_list = topics(words, found)
    score, reasons = priority(label, scores, flag_list, topic_list, urgent)
    return Signals(flag_list, topic_list, score, reasons)

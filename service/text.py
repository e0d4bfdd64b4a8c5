"""Text pipeline shared by training and serving, so both see exactly the same tokens.

raw text -> `raw_words` (Unicode repair, placeholders, emoji and ?/! kept) -> `process_word`
per word (squeeze repeats, slang lexicon, Sastrawi stem, optional stop words) -> tokens, then
the comment's cue tokens and a marked copy of its opening words (`^admin`, `^mohon`): a comment
or report says what it wants first ("Min mau tanya", "Usul", "Aduan jalan rusak").

`process_word` is a pure function of the word, so it sits behind one bounded LRU cache per
process; a fitted `TextNormalizer` also carries a table of the training vocabulary, which makes
the cache warm from the first request.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

import ftfy
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

StopWords = Literal["keep", "sastrawi", "sastrawi_minus_cues"]

URL, EMAIL, MENTION, HASHTAG, PHONE, IDNUM, NUM = (
    "xurlx",
    "xemailx",
    "xmentionx",
    "xhashtagx",
    "xphonex",
    "xidnumx",
    "xnumx",
)
PLACEHOLDERS = frozenset({URL, EMAIL, MENTION, HASHTAG, PHONE, IDNUM, NUM})
# Prefix of the opening words' copies; `raw_words` never yields it, so no word collides.
OPENING = "^"
# How many opening words get a marked copy: 2 to 6 raise the dev comments and the LAPOR! reports
# alike (README, ablation), 8 costs dev; each word adds a unigram and a bigram to every comment.
OPENING_WORDS = 4
CUE_TOKENS = frozenset(
    f"x{cue}x"
    for cue in ("neg", "pos", "ask", "suggest", "report", "spam", "laugh", "pray", "thanks")
)

# Words that carry the intent of a comment: Sastrawi lists most of them as stop words and
# stems some into other words (berapa -> apa? no; dimana -> mana, sebaiknya -> baik).
CUE_WORDS = frozenset(
    [
        "apa",
        "apakah",
        "kapan",
        "bagaimana",
        "gimana",
        "kenapa",
        "mengapa",
        "berapa",
        "siapa",
        "dimana",
        "kemana",
        "darimana",
        "mana",
        "bisakah",
        "bolehkah",
        "adakah",
        "kah",
        "ya",
        "kok",
        "tidak",
        "bukan",
        "belum",
        "enggak",
        "jangan",
        "tanpa",
        "kurang",
        "mohon",
        "tolong",
        "minta",
        "harap",
        "harapnya",
        "berharap",
        "sebaiknya",
        "seharusnya",
        "harusnya",
        "semoga",
        "usul",
        "alangkah",
        "perbaiki",
        "diperbaiki",
        "perbaikan",
        "sudah",
        "masih",
        "harus",
        "bisa",
        "boleh",
    ]
)

# Zero-width and bidi controls, variation selectors (❤️ == ❤), skin-tone modifiers, soft hyphen,
# BOM and other characters that change nothing a reader sees.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufe00-\ufe0f\ufeff\U0001f3fb-\U0001f3ff]"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Characters that only show up in text that went through a wrong decoder (ðŸ˜‚ for 😂).
_MOJIBAKE_HINT = re.compile(
    r"[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)


def _cp1252_char(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: undefined, shown as C1 controls
        return chr(byte)


_CONTINUATION = "".join(_cp1252_char(b) for b in range(0x80, 0xC0))
_CONTINUATION_BYTE = {_cp1252_char(b): b for b in range(0x80, 0xC0)}
# A 4-byte emoji read as cp1252 whose last byte was undefined there and got lost on the way
# ("ðŸ‘" for 👍). ftfy would take a following space for a lost 0xA0 and print 👠, so these
# are restored first, with the undefined byte that makes the commonest emoji of its block.
_TRUNCATED_EMOJI = re.compile(f"ðŸ([{re.escape(_CONTINUATION)}])(?![{re.escape(_CONTINUATION)}])")
_LOST_BYTE = {0x99: 0x8F}  # 🙏; everywhere else 0x8D: 👍 😍


def _restore_truncated_emoji(match: re.Match[str]) -> str:
    third = _CONTINUATION_BYTE[match.group(1)]
    return bytes([0xF0, 0x9F, third, _LOST_BYTE.get(third, 0x8D)]).decode("utf-8", "replace")


_EMOJI = (
    "\U0001f000-\U0001faff\u2190-\u21ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u27bf\u2900-\u297f"
    "\u2b00-\u2bff\u3030\u303d\u3297\u3299"
)
_PLACEHOLDER = re.compile(
    r"(?P<url>https?://\S+|www\.\S+"
    r"|(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:com|id|net|org|io|ly|me|xyz|site|link|info|biz|co|tv|app|gg|vip|top|online|store)\b(?:/\S*)?)"
    r"|(?P<email>(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+)"
    r"|(?P<mention>@[\w.]+)"
    r"|(?P<hashtag>\#(?P<tag>[^\W_][\w]*))"
    r"|(?P<phone>(?<!\w)(?:\+62|62|0)[\s.-]?8(?:[\s.-]?\d){7,11}(?!\d))"
    r"|(?P<idnum>(?<!\d)\d{16}(?!\d))"
)
_TLD = r"\.(?:com|id|net|org|io|ly|me|xyz|site|link|info|biz|co|tv|app|gg|vip|top|online|store)\b"
# Something every placeholder match needs: @, #, http, www, a known TLD, four digits in a
# row, or a phone number's 8 and seven more digits in separated groups (08 12 34 56 78).
_PLACEHOLDER_HINT = re.compile(_TLD + r"|[@#]|http|www|\d{4}|8(?:[\s.-]?\d){7}")
_TOKEN = re.compile(rf"[^\W_]+|[?!]|[{_EMOJI}]")
_REPEAT3 = re.compile(r"(\w)\1\1+")
_REPEAT2 = re.compile(r"(\w)\1+")
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b"}
_LEET_DIGIT = re.compile(r"(?<=[^\W\d_])[0134578](?=[^\W\d_])")
_REDUPLICATION = re.compile(r"^([^\W\d_]{2,})2([^\W\d_]*)$")
_LETTERS_OR_DIGITS = re.compile(r"\d+|[^\W\d_]+")
_MAX_STEM_LEN = 40
_LRU_SIZE = 100_000


def _placeholder(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "tag" or match.group("hashtag"):
        return f" {HASHTAG} {match.group('tag')} "
    return {
        "url": f" {URL} ",
        "email": f" {EMAIL} ",
        "mention": f" {MENTION} ",
        "phone": f" {PHONE} ",
        "idnum": f" {IDNUM} ",
    }[kind or "url"]


def clean(text: str) -> str:
    """Repairs and canonicalises a comment: valid Unicode, mojibake fixed, NFKC, lower case,
    no invisible characters, placeholders for URLs, e-mails, mentions, phone and ID numbers."""
    # ASCII text (a flag CPython keeps on every str) has no surrogates, invisible characters
    # or mojibake and is NFKC already: only controls and case are left to fix.
    if not text.isascii():
        text = _repair_unicode(text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
    text = text.lower()
    if _may_hold_placeholder(text):
        text = _PLACEHOLDER.sub(_placeholder, text)
    return text


def _repair_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("", text)
    text = _strip_invisible(text)
    if _MOJIBAKE_HINT.search(text):
        if "ðŸ" in text:
            text = _TRUNCATED_EMOJI.sub(_restore_truncated_emoji, text)
        # fix_encoding alone: 2.5x cheaper than fix_text; NFKC and controls are handled below.
        text = _strip_invisible(ftfy.fix_encoding(text))
    if not unicodedata.is_normalized("NFKC", text):
        text = _strip_invisible(unicodedata.normalize("NFKC", text))
    return text


def _strip_invisible(text: str) -> str:
    return _INVISIBLE.sub("", text) if _INVISIBLE.search(text) else text


def _may_hold_placeholder(text: str) -> bool:
    """A cheap guard in front of the placeholder regex, which costs ~10 us on every comment."""
    return _PLACEHOLDER_HINT.search(text) is not None


def _split_alnum(token: str) -> list[str]:
    """Words mixing letters and digits: reduplication (cair2), leetspeak (g4c0r), 3bln."""
    redup = _REDUPLICATION.match(token)
    if redup:
        return [redup.group(1)]
    token = _LEET_DIGIT.sub(lambda m: _LEET[m.group()], token)
    return [NUM if part.isdigit() else part for part in _LETTERS_OR_DIGITS.findall(token)]


def raw_words(text: str, keep_punct: bool = True, keep_emoji: bool = True) -> list[str]:
    """Tokens of a cleaned comment before the per-word steps; numbers become a placeholder."""
    words: list[str] = []
    for token in _TOKEN.findall(clean(text)):
        if token.isalpha():
            words.append(token)
        elif token in "?!":
            if keep_punct:
                words.append(token)
        elif token.isalnum():
            words.extend([NUM] if token.isdigit() else _split_alnum(token))
        elif keep_emoji:
            words.append(token)
    return words


@cache
def lexicon() -> dict[str, tuple[str, ...]]:
    """The project's slang/Javanese/Sundanese lexicon: one word -> standard Indonesian words."""
    return {
        word: tuple(value.replace("-", " ").split())
        for word, value in _resource_pairs("lexicon.tsv")
    }


@cache
def cues() -> dict[str, str]:
    """Word -> intent, polarity or register cue (neg, pos, ask, suggest, report, spam, laugh,
    pray, thanks), written for this project.
    A cue token next to the word lets the model generalise to cue words it never saw."""
    return {word: f"x{cue}x" for word, cue in _resource_pairs("cues.tsv")}


def _resource_pairs(name: str) -> list[tuple[str, str]]:
    """The two-column rows of a TSV in service/resources, header skipped."""
    source = resources.files("service").joinpath(f"resources/{name}")
    with source.open("r", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows, None)
        return [(row[0], row[1]) for row in rows if len(row) == 2]


@cache
def _stemmer() -> Any:
    """Sastrawi's stemmer, built once per process (its dictionary holds 30k root words)."""
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return StemmerFactory().create_stemmer().delegatedStemmer


@cache
def sastrawi_stop_words() -> frozenset[str]:
    from Sastrawi.StopWordRemover.StopWordRemoverFactory import StopWordRemoverFactory

    return frozenset(StopWordRemoverFactory().get_stop_words())


def _stop_words(mode: StopWords) -> frozenset[str]:
    if mode == "keep":
        return frozenset()
    if mode == "sastrawi":
        return sastrawi_stop_words()
    return sastrawi_stop_words() - CUE_WORDS


def _squeeze(word: str, use_lexicon: bool = True) -> tuple[str, ...]:
    """bangettt -> banget, mantulll -> mantul, maaaf -> maaf, then the slang lexicon."""
    lex = lexicon() if use_lexicon else {}
    if word in lex:
        return lex[word]
    if not _REPEAT3.search(word):
        # alhamdulillaah, amiin: a doubled letter that no lexicon knows, but its single form is
        single = _REPEAT2.sub(r"\1", word)
        if single != word and (single in lex or single in cues()) and not _in_dictionary(word):
            return lex.get(single, (single,))
        return (word,)
    double = _REPEAT3.sub(r"\1\1", word)
    if double in lex:
        return lex[double]
    single = _REPEAT2.sub(r"\1", double)
    if single in lex:
        return lex[single]
    if _in_dictionary(double):
        return (double,)
    return (single,)


def _in_dictionary(word: str) -> bool:
    return bool(_stemmer().dictionary.contains(word))


def stem(word: str) -> str:
    if word in CUE_WORDS or word in PLACEHOLDERS or len(word) > _MAX_STEM_LEN:
        return word
    if not word.isascii() or not word.isalpha():
        return word
    return str(_stemmer().stem_word(word))


@lru_cache(maxsize=_LRU_SIZE)
def process_word(
    word: str,
    do_stem: bool = True,
    stop_words: StopWords = "keep",
    use_lexicon: bool = True,
    use_cues: bool = True,
) -> tuple[str, ...]:
    """Everything done to one word, pure and cached: squeeze, lexicon, stem, stop words, cue."""
    cue_of = cues() if use_cues else {}
    if word in PLACEHOLDERS or not word.isalnum():
        return (word, cue_of[word]) if word in cue_of else (word,)
    stops = _stop_words(stop_words)
    out = []
    for part in _squeeze(word, use_lexicon):
        if part in stops:
            continue
        root = stem(part) if do_stem else part
        out.append(root)
        cue = cue_of.get(part) or cue_of.get(root)
        if cue:
            out.append(cue)
    return tuple(out)


def tokens(
    text: str,
    *,
    do_stem: bool = True,
    stop_words: StopWords = "keep",
    keep_punct: bool = True,
    keep_emoji: bool = True,
    use_lexicon: bool = True,
    use_cues: bool = True,
    opening: int = OPENING_WORDS,
    table: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """The model's tokens for one comment: words in order (consecutive repeats collapse:
    cair-cair, 😭😭😭, ??), then the comment's cue tokens, after the words so that they never
    split a word bigram, then the first `opening` words again, marked with `OPENING`."""
    return tokens_of_words(
        raw_words(text, keep_punct, keep_emoji),
        do_stem=do_stem,
        stop_words=stop_words,
        use_lexicon=use_lexicon,
        use_cues=use_cues,
        opening=opening,
        table=table,
    )


def tokens_of_words(
    words: Iterable[str],
    *,
    do_stem: bool = True,
    stop_words: StopWords = "keep",
    use_lexicon: bool = True,
    use_cues: bool = True,
    opening: int = OPENING_WORDS,
    table: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """`tokens` from the output of `raw_words`, for callers that need both."""
    table = table or {}
    out: list[str] = []
    cue_tokens: list[str] = []
    last_word = last = None
    for word in words:
        if word == last_word:
            continue
        last_word = word
        processed = table.get(word)
        if processed is None:
            processed = process_word(word, do_stem, stop_words, use_lexicon, use_cues)
        for token in processed:
            if token in CUE_TOKENS:
                cue_tokens.append(token)
            elif token != last:
                out.append(token)
                last = token
    return out + cue_tokens + [OPENING + token for token in out[:opening]]


def _joins_opening(gram: str) -> bool:
    """An n-gram across the end of a comment and the copies of its first words (`bulan ^admin`)."""
    if OPENING not in gram:  # most n-grams: no split needed
        return False
    marked = [part.startswith(OPENING) for part in gram.split(" ")]
    return any(marked) and not all(marked)


class OpeningTfidfVectorizer(TfidfVectorizer):
    """TF-IDF over word n-grams, minus those that join the end of a comment to the copies of
    its opening words: they mean nothing, and rare ones got large weights. The
    vocabulary simply lacks them, so the serving fast path, which looks n-grams up in the
    vocabulary, drops them the same way. (`_word_ngrams` is scikit-learn's private hook for
    word n-grams; artifacts refuse another scikit-learn version.)"""

    def _word_ngrams(self, tokens: list[str], stop_words: Any = None) -> list[str]:
        grams: list[str] = super()._word_ngrams(tokens, stop_words)
        return [gram for gram in grams if not _joins_opening(gram)]


def normalize(text: str) -> str:
    """The default pipeline's tokens joined by spaces: what the vectorizer sees."""
    return " ".join(tokens(text))


class TextNormalizer(TransformerMixin, BaseEstimator):
    """Turns comments into space-joined tokens; `fit` stores the training vocabulary's
    processed forms (`word_table_`) so that serving never stems a known word again."""

    def __init__(
        self,
        do_stem: bool = True,
        stop_words: StopWords = "keep",
        keep_punct: bool = True,
        keep_emoji: bool = True,
        use_lexicon: bool = True,
        use_cues: bool = True,
        opening: int = OPENING_WORDS,
    ) -> None:
        self.do_stem = do_stem
        self.stop_words = stop_words
        self.keep_punct = keep_punct
        self.keep_emoji = keep_emoji
        self.use_lexicon = use_lexicon
        self.use_cues = use_cues
        self.opening = opening

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Artifacts pickled before opening words existed were trained without them.
        super().__setstate__({"opening": 0, **state})

    def fit(self, X: Iterable[str], y: Sequence[Any] | None = None) -> TextNormalizer:
        texts = _as_texts(X)
        vocabulary = {
            w for text in texts for w in raw_words(text, self.keep_punct, self.keep_emoji)
        }
        self.word_table_ = {
            w: process_word(w, self.do_stem, self.stop_words, self.use_lexicon, self.use_cues)
            for w in sorted(vocabulary)
        }
        return self

    def transform(self, X: Iterable[str]) -> list[str]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "word_table_")
        return [" ".join(self.tokens(text)) for text in _as_texts(X)]

    def tokens(self, text: str) -> list[str]:
        return self.words_and_tokens(text)[1]

    def words_and_tokens(self, text: str) -> tuple[list[str], list[str]]:
        """The raw words (as `raw_words` gives them) and the model's tokens, in one pass."""
        words = raw_words(text, self.keep_punct, self.keep_emoji)
        return words, tokens_of_words(
            words,
            do_stem=self.do_stem,
            stop_words=self.stop_words,
            use_lexicon=self.use_lexicon,
            use_cues=self.use_cues,
            opening=self.opening,
            table=self.word_table_,
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags


def _as_texts(X: Iterable[Any]) -> list[str]:
    if isinstance(X, str):
        raise ValueError("Expected an iterable of comments, got a single string.")
    return ["" if x is None else str(x) for x in X]

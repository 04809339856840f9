"""Full-text search over help articles, in process: tokenizer, BM25F ranking, snippets. Pure, no I/O.

Tokens:
- Latin (and any spaced script): NFKC, lowercase, split on anything that is not a letter or digit, a small
  stop-word list, then light suffix stripping so "linking", "linked" and "links" all become "link".
- Chinese (and kana, hangul): no spaces to split on, so each run of such characters becomes overlapping
  character bigrams ("忘记密码" → 忘记 记密 密码). Documents also index single characters, used only when a
  query's run is one character long. Bigrams of pure function words ("怎么", "如何") are dropped.
- Mixed text is split into runs first, so "银行卡link" is 银行 行卡 + link.

Ranking is BM25F over three fields, title (weight 3), tags (2) and body (1), with IDF per locale. Results
scoring under a quarter of the best are dropped: they share only a stray term with the query.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

from services.ticketing.domain import Category
from services.ticketing.help.domain import Article, Locale, has_cjk, is_cjk, other_locale

_STOP_WORDS_TEXT = """
    a an the and or but if so of to in on at by for from with without into about as than then
    i me my mine we us our you your he she it its they them their this that these those there here
    is are was were be been being am do does did done doing have has had having will would shall should
    can could may might must not no yes
    how what why when where which who whom whose
    please help hi hello thanks thank any some just also very too get got
    don doesn didn isn aren wasn weren won wouldn can cannot couldn shouldn haven hasn hadn
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

# Function-word bigrams that appear in almost every question and say nothing about the topic.
_STOP_BIGRAMS_TEXT = """
    怎么 怎样 如何 什么 为什 为何 是否 可以 能否 请问 一下 我的 你们 我们 他们 这个 那个 因为 所以 但是
    如果 还是 或者 已经 的话 么办 怎办 应该 需要 时候 的时 了吗 了么 是不 不是 有没
"""
_STOP_BIGRAMS = frozenset(_STOP_BIGRAMS_TEXT.split())
# Single characters too common to mean anything on their own (only single-character queries use unigrams).
_STOP_CHARS = frozenset("的了吗呢吧啊是在有和与或我你他她它们这那就也都要会能怎么么什为何请把被对")

K1 = 1.2
FIELD_WEIGHT = {"title": 3.0, "tags": 2.0, "body": 1.0}
# Length normalisation per field: short titles should not be rewarded much for being short.
FIELD_B = {"title": 0.5, "tags": 0.3, "body": 0.75}
MIN_RELATIVE_SCORE = 0.25
CATEGORY_BOOST = 1.5
# Characters of snippet: a Chinese character carries about as much as a word, so CJK snippets are shorter.
SNIPPET_WIDTH = 160
SNIPPET_WIDTH_CJK = 70


class Mode(Enum):
    """Documents index CJK unigrams as well as bigrams; queries use unigrams only for one-character runs."""

    INDEX = "index"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class Token:
    term: str
    # Span in the text the token came from, so snippets can highlight it.
    start: int
    end: int


def stem(word: str) -> str:
    """Light English suffix stripping. Documents and queries go through the same function, so a stem only has to
    be consistent, not a real word ("freeze" and "frozen" both become "freez")."""
    if word.isdigit() or len(word) <= 3:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # "transferred" → "transferr" → "transfer"; but "fall", "miss", "buzz" keep their double letter.
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz" and word[-1].isalpha():
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


_IRREGULAR = {"froze": "freez", "frozen": "freez", "paid": "pay", "sent": "send", "lost": "lose", "stolen": "steal"}


def _units(text: str) -> Iterator[tuple[str, str, int]]:
    """(kind, normalised character(s), index) per character: kind is "cjk", "word" or "sep"."""
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char).lower()
        if folded and is_cjk(folded[0]):
            yield "cjk", folded, index
        elif folded and all(c.isalnum() for c in folded):
            yield "word", folded, index
        else:
            yield "sep", folded, index


def _runs(text: str) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    kind = "sep"
    run: list[tuple[str, int]] = []
    for unit_kind, folded, index in _units(text):
        if unit_kind != kind and run:
            yield kind, run
            run = []
        kind = unit_kind
        if unit_kind != "sep":
            run.append((folded, index))
    if run:
        yield kind, run


def tokenize(text: str, mode: Mode = Mode.QUERY) -> list[Token]:
    tokens: list[Token] = []
    for kind, run in _runs(text):
        start, end = run[0][1], run[-1][1] + 1
        if kind == "word":
            word = "".join(folded for folded, _ in run)
            if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()):
                continue
            tokens.append(Token(stem(word), start, end))
            continue
        chars = [folded for folded, _ in run]
        positions = [index for _, index in run]
        if len(chars) == 1 or mode is Mode.INDEX:
            tokens.extend(
                Token(char, index, index + 1)
                for char, index in zip(chars, positions, strict=True)
                if char not in _STOP_CHARS
            )
        for i in range(len(chars) - 1):
            bigram = chars[i] + chars[i + 1]
            if bigram not in _STOP_BIGRAMS:
                tokens.append(Token(bigram, positions[i], positions[i + 1] + 1))
    return tokens


def terms(text: str, mode: Mode = Mode.QUERY) -> list[str]:
    return [token.term for token in tokenize(text, mode)]


def query_terms(*parts: tuple[str, float]) -> dict[str, float]:
    """Each distinct term of the weighted texts, with the highest weight it appears with."""
    weights: dict[str, float] = {}
    for text, weight in parts:
        for term in terms(text, Mode.QUERY):
            weights[term] = max(weight, weights.get(term, 0.0))
    return weights


_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(\*\*|__|`|~~)")
_MD_LINE_PREFIX = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|>\s*)")


def plain_text(markdown: str) -> str:
    """Light Markdown as one line of text: links keep their words, marks and list bullets go."""
    lines = []
    for line in markdown.splitlines():
        line = _MD_LINE_PREFIX.sub("", _MD_MARKS.sub("", _MD_LINK.sub(r"\1", line)))
        if line.strip():
            lines.append(line.strip())
    return " ".join(" ".join(lines).split())


def snippet(body: str, wanted: Iterable[str]) -> str:
    """A short stretch of the body around the densest cluster of wanted terms, each wrapped in ``**``."""
    text = plain_text(body)
    width = SNIPPET_WIDTH_CJK if has_cjk(text) else SNIPPET_WIDTH
    lead = width // 5
    wanted_set = set(wanted)
    spans = [token for token in tokenize(text, Mode.INDEX) if token.term in wanted_set]
    if not spans:
        return text if len(text) <= width else text[:width].rstrip() + "…"
    best_start, best_count = 0, -1
    for token in spans:
        start = max(0, token.start - lead)
        inside = {t.term for t in spans if t.start >= start and t.end <= start + width}
        if len(inside) > best_count:
            best_start, best_count = start, len(inside)
    end = min(len(text), best_start + width)
    start = max(0, end - width)
    start, end = _snap(text, start, end)
    marked = _highlight(text, [(t.start, t.end) for t in spans if t.start >= start and t.end <= end], start, end)
    return ("…" if start > 0 else "") + marked + ("…" if end < len(text) else "")


def _snap(text: str, start: int, end: int) -> tuple[int, int]:
    """Move cut points to a space nearby so spaced words are not cut in half (CJK text has no spaces to find)."""
    if start > 0 and not text[start - 1].isspace():
        space = text.find(" ", start, start + 15)
        if space != -1:
            start = space + 1
    if end < len(text) and not text[end].isspace():
        space = text.rfind(" ", max(start, end - 15), end)
        if space != -1:
            end = space
    return start, end


def _highlight(text: str, spans: list[tuple[int, int]], start: int, end: int) -> str:
    merged: list[list[int]] = []
    for span_start, span_end in sorted(spans):
        if merged and span_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span_end)
        else:
            merged.append([span_start, span_end])
    out, cursor = [], start
    for span_start, span_end in merged:
        out.append(text[cursor:span_start])
        out.append(f"**{text[span_start:span_end]}**")
        cursor = span_end
    out.append(text[cursor:end])
    return "".join(out).strip()


@dataclass(frozen=True, slots=True)
class _Document:
    article: Article
    fields: Mapping[str, Counter[str]]
    lengths: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Hit:
    article: Article
    score: float
    snippet: str


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    ranked: list[tuple[float, Article]]
    weights: Mapping[str, float]
    # How many articles of the requested locale matched, before any category filter: 0 makes a search gap.
    requested_locale_hits: int
    # Set when the requested locale matched nothing and these hits come from the other one.
    fallback_locale: Locale | None = None

    def page(self, offset: int, limit: int) -> list[Hit]:
        """Hits ``offset`` to ``offset + limit``; snippets are cut only for the articles actually returned."""
        return [
            Hit(article, score, snippet(article.body, self.weights)) for score, article in self.ranked[offset:][:limit]
        ]

    @property
    def hits(self) -> list[Hit]:
        return self.page(0, len(self.ranked))


@dataclass(slots=True)
class _LocaleIndex:
    documents: list[_Document] = field(default_factory=list)
    postings: dict[str, list[int]] = field(default_factory=dict)
    average: dict[str, float] = field(default_factory=dict)

    def add(self, article: Article) -> None:
        fields = {
            "title": Counter(terms(article.title, Mode.INDEX)),
            "tags": Counter(t for tag in article.tags for t in terms(tag, Mode.INDEX)),
            "body": Counter(terms(plain_text(article.body), Mode.INDEX)),
        }
        number = len(self.documents)
        self.documents.append(
            _Document(article, fields, {name: sum(counts.values()) for name, counts in fields.items()})
        )
        for term in set().union(*fields.values()):
            self.postings.setdefault(term, []).append(number)

    def finish(self) -> None:
        count = max(1, len(self.documents))
        self.average = {name: max(1.0, sum(d.lengths[name] for d in self.documents) / count) for name in FIELD_WEIGHT}

    def rank(self, weights: Mapping[str, float], boost: Category | None) -> list[tuple[float, _Document]]:
        total = len(self.documents)
        scores: dict[int, float] = {}
        for term, query_weight in weights.items():
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1.0 + (total - len(posting) + 0.5) / (len(posting) + 0.5))
            for number in posting:
                tf = self._weighted_tf(self.documents[number], term)
                scores[number] = scores.get(number, 0.0) + query_weight * idf * tf * (K1 + 1) / (tf + K1)
        ranked = []
        for number, score in scores.items():
            document = self.documents[number]
            if boost is not None and document.article.category is boost:
                score *= CATEGORY_BOOST
            ranked.append((score, document))
        ranked.sort(key=lambda pair: (-pair[0], pair[1].article.slug))
        if ranked:
            floor = ranked[0][0] * MIN_RELATIVE_SCORE
            ranked = [pair for pair in ranked if pair[0] >= floor]
        return ranked

    def _weighted_tf(self, document: _Document, term: str) -> float:
        tf = 0.0
        for name, weight in FIELD_WEIGHT.items():
            count = document.fields[name].get(term, 0)
            if count:
                b = FIELD_B[name]
                tf += weight * count / (1 - b + b * document.lengths[name] / self.average[name])
        return tf


class HelpIndex:
    """An immutable index of the published articles, one BM25F corpus per locale."""

    def __init__(self, articles: Iterable[Article]) -> None:
        self._locales = {locale: _LocaleIndex() for locale in Locale}
        for article in articles:
            if article.published:
                self._locales[article.locale].add(article)
        for index in self._locales.values():
            index.finish()

    def __len__(self) -> int:
        return sum(len(index.documents) for index in self._locales.values())

    def rank(
        self, weights: Mapping[str, float], locale: Locale, *, boost: Category | None = None
    ) -> list[tuple[float, Article]]:
        return [(score, doc.article) for score, doc in self._locales[locale].rank(weights, boost)]

    def search(
        self, query: str, locale: Locale, *, category: Category | None = None, fallback: bool = True
    ) -> SearchOutcome:
        """Ranked hits of ``locale``; if it has none and ``fallback``, the other locale's. ``category`` filters
        what is returned but not ``requested_locale_hits``, so a narrow filter never looks like a missing answer."""
        weights = query_terms((query, 1.0))
        ranked = self.rank(weights, locale)
        requested_hits = len(ranked)
        used: Locale | None = None
        if not ranked and fallback:
            ranked = self.rank(weights, other_locale(locale))
            used = other_locale(locale) if ranked else None
        if category is not None:
            ranked = [(score, article) for score, article in ranked if article.category is category]
        return SearchOutcome(ranked, weights, requested_locale_hits=requested_hits, fallback_locale=used)

    def suggest(
        self, subject: str, description: str, locale: Locale, *, category: Category | None, limit: int
    ) -> list[Hit]:
        """Articles for a ticket not yet sent: the subject weighs twice the description; the category boosts."""
        weights = query_terms((subject, 2.0), (description, 1.0))
        ranked = self.rank(weights, locale, boost=category)[:limit]
        return [Hit(article, score, snippet(article.body, weights)) for score, article in ranked]

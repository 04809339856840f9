"""English recovery phrases: runs of 12 or more BIP-39 words.

A run is a sequence of wordlist words with nothing between them but separators (whitespace, commas,
dashes, dots, brackets, quotes) and numbering up to 24 ("1. abandon 2) ability"). Ordinary English
almost never has 12 such words in a row: "I", "a", "the", "to", "my", "is", "it", "and", "with" and
most pronouns are not in the list, and any of them ends a run.

The checksum is not required: victims of fake support mistype, and a mistyped word is often another
list word. For the same reason a run may hold up to two words that only share their first four
letters with a list word (BIP-39 makes those four letters unique, so "abandn" still means "abandon"),
and a phrase written entirely in the four-letter short form some steel backups use is a run too.
"""

from __future__ import annotations

import re

from . import separators, wordlists
from .model import SecretKind, Span, token

MIN_WORDS = 12
MAX_MISSPELT = 2
_NUMBERING_MAX = 24
_SEPARATORS = separators.CHARS
_TOKEN = re.compile(
    rf"(?P<redacted>\[redacted:[a-z_]+\])"
    # A change from lower to upper case starts a new word: "fitL46HV…" is "fit" and a key glued to it.
    rf"|(?P<word>[A-Z]+(?![a-z])|[A-Z]?[a-z]+)"
    rf"|(?P<num>[0-9]+)"
    rf"|(?P<sep>[{_SEPARATORS}]+)"
    rf"|(?P<other>[^A-Za-z0-9{_SEPARATORS}]+)"
)

# Stretches that could hold a phrase: words of three or more letters (every list word has at least
# three), separators and numbering. Ordinary sentences are cut short by "I", "a", "to", "my", "is"…
# so the word-by-word reading below only runs on the rare long stretches.
_STRETCH = re.compile(rf"[A-Za-z]{{3,}}(?:[{_SEPARATORS}]+|{separators.NUMBERING}|(?<![A-Za-z])[A-Za-z]{{3,}})*")
_MIN_STRETCH = 3 * MIN_WORDS

_EXACT, _SHORT, _MISSPELT = 0, 1, 2


def _classify(word: str) -> int | None:
    lower = word.lower()
    if lower in wordlists.english():
        return _EXACT
    if len(lower) >= 4 and lower[:4] in wordlists.english_prefixes():
        return _SHORT if len(lower) == 4 else _MISSPELT
    return None


def _qualifying(run: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Index ranges [i, j) of ``run`` that are recovery phrases."""
    if len(run) < MIN_WORDS:
        return []
    if sum(1 for _, _, cls in run if cls == _MISSPELT) <= MAX_MISSPELT:
        return [(0, len(run))]
    # Too many near-misses for one phrase: only stretches of genuine (or short-form) words count.
    found: list[tuple[int, int]] = []
    begin = 0
    for index, (_, _, cls) in enumerate([*run, (0, 0, _MISSPELT)]):
        if cls == _MISSPELT:
            if index - begin >= MIN_WORDS:
                found.append((begin, index))
            begin = index + 1
    return found


def find(text: str) -> list[Span]:
    spans: list[Span] = []
    for stretch in _STRETCH.finditer(text):
        start, end = stretch.span()
        if end - start >= _MIN_STRETCH:
            numbering = separators.LEADING_NUMBER.search(text, max(0, start - 8), start)
            spans.extend(_find_in(text, numbering.start() if numbering else start, end))
    return spans


def _find_in(text: str, start: int, end: int) -> list[Span]:
    spans: list[Span] = []
    run: list[tuple[int, int, int]] = []  # (start, end, class) of each word
    lead: int | None = None  # where numbering in front of the first word starts
    replacement = token(SecretKind.RECOVERY_PHRASE)

    def close() -> None:
        nonlocal lead
        for i, j in _qualifying(run):
            begin = lead if i == 0 and lead is not None else run[i][0]
            spans.append(Span(begin, run[j - 1][1], SecretKind.RECOVERY_PHRASE, replacement))
        run.clear()
        lead = None

    for match in _TOKEN.finditer(text, start, end):
        group = match.lastgroup
        if group == "sep":
            continue
        if group == "num":
            digits = match.group()
            if len(digits) <= 2 and int(digits) <= _NUMBERING_MAX:
                if not run and lead is None:
                    lead = match.start()
                continue
        elif group == "word":
            cls = _classify(match.group())
            if cls is not None:
                run.append((match.start(), match.end(), cls))
                continue
        close()
    close()
    return spans

"""Chinese recovery phrases: runs of BIP-39 Chinese characters (simplified or traditional lists).

Each Chinese "word" is one common character, so ordinary Chinese is full of long runs of list
characters and length alone proves nothing. A run (list characters with only separators and
numbering between them) is a recovery phrase when:

1. it has 12 or more characters each standing alone ("的 一 是 …", "1.的 2.一 …", "的，一，…"):
   people do not write prose one spaced character at a time; or
2. a unit of it — a stretch between separators, or short groups written apart with spaces and
   read together ("的一是 在不了 有和人 这中大") — is exactly 12, 15, 18, 21 or 24 characters long
   and looks random; or
3. a longer unit (a phrase typed straight into a sentence) holds a random-looking window of such a
   length with a valid checksum.

"Looks random": both lists are ordered by frequency, so a character's index is its frequency rank.
The mean log-rank of a real phrase is about 6.6; prose, which leans on 的, 是, 了, 我…, scores far
lower. A unit or window qualifies when its score clears a bar, and the bar drops with more evidence:
very high alone (mistyped phrases of 15+ words), high with a valid BIP-39 checksum or a cue nearby
(助记词, 恢复词, 种子, "seed", "mnemonic"…), moderate with both. The bars sit near the 0.01 % to 3 %
quantiles of real phrases. The checksum alone passes one prose window in 16 (for 12 words), which
is why it never suffices. Known gap: a 12-character phrase glued into a sentence with no cue.

The whole stretch of characters the phrase touches is replaced, including any cue or prose glued
to it: hiding a few words too many is better than leaving half a phrase readable.
"""

from __future__ import annotations

import math
import operator
import re
from functools import cache
from itertools import accumulate
from typing import NamedTuple

from . import bip39, separators, wordlists
from .model import SecretKind, Span, after, before, token

MIN_WORDS = 12
_CUE_REACH = 24
_GROUP_MAX = 4

# Bars for the mean log1p(rank) of a unit or window, by length (see the module docstring).
_ALONE = {15: 6.10, 18: 6.10, 21: 6.10, 24: 6.10}  # no other evidence; about the 3 % quantile
_GLUED = {15: 6.00, 18: 6.00, 21: 6.00, 24: 6.00}  # with a checksum, inside a longer unit
_ONE_SIGN = {12: 5.60, 15: 5.50, 18: 5.55, 21: 5.65, 24: 5.75}  # with a checksum or a cue
_BOTH_SIGNS = 5.30  # with a checksum and a cue

_CUE = re.compile(r"助记|助記|恢复词|恢復詞|种子|種子|记忆词|記憶詞|mnemonic|seed|recovery|backup", re.IGNORECASE)


@cache
def _list_chars() -> re.Pattern[str]:
    """Maximal stretches of wordlist characters (built on first use: it needs the wordlists)."""
    return re.compile("[" + "".join(sorted(wordlists.chinese_rank())) + "]+")


@cache
def _log_ranks() -> dict[str, float]:
    return {char: math.log1p(rank) for char, rank in wordlists.chinese_rank().items()}


class _Segment(NamedTuple):
    """A maximal stretch of wordlist characters, text[start:end]."""

    start: int
    end: int
    gap_start: int  # where the text since the previous segment begins
    joined: bool  # only separators and numbering since the previous segment: same run
    spaced: bool  # short, and apart from the short segment before it by whitespace or numbering only


def _lead(text: str, segment: _Segment) -> int:
    """Where the replacement starts: numbering right in front of a segment goes with it ("12.大")."""
    if segment.joined:
        number = separators.FIRST_NUMBER.search(text, segment.gap_start, segment.start)
    else:
        number = separators.LEADING_NUMBER.search(text, max(segment.gap_start, segment.start - 8), segment.start)
    return number.start() if number else segment.start


def _cue_near(text: str, start: int, end: int) -> bool:
    return bool(_CUE.search(before(text, start, _CUE_REACH)) or _CUE.search(after(text, end, _CUE_REACH)))


def _checksum_ok(chars: str) -> bool:
    for table in (wordlists.chinese_simplified(), wordlists.chinese_traditional()):
        indices = [table.get(char, -1) for char in chars]
        if min(indices) >= 0 and bip39.checksum_ok(indices):
            return True
    return False


def _qualifies(text: str, chars: str, start: int, end: int, score: float, glued: bool) -> bool:
    """Whether ``chars`` (a phrase's length, at text[start:end], with this score) are a phrase."""
    length = len(chars)
    if glued:  # inside a longer unit: the checksum is required
        if score >= _GLUED.get(length, math.inf):
            return _checksum_ok(chars)
        return score >= _BOTH_SIGNS and _cue_near(text, start, end) and _checksum_ok(chars)
    if score >= _ALONE.get(length, math.inf):
        return True
    if score < _BOTH_SIGNS:
        return False
    if _cue_near(text, start, end):
        return score >= _ONE_SIGN[length] or _checksum_ok(chars)
    return score >= _ONE_SIGN[length] and _checksum_ok(chars)


def _is_phrase(text: str, unit: list[_Segment]) -> bool:
    start, end = unit[0].start, unit[-1].end
    chars = text[start:end] if len(unit) == 1 else "".join(text[s.start : s.end] for s in unit)
    # Without a cue anywhere near, only a whole unit or a window standing on its own (15 words or
    # more) can qualify; most prose units are over here.
    cue_around = _CUE.search(text, max(0, start - _CUE_REACH), end + _CUE_REACH) is not None
    if not cue_around and len(chars) < min(_GLUED) and len(chars) not in _ONE_SIGN:
        return False
    prefix = list(accumulate(map(_log_ranks().__getitem__, chars), initial=0.0))
    if len(chars) in _ONE_SIGN and _qualifies(text, chars, start, end, prefix[-1] / len(chars), glued=False):
        return True
    # Windows inside a longer unit; most prose already fails on the best window sum (computed at C speed).
    bars = dict.fromkeys(_ONE_SIGN, _BOTH_SIGNS) if cue_around else _GLUED
    positions: list[int] | None = None
    for length, bar in bars.items():
        if len(chars) < length or max(map(operator.sub, prefix[length:], prefix)) < bar * length:
            continue
        if positions is None:
            positions = [p for s in unit for p in range(s.start, s.end)]
        for i in range(len(chars) - length + 1):
            score = (prefix[i + length] - prefix[i]) / length
            window_end = positions[i + length - 1] + 1
            if score >= bar and _qualifies(text, chars[i : i + length], positions[i], window_end, score, glued=True):
                return True
    return False


def _units(run: list[_Segment]) -> list[list[_Segment]]:
    """Every long segment, plus each stretch of short segments set apart by spaces or numbering only,
    read as one ("的一是 在不了 有和人 这中大"); punctuation between short segments is prose."""
    units = [[segment] for segment in run if segment.end - segment.start >= MIN_WORDS]
    groups: list[list[_Segment]] = []
    previous_short = False
    for segment in run:
        short = segment.end - segment.start <= _GROUP_MAX
        if short and previous_short and segment.spaced:
            groups[-1].append(segment)
        elif short:
            groups.append([segment])
        previous_short = short
    units.extend(g for g in groups if len(g) >= 2 and sum(s.end - s.start for s in g) >= MIN_WORDS)
    return units


def _analyse(text: str, run: list[_Segment]) -> list[Span]:
    found: list[tuple[_Segment, _Segment]] = []
    singles: list[_Segment] = []  # characters standing alone, one by one
    for segment in [*run, None]:
        if segment is not None and segment.end - segment.start == 1:
            singles.append(segment)
            continue
        if len(singles) >= MIN_WORDS:
            found.append((singles[0], singles[-1]))
        singles = []
    # A unit that is a phrase goes whole, glued prose and cue included: better a few words too many.
    found.extend((unit[0], unit[-1]) for unit in _units(run) if _is_phrase(text, unit))
    replacement = token(SecretKind.RECOVERY_PHRASE)
    return [Span(_lead(text, first), last.end, SecretKind.RECOVERY_PHRASE, replacement) for first, last in found]


def find(text: str) -> list[Span]:
    spans: list[Span] = []
    run: list[_Segment] = []
    count = 0  # wordlist characters in the run
    previous_end = 0
    for match in _list_chars().finditer(text):
        start, end = match.span()
        joined = bool(run) and separators.GAP.fullmatch(text, previous_end, start) is not None
        if not joined:
            if count >= MIN_WORDS:
                spans.extend(_analyse(text, run))
            run, count = [], 0
        # Only short segments after short ones can form a group of words: test the gap only then.
        short = end - start <= _GROUP_MAX and bool(run) and run[-1].end - run[-1].start <= _GROUP_MAX
        spaced = joined and short and separators.SPACES.fullmatch(text, previous_end, start) is not None
        run.append(_Segment(start, end, previous_end, joined, spaced))
        count += end - start
        previous_end = end
    if count >= MIN_WORDS:
        spans.extend(_analyse(text, run))
    return spans

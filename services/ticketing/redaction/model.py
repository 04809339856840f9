"""The vocabulary shared by every detector: secret kinds, the result, and a found span."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum


class SecretKind(StrEnum):
    RECOVERY_PHRASE = "recovery_phrase"
    PRIVATE_KEY = "private_key"
    WIF_KEY = "wif_key"
    EXTENDED_PRIVATE_KEY = "extended_private_key"
    KEYSTORE = "keystore"
    CARD_NUMBER = "card_number"


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str
    findings: tuple[SecretKind, ...]

    @property
    def exposed(self) -> bool:
        """Whether the input carried at least one secret (the customer must be warned, the ticket flagged)."""
        return bool(self.findings)


@dataclass(frozen=True, slots=True)
class Span:
    """A secret at ``text[start:end]`` and what replaces it."""

    start: int
    end: int
    kind: SecretKind
    replacement: str


def token(kind: SecretKind) -> str:
    """One token style for every kind and language, so downstream code can count and recognise them."""
    return f"[redacted:{kind.value}]"


# Detectors treat an earlier replacement as opaque, which is what makes redaction idempotent.
TOKEN_PATTERN = re.compile(r"\[redacted:[a-z_]+\]")
_LONGEST_TOKEN = max(len(token(kind)) for kind in SecretKind)


def before(text: str, start: int, reach: int, floor: int = 0) -> str:
    """Up to ``reach`` characters before ``start`` (none before ``floor``), cut after any replacement token.

    Detectors that read context must not read into an earlier replacement, nor into a token cut in
    half: a second pass then sees exactly what the first pass saw.
    """
    low = max(floor, start - reach - _LONGEST_TOKEN)
    return TOKEN_PATTERN.split(text[low:start])[-1][-reach:] if reach else ""


def after(text: str, end: int, reach: int) -> str:
    """Up to ``reach`` characters from ``end``, cut before any replacement token."""
    return TOKEN_PATTERN.split(text[end : end + reach + _LONGEST_TOKEN])[0][:reach] if reach else ""


def edge_positions(spans: Iterable[Span]) -> frozenset[int]:
    """Where the given secrets start and end."""
    return frozenset(edge for span in spans for edge in (span.start, span.end))


def tokens_between_edges(text: str, pattern: re.Pattern[str], spans: Iterable[Span]) -> Iterator[tuple[int, int]]:
    """Every match of ``pattern`` (a maximal run of token characters), cut where another secret starts
    or ends: a key glued to a recovery phrase is a token of its own, as it will be once the phrase
    has been replaced."""
    edges = sorted(edge_positions(spans))
    for match in pattern.finditer(text):
        start, end = match.span()
        for edge in edges[bisect.bisect_right(edges, start) : bisect.bisect_left(edges, end)]:
            yield start, edge
            start = edge
        yield start, end

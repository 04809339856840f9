"""``redact``: run every detector over the text and replace what they found."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import cards, encoded_keys, hex_keys, keystore, phrases_en, phrases_zh
from .model import Redaction, SecretKind, Span, token

# Detectors that read around a match (is it glued to a word? is it labelled as a transaction
# hash?) run after these, and are told what these found: they must read the text as it will be
# once those secrets are replaced, or a second pass would decide differently.
_STANDALONE: tuple[Callable[[str], list[Span]], ...] = (keystore.find, phrases_en.find, phrases_zh.find)
_CONTEXTUAL: tuple[Callable[[str, Sequence[Span]], list[Span]], ...] = (
    encoded_keys.find,
    cards.find,
    hex_keys.find,
)

# Chinese input methods type full-width digits and letters ("４１１１…", "ｘｐｒｖ…"). Mapping them
# to ASCII one character for one keeps every offset valid in the original text.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def _merge(spans: list[Span]) -> list[tuple[int, int, str, list[SecretKind]]]:
    """Non-overlapping replacements in order. A span inside another is absorbed (its kind is not a
    separate finding); spans that merely overlap are joined under the first one's token."""
    merged: list[tuple[int, int, str, list[SecretKind]]] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1][1]:
            start, end, _, kinds = merged[-1]
            if span.end > end:
                if span.kind not in kinds:
                    kinds.append(span.kind)
                merged[-1] = (start, span.end, token(kinds[0]), kinds)
            continue
        merged.append((span.start, span.end, span.replacement, [span.kind]))
    return merged


def redact(text: str) -> Redaction:
    """``text`` with every recovery phrase, private key, keystore and card number replaced.

    Pure and linear in the length of the text; idempotent: redacting the result again changes
    nothing and finds nothing.
    """
    if not text:
        # Most optional fields of a ticket are empty: six detectors would each scan nothing.
        return Redaction(text, ())
    scanned = text.translate(_HALF_WIDTH)
    spans = [span for detect in _STANDALONE for span in detect(scanned)]
    for detect_in_context in _CONTEXTUAL:
        spans += detect_in_context(scanned, spans)
    if not spans:
        return Redaction(text, ())
    parts: list[str] = []
    findings: list[SecretKind] = []
    cursor = 0
    for start, end, replacement, kinds in _merge(spans):
        parts.append(text[cursor:start])
        parts.append(replacement)
        cursor = end
        findings.extend(kind for kind in kinds if kind not in findings)
    parts.append(text[cursor:])
    return Redaction("".join(parts), tuple(findings))

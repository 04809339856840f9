"""Ethereum keystore files (Web3 Secret Storage): JSON objects whose ``crypto`` holds ``ciphertext`` and ``kdf``.

A keystore plus a guessed or phished password is the wallet, so the whole object goes, wherever it
sits in the message. Objects are found with one pass of brace matching that respects JSON strings.
The field names decide, not a JSON parser: pasted keystores arrive truncated, hand-edited, with
smart quotes or escaped inside another JSON string, and an object that merely wraps a keystore is
redacted whole. A brace left open at the end of the message counts as an object running to the
end: a keystore pasted in half is still half a keystore.
"""

from __future__ import annotations

import re

from .model import SecretKind, Span, token

_FIELDS = (
    re.compile(r"ciphertext\W{0,4}:", re.IGNORECASE),
    re.compile(r"kdf\W{0,4}:", re.IGNORECASE),
)
# Only these characters change the scanner's state; jumping between them keeps long messages cheap.
_STRUCTURE = re.compile(r'[{}"\\]')


def _objects(text: str) -> list[tuple[int, int]]:
    """[start, end) of every outermost ``{…}`` (the last one may be unclosed)."""
    found: list[tuple[int, int]] = []
    depth = 0
    start = 0
    escaped = -1  # index of a character escaped by a backslash inside a string
    in_string = False
    for match in _STRUCTURE.finditer(text):
        index, char = match.start(), match.group()
        if index == escaped:
            continue
        if depth == 0:
            if char == "{":
                depth, start = 1, index
            continue
        if in_string:
            if char == "\\":
                escaped = index + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                found.append((start, index + 1))
    if depth:
        found.append((start, len(text)))
    return found


def find(text: str) -> list[Span]:
    if "{" not in text or not all(field.search(text) for field in _FIELDS):
        return []
    spans: list[Span] = []
    for start, end in _objects(text):
        candidate = text[start:end]
        if all(field.search(candidate) for field in _FIELDS):
            spans.append(Span(start, end, SecretKind.KEYSTORE, token(SecretKind.KEYSTORE)))
    return spans

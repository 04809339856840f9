"""Base58Check decoding (Bitcoin alphabet): payload plus a 4-byte double-SHA-256 checksum."""

from __future__ import annotations

import hashlib

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_VALUES = {char: value for value, char in enumerate(ALPHABET)}


def decode_check(text: str) -> bytes | None:
    """The payload of a Base58Check string, or None if it is not one (bad character or checksum)."""
    value = 0
    for char in text:
        digit = _VALUES.get(char)
        if digit is None:
            return None
        value = value * 58 + digit
    leading_zeros = len(text) - len(text.lstrip("1"))
    raw = b"\x00" * leading_zeros + (value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b"")
    if len(raw) < 5:
        return None
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        return None
    return payload

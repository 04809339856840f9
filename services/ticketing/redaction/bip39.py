"""BIP-39 checksum: the last ``words / 3`` bits of a phrase are the first bits of SHA-256(entropy)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

VALID_LENGTHS = frozenset({12, 15, 18, 21, 24})


def checksum_ok(indices: Sequence[int]) -> bool:
    """Whether word indices (0–2047) form a phrase with a valid checksum."""
    count = len(indices)
    if count not in VALID_LENGTHS:
        return False
    value = 0
    for index in indices:
        value = (value << 11) | index
    checksum_bits = count // 3
    entropy_bits = count * 11 - checksum_bits
    entropy = (value >> checksum_bits).to_bytes(entropy_bits // 8, "big")
    expected = hashlib.sha256(entropy).digest()[0] >> (8 - checksum_bits)
    return (value & ((1 << checksum_bits) - 1)) == expected

"""BIP-39 wordlists shipped by the ``mnemonic`` package, read once on first use (never at import time)."""

from __future__ import annotations

from functools import cache
from importlib import resources


def _read(name: str) -> tuple[str, ...]:
    text = (resources.files("mnemonic") / "wordlist" / f"{name}.txt").read_text(encoding="utf-8")
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(words) != 2048:  # a truncated or replaced file would silently weaken every check
        raise RuntimeError(f"BIP-39 wordlist {name!r} has {len(words)} words, expected 2048")
    return words


@cache
def english() -> dict[str, int]:
    """Word → index in the English list."""
    return {word: index for index, word in enumerate(_read("english"))}


@cache
def english_prefixes() -> frozenset[str]:
    """First four letters of every English word: BIP-39 guarantees they identify the word."""
    return frozenset(word[:4] for word in english())


@cache
def chinese_simplified() -> dict[str, int]:
    """Character → index in the simplified Chinese list."""
    return {word: index for index, word in enumerate(_read("chinese_simplified"))}


@cache
def chinese_traditional() -> dict[str, int]:
    """Character → index in the traditional Chinese list."""
    return {word: index for index, word in enumerate(_read("chinese_traditional"))}


@cache
def chinese_rank() -> dict[str, int]:
    """Character → its lowest index in either Chinese list.

    Both lists are ordered by character frequency, so the index doubles as a frequency rank.
    """
    ranks = dict(chinese_traditional())
    for char, index in chinese_simplified().items():
        ranks[char] = min(index, ranks.get(char, index))
    return ranks

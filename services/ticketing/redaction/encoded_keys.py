"""Base58Check private keys: WIF keys and extended private keys (xprv, yprv, zprv, tprv…).

Every base58 token of a plausible length is decoded and classified by its payload, so a random
base58 string (an address, a transaction id on some chains) only matches if its 32-bit checksum
happens to hold. Classified by payload rather than by prefix letter, so altcoin WIF keys and
SLIP-132 variants (Ltpv, Yprv, Zprv…) are covered too:

- WIF: a version byte and a 32-byte key, plus 0x01 when the public key is compressed.
- Extended key (BIP-32): 78 bytes whose key field (byte 45) is 0x00 for a private key; a public
  key (xpub…) starts 0x02/0x03 there and is not a secret, so it is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import base58
from .model import SecretKind, Span, token, tokens_between_edges

# Runs of letters and digits long enough to hold a key; a key is a whole run of base58 characters.
_RUN = re.compile(r"[0-9A-Za-z]{50,}")
_KEY = re.compile(rf"[{base58.ALPHABET}]{{50,112}}")

_EXTENDED_LENGTH = 78
_EXTENDED_KEY_FIELD = 45


def classify(candidate: str) -> SecretKind | None:
    payload = base58.decode_check(candidate)
    if payload is None:
        return None
    if len(payload) == 33 or (len(payload) == 34 and payload[-1] == 0x01):
        return SecretKind.WIF_KEY
    if len(payload) == _EXTENDED_LENGTH and payload[_EXTENDED_KEY_FIELD] == 0x00:
        return SecretKind.EXTENDED_PRIVATE_KEY
    return None


def find(text: str, earlier: Sequence[Span] = ()) -> list[Span]:
    """WIF and extended private keys standing alone (or touching one of the ``earlier`` secrets)."""
    spans: list[Span] = []
    for start, end in tokens_between_edges(text, _RUN, earlier):
        if _KEY.fullmatch(text, start, end):
            kind = classify(text[start:end])
            if kind is not None:
                spans.append(Span(start, end, kind, token(kind)))
    return spans

"""Raw private keys: 64 hex digits standing alone, with or without ``0x``.

A transaction hash looks exactly like a private key, and customers paste hashes all the time for
transaction queries. A 64-hex token is kept as a hash only when the text says so:

- the nearest cue in front of it, within the same sentence and 64 characters, is about
  transactions ("tx", "txid", "hash", "transaction", "transfer", "deposit", "withdrawal", 交易,
  哈希, 转账, 充值, 提现, 区块…) rather than about keys ("private", "key", "secret", "seed",
  "import", 私钥, 密钥, 助记词…); or
- it follows a token kept as a hash with only separators between ("txids: <a>, <b>"); or
- it is the tail of a block-explorer link (``…/tx/<hash>``, ``…/transaction/<hash>``, ``?hash=``).

Anything else is redacted: an unlabelled 64-hex string is treated as a key, because showing a key
costs the customer their funds while hiding a hash only costs the agent a question.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

from .model import SecretKind, Span, before, token, tokens_between_edges

_RUN = re.compile(r"[0-9A-Za-z_]{64,}")  # a key is a whole run of these, never part of a longer one
_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{64}")
_GLUE = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_CUE_REACH = 64
_TX_CUE = (
    r"\btx(?:id|ids|n|hash|_hash|-hash)?\b|\bhash(?:es)?\b|\btransactions?\b|\btransfers?\b|\bdeposits?\b"
    r"|\bwithdrawals?\b|\bblock\b|交易|哈希|转账|轉帳|转帐|充值|提现|提幣|提币|区块|區塊"
)
_KEY_CUE = (
    r"\bprivate\b|\bpriv\b|\bkeys?\b|\bsecret\b|\bseed\b|\bmnemonic\b|\bimport\b|\bwif\b"
    r"|私钥|私鑰|密钥|密鑰|秘钥|钥匙|助记词|助記詞"
)
_CUE = re.compile(rf"(?P<tx>{_TX_CUE})|(?P<key>{_KEY_CUE})", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[\n。！？!?]|\.\s")
_LIST_SEPARATORS = " \t\r\n,;、，；"
_LIST_JOINERS = frozenset({"", "and", "和", "及"})
_EXPLORER_TAIL = re.compile(r"(?:/tx|/txs|/transaction|/transactions|/block|/blocks)/$|[?&#](?:hash|txid|tx)=$", re.I)
_URL_REACH = 300
_PARTIAL_WORD = re.compile(r"^[0-9A-Za-z_]+")


def _context(text: str, start: int, floor: int, reach: int) -> str:
    """Up to ``reach`` characters before ``start``, none before ``floor`` nor before an earlier replacement."""
    window = before(text, start, reach, floor)
    low = start - len(window)
    if low > floor and text[low - 1] in _GLUE:
        window = _PARTIAL_WORD.sub("", window, count=1)  # an English word cut in half could fake a cue
    return window


def _is_hash(text: str, start: int, floor: int, previous_was_hash: bool) -> bool:
    context = _SENTENCE_END.split(_context(text, start, floor, _CUE_REACH))[-1]
    nearest = None
    for cue in _CUE.finditer(context):
        nearest = cue
    if nearest is not None:
        return nearest.lastgroup == "tx"
    if previous_was_hash and text[floor:start].strip(_LIST_SEPARATORS).lower() in _LIST_JOINERS:
        return True
    prefix = _context(text, start, floor, _URL_REACH)
    if not prefix or prefix[-1].isspace():
        return False
    link = prefix.split()[-1]
    return "." in link and _EXPLORER_TAIL.search(link) is not None


def find(text: str, earlier: Sequence[Span] = ()) -> list[Span]:
    """64-hex keys in ``text``. Context never reaches past one of the ``earlier`` secrets, and a key
    touching one is not glued to it: the decisions are the same once those secrets are replaced."""
    ends = sorted(span.end for span in earlier)
    spans: list[Span] = []
    floor = 0
    previous_was_hash = False
    for start, end in tokens_between_edges(text, _RUN, earlier):
        if not _HEX.fullmatch(text, start, end):
            continue
        barrier = ends[bisect.bisect_right(ends, start) - 1] if ends and ends[0] <= start else 0
        if barrier > floor:
            floor, previous_was_hash = barrier, False
        previous_was_hash = _is_hash(text, start, floor, previous_was_hash)
        if not previous_was_hash:
            spans.append(Span(start, end, SecretKind.PRIVATE_KEY, token(SecretKind.PRIVATE_KEY)))
        floor = end
    return spans

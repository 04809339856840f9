"""Payment card numbers (PANs): 13–19 digits, Luhn-valid, optionally grouped by single spaces or dashes.

Masked to the first 6 and last 4 digits at most ("411111******1111"), as PCI DSS allows for display.

Luhn alone passes one random number in ten, and chats are full of long numbers, so a number must
also look like a card:
- a plausible issuer prefix: 3 (Amex, JCB, Diners), 4 (Visa), 5 (Mastercard, Maestro), 6 (UnionPay,
  Discover, Maestro), 9 (some domestic schemes), 2200–2204 (Mir) or 2221–2720 (Mastercard). This
  spares order numbers and dates that start with 1 or 20xx, epoch timestamps (1…), phone numbers
  with country codes (8…, 1…);
- groups as people write them: the first of at least 4 digits, the others of at least 3;
- not glued to letters, to ``+`` (a phone number) or to ``*`` (an earlier mask).
Luhn is six lines, written here rather than pulled in as a dependency.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import accumulate

from .model import SecretKind, Span, edge_positions

MIN_DIGITS = 13
MAX_DIGITS = 19
_SHOWN_HEAD = 6
_SHOWN_TAIL = 4

_GROUPS = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_GLUE = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_+*")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _issuer_plausible(digits: str) -> bool:
    if digits[0] in "34569":
        return True
    prefix = int(digits[:4])
    return 2200 <= prefix <= 2204 or 2221 <= prefix <= 2720


def mask(digits: str) -> str:
    """The first 6 and last 4 digits; every other digit becomes a star (at least 3 for 13 digits)."""
    hidden = len(digits) - _SHOWN_HEAD - _SHOWN_TAIL
    return digits[:_SHOWN_HEAD] + "*" * hidden + digits[-_SHOWN_TAIL:]


def _longest_card(groups: list[str], first: int) -> int:
    """How many groups from ``first`` on form the longest card number there (0 if none)."""
    if len(groups[first]) < 4:
        return 0
    best = 0
    digits = ""
    for index in range(first, len(groups)):
        if index > first and len(groups[index]) < 3:
            break
        digits += groups[index]
        if len(digits) > MAX_DIGITS:
            break
        if len(digits) >= MIN_DIGITS and _issuer_plausible(digits) and luhn_ok(digits):
            best = index + 1 - first
    return best


def find(text: str, earlier: Sequence[Span] = ()) -> list[Span]:
    """Card numbers in ``text``. A number touching one of the ``earlier`` secrets is not glued to it,
    just as it will not be once that secret is replaced."""
    edges = edge_positions(earlier)
    spans: list[Span] = []
    for run in _GROUPS.finditer(text):
        if run.end() - run.start() < MIN_DIGITS:
            continue
        groups = run.group().replace("-", " ").split(" ")
        starts = list(accumulate((len(group) + 1 for group in groups[:-1]), initial=run.start()))
        # Digits glued to letters (an id, a hash), to "+" (a phone number) or to a mask are something else.
        first, last = 0, len(groups)
        if run.start() > 0 and text[run.start() - 1] in _GLUE and run.start() not in edges:
            first = 1
        if run.end() < len(text) and text[run.end()] in _GLUE and run.end() not in edges:
            last -= 1
        groups = groups[:last]
        index = first
        while index < len(groups):
            width = _longest_card(groups, index)
            if not width:
                index += 1
                continue
            end = index + width
            start_pos = starts[index]
            end_pos = starts[end - 1] + len(groups[end - 1])
            spans.append(Span(start_pos, end_pos, SecretKind.CARD_NUMBER, mask("".join(groups[index:end]))))
            index = end
    return spans

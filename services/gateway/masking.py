"""Masking of customers' personal data in text shown to agents.

Agents need to see *that* a customer wrote a phone number, an e-mail address or an identity card number,
and usually its ends to match it against what the customer says, never the whole value: screens are
photographed, and fake-support scams start with leaked contact data. Supervisors and admins, and customers
reading their own tickets, see text as stored. Secrets (recovery phrases, keys, card numbers) never reach
here: ticketing redacts them before storing anything.

Pure and idempotent: masking masked text changes nothing.
"""

from __future__ import annotations

import re

_MASK = "*"

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
# Mainland mobile numbers with an optional +86/86 prefix; then any other phone-like run of 8-15 digits
# written with a leading + (international format).
_CN_MOBILE = re.compile(r"(?<![\d*])((?:\+?86[ -]?)?)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?![\d*])")
_INTERNATIONAL = re.compile(r"(?<![\w*])\+\d[\d -]{6,18}\d(?![\d*])")
_RESIDENT_ID = re.compile(r"(?<![\d*])(\d{17}[\dXx])(?![\d*])")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def mask_personal_data(text: str) -> str:
    """``text`` with e-mail addresses, phone numbers and resident identity card numbers masked."""
    text = _EMAIL.sub(_mask_email, text)
    text = _RESIDENT_ID.sub(_mask_resident_id, text)
    text = _CN_MOBILE.sub(_mask_cn_mobile, text)
    return _INTERNATIONAL.sub(_mask_international, text)


def _mask_email(match: re.Match[str]) -> str:
    local, domain = match.group(1), match.group(2)
    return f"{local[0]}{_MASK * 3}@{domain}"


def _mask_cn_mobile(match: re.Match[str]) -> str:
    prefix, head, _middle, tail = match.groups()
    return f"{prefix}{head}{_MASK * 4}{tail}"


def _mask_international(match: re.Match[str]) -> str:
    value = match.group(0)
    digits = sum(ch.isdigit() for ch in value)
    if digits < 8:
        return value
    keep_from = digits - 4
    seen = 0
    out = []
    for ch in value:
        if ch.isdigit():
            # Keep the first digit after "+" (the country code's start) and the last four.
            out.append(ch if seen == 0 or seen >= keep_from else _MASK)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def _mask_resident_id(match: re.Match[str]) -> str:
    value = match.group(1)
    if not _valid_resident_id(value):
        return value
    return f"{value[:3]}{_MASK * 11}{value[-4:]}"


def _valid_resident_id(value: str) -> bool:
    """GB 11643 check digit (ISO 7064 MOD 11-2), so order and transaction numbers stay readable."""
    total = sum(int(digit) * weight for digit, weight in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()

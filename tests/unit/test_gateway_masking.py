"""Personal data in text shown to agents: masked, ends kept, everything else untouched."""

from __future__ import annotations

import pytest

from services.gateway.masking import mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call me on 13800138000 please", "call me on 138****8000 please"),
        ("手机 138-0013-8000。", "手机 138****8000。"),
        ("+86 138 0013 8000", "+86 138****8000"),
        ("mail zhang.wei+card@example.com.cn now", "mail z***@example.com.cn now"),
        ("my UK number is +44 20 7946 0958", "my UK number is +4* ** **** 0958"),
        ("身份证 11010519491231002X", "身份证 110***********002X"),
    ],
)
def test_personal_data_is_masked_keeping_the_ends(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "transaction 20261125138001380001234 failed",  # a phone-like run inside a longer reference
        "error 51 at 2026-11-25 10:31",
        "order 110105194912310021",  # 18 digits with a wrong check digit: not an identity card
        "amount 13800.00 CNY",
        "card 622202******1234 was declined",  # ticketing's own redaction stays as it is
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_personal_data(text) == text


def test_masking_is_idempotent() -> None:
    text = "13800138000, +44 20 7946 0958, a@b.io, 11010519491231002X"
    once = mask_personal_data(text)
    assert once != text
    assert mask_personal_data(once) == once

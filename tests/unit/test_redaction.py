import hashlib
import json
import random
import re
from collections.abc import Callable

import pytest
from mnemonic import Mnemonic

from services.ticketing.redaction import Redaction, SecretKind, asks_for_secret, redact, secret_warning
from tests.unit.test_redaction_corpus import CHAT_EN, CHAT_ZH

pytestmark = pytest.mark.unit

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PHRASE = "[redacted:recovery_phrase]"


def entropy(label: str, size: int) -> bytes:
    """Fixed but random-looking entropy, so the tests are deterministic."""
    return hashlib.sha256(label.encode()).digest()[:size]


def base58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    value = int.from_bytes(raw, "big")
    chars = []
    while value:
        value, digit = divmod(value, 58)
        chars.append(_BASE58[digit])
    return "1" * (len(raw) - len(raw.lstrip(b"\x00"))) + "".join(reversed(chars))


def luhn_complete(partial: str) -> str:
    """``partial`` plus the check digit that makes it Luhn-valid."""
    for check in "0123456789":
        digits = partial + check
        total = sum(
            (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d for i, d in enumerate(map(int, reversed(digits)))
        )
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def english_phrase(label: str, words: int) -> list[str]:
    return Mnemonic("english").to_mnemonic(entropy(label, words * 4 // 3)).split()


def chinese_phrase(label: str, words: int, script: str = "chinese_simplified") -> list[str]:
    return Mnemonic(script).to_mnemonic(entropy(label, words * 4 // 3)).split()


def words_of(text: str) -> str:
    return " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "


def assert_no_six_words(words: list[str], output: str) -> None:
    flat = words_of(output)
    for i in range(len(words) - 5):
        assert " " + " ".join(w.lower() for w in words[i : i + 6]) + " " not in flat, output


def assert_no_six_chars(chars: list[str], output: str) -> None:
    flat = re.sub(r"[^\u3400-\u9fff]", "", output)
    for i in range(len(chars) - 5):
        assert "".join(chars[i : i + 6]) not in flat, output


# ---------------------------------------------------------------- recovery phrases, English


@pytest.mark.parametrize("count", [12, 15, 18, 21, 24])
@pytest.mark.parametrize(
    "layout",
    [
        " ".join,
        ", ".join,
        "\n".join,
        "-".join,
        lambda ws: " ".join(f"{i}. {w}" for i, w in enumerate(ws, 1)),
        lambda ws: "\n".join(f"{i}) {w}" for i, w in enumerate(ws, 1)),
        lambda ws: " ".join(w.upper() if i % 2 else w.capitalize() for i, w in enumerate(ws)),
        lambda ws: "My recovery phrase is: " + " ".join(ws) + ". Please help me restore my wallet!",
        lambda ws: "客服你好，我的助记词是 " + " ".join(ws) + " 谢谢",
    ],
)
def test_english_phrases_never_survive(count: int, layout: Callable[[list[str]], str]) -> None:
    words = english_phrase(f"en-{count}", count)
    result = redact(layout(words))
    assert result.findings == (SecretKind.RECOVERY_PHRASE,)
    assert result.exposed
    assert PHRASE in result.text
    assert_no_six_words(words, result.text)


def test_a_phrase_with_a_typo_or_a_bad_checksum_is_still_redacted() -> None:
    words = english_phrase("typo", 12)
    words[3] = words[3][:4] + "x" + words[3][5:] if len(words[3]) > 5 else words[3] + "x"
    words[11] = "zoo"  # almost surely breaks the checksum
    result = redact(" ".join(words))
    assert result.findings == (SecretKind.RECOVERY_PHRASE,)
    assert_no_six_words(words, result.text)


def test_short_form_phrase_is_redacted() -> None:
    words = [w[:4] for w in english_phrase("short", 12)]
    assert redact(" ".join(words)).findings == (SecretKind.RECOVERY_PHRASE,)


def test_eleven_list_words_are_not_a_phrase() -> None:
    text = " ".join(english_phrase("eleven", 12)[:11])
    assert redact(text) == Redaction(text, ())


# ---------------------------------------------------------------- recovery phrases, Chinese


@pytest.mark.parametrize("script", ["chinese_simplified", "chinese_traditional"])
@pytest.mark.parametrize("count", [12, 15, 18, 24])
@pytest.mark.parametrize(
    "layout",
    [
        " ".join,
        "".join,
        "，".join,
        "、".join,
        "\n".join,
        lambda ws: " ".join(f"{i}.{w}" for i, w in enumerate(ws, 1)),
        lambda ws: "我的助记词是" + "".join(ws) + "，帮我看看钱包",
        lambda ws: "助记词：" + "".join(ws),
        lambda ws: " ".join("".join(ws[i : i + 3]) for i in range(0, len(ws), 3)),
        lambda ws: "你好，请帮我恢复钱包，" + " ".join(ws) + "，谢谢",
    ],
)
def test_chinese_phrases_never_survive(script: str, count: int, layout: Callable[[list[str]], str]) -> None:
    chars = chinese_phrase(f"zh-{script}-{count}", count, script)
    result = redact(layout(chars))
    assert result.findings == (SecretKind.RECOVERY_PHRASE,)
    assert_no_six_chars(chars, result.text)


def test_contiguous_chinese_with_a_cue_but_a_bad_checksum_is_redacted() -> None:
    chars = chinese_phrase("zh-typo", 12)
    chars[-1] = "钢" if chars[-1] != "钢" else "铁"
    result = redact("助记词" + "".join(chars))
    assert result.findings == (SecretKind.RECOVERY_PHRASE,)
    assert_no_six_chars(chars, result.text)


# ---------------------------------------------------------------- keys


@pytest.mark.parametrize("prefix", ["", "0x", "0X"])
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_raw_hex_private_keys_are_redacted(prefix: str, case: Callable[[str], str]) -> None:
    key = prefix + case(hashlib.sha256(b"key").hexdigest())
    for text in (key, f"my private key is {key}", f"私钥：{key}", f"here:{key}."):
        result = redact(text)
        assert result.findings == (SecretKind.PRIVATE_KEY,)
        assert key[-64:].lower() not in result.text.lower()
        assert "[redacted:private_key]" in result.text


def test_unlabelled_hex_is_treated_as_a_key_and_labelled_hashes_are_kept() -> None:
    key, tx = hashlib.sha256(b"k").hexdigest(), hashlib.sha256(b"t").hexdigest()
    assert redact(f"please check {key}").findings == (SecretKind.PRIVATE_KEY,)
    for kept in (f"txid: {tx}", f"tx hash 0x{tx}", f"交易哈希 {tx}", f"https://bscscan.com/tx/0x{tx}"):
        assert redact(kept) == Redaction(kept, ())
    # The nearest cue wins: a key right after a hash is still a key.
    mixed = redact(f"txid {tx} and my private key {key}")
    assert tx in mixed.text
    assert key not in mixed.text
    assert mixed.findings == (SecretKind.PRIVATE_KEY,)
    # A link that is not an explorer's transaction page does not vouch for anything.
    assert redact(f"https://wallet-verify.example/import?k={key}").findings == (SecretKind.PRIVATE_KEY,)


def test_longer_hex_and_addresses_are_not_keys() -> None:
    for text in ("0x52908400098527886E0F7030069857D2E4169EE7", "ab" * 40, "deadbeef" * 16 + "00"):
        assert redact(text) == Redaction(text, ())


@pytest.mark.parametrize(
    ("version", "compressed", "first"),
    [(0x80, False, "5"), (0x80, True, "KL"), (0xEF, False, "9"), (0xEF, True, "c")],
)
def test_wif_keys_are_redacted(version: int, compressed: bool, first: str) -> None:
    key = bytes([version]) + entropy(f"wif-{version}-{compressed}", 32) + (b"\x01" if compressed else b"")
    wif = base58check(key)
    assert wif[0] in first
    assert len(wif) == (52 if compressed else 51)
    result = redact(f"WIF: {wif} thanks")
    assert result == Redaction("WIF: [redacted:wif_key] thanks", (SecretKind.WIF_KEY,))


def test_base58_strings_with_a_bad_checksum_are_kept() -> None:
    wif = base58check(b"\x80" + entropy("bad", 32))
    tampered = wif[:-1] + ("2" if wif[-1] != "2" else "3")
    assert redact(tampered).findings == ()


def _extended(version: bytes, key: bytes) -> str:
    return base58check(version + b"\x03" + bytes.fromhex("5c1bd648") + bytes(4) + entropy("chain", 32) + key)


@pytest.mark.parametrize(("version", "prefix"), [("0488ADE4", "xprv"), ("04358394", "tprv"), ("04B2430C", "zprv")])
def test_extended_private_keys_are_redacted(version: str, prefix: str) -> None:
    xprv = _extended(bytes.fromhex(version), b"\x00" + entropy("xprv", 32))
    assert xprv.startswith(prefix)
    assert len(xprv) == 111
    result = redact(f"backup {xprv}")
    assert result == Redaction("backup [redacted:extended_private_key]", (SecretKind.EXTENDED_PRIVATE_KEY,))


def test_extended_public_keys_are_kept() -> None:
    xpub = _extended(bytes.fromhex("0488B21E"), b"\x02" + entropy("xpub", 32))
    assert xpub.startswith("xpub")
    text = f"my watch-only xpub is {xpub}"
    assert redact(text) == Redaction(text, ())


# ---------------------------------------------------------------- keystore


def _keystore() -> dict[str, object]:
    return {
        "address": "008aeeda4d805471df9b2a5b0f38a0c3bcba786b",
        "crypto": {
            "cipher": "aes-128-ctr",
            "ciphertext": hashlib.sha256(b"ct").hexdigest(),
            "cipherparams": {"iv": "83dbcc02d8ccb40e466191a123791e0e"},
            "kdf": "scrypt",
            "kdfparams": {"dklen": 32, "n": 262144, "p": 8, "r": 1, "salt": hashlib.sha256(b"s").hexdigest()},
            "mac": hashlib.sha256(b"mac").hexdigest(),
        },
        "id": "3198bc9c-6672-5ab3-d995-4942343ae5b6",
        "version": 3,
    }


@pytest.mark.parametrize(
    "render",
    [
        lambda ks: json.dumps(ks),
        lambda ks: "Here is my keystore: " + json.dumps(ks, indent=2) + "\nthe password is on paper",
        lambda ks: json.dumps(ks).replace('"crypto"', '"Crypto"'),
        lambda ks: "钱包文件 " + json.dumps(ks)[:-40],  # pasted in half
        lambda ks: json.dumps({"note": "backup", "file": json.dumps(ks)}),  # escaped inside a string
    ],
)
def test_keystores_are_redacted_whole(render: Callable[[dict[str, object]], str]) -> None:
    text = render(_keystore())
    result = redact(text)
    assert result.findings == (SecretKind.KEYSTORE,)
    assert "[redacted:keystore]" in result.text
    assert "ciphertext" not in result.text
    assert hashlib.sha256(b"ct").hexdigest() not in result.text


def test_json_without_keystore_fields_is_kept() -> None:
    text = '{"order": 8830021457, "status": "failed", "code": "E1002"}'
    assert redact(text) == Redaction(text, ())


# ---------------------------------------------------------------- cards

UNIONPAY_19 = luhn_complete("621700123456789012")


@pytest.mark.parametrize(
    ("text", "mask"),
    [
        ("4111111111111111", "411111******1111"),
        ("5555 5555 5555 4444", "555555******4444"),
        ("378282246310005", "378282*****0005"),
        ("6011-1111-1111-1117", "601111******1117"),
        (UNIONPAY_19, f"{UNIONPAY_19[:6]}*********{UNIONPAY_19[-4:]}"),
        (" ".join(UNIONPAY_19[i : i + 4] for i in range(0, 19, 4)), f"{UNIONPAY_19[:6]}*********{UNIONPAY_19[-4:]}"),
        ("4222222222222", "422222***2222"),
        ("４１１１１１１１１１１１１１１１", "411111******1111"),
    ],
)
def test_card_numbers_are_masked(text: str, mask: str) -> None:
    for wrapped, expected in (
        (text, mask),
        (f"卡号{text}，谢谢", f"卡号{mask}，谢谢"),
        (f"card: {text}.", f"card: {mask}."),
    ):
        result = redact(wrapped)
        assert result == Redaction(expected, (SecretKind.CARD_NUMBER,))
        digits = re.sub(r"\D", "", mask)
        assert len(digits) <= 10


def test_numbers_that_are_not_cards_are_kept() -> None:
    for text in (
        "4111111111111112",  # fails Luhn
        "13800138000",  # a phone number
        "+86 13800138000",
        "411111111111",  # Luhn-valid but 12 digits
        "2024061222001412345678901234",  # an order number longer than any card
        "1718000000000",  # a timestamp
        "x4111111111111111",  # part of an identifier
        "129.90 CNY",
    ):
        assert redact(text) == Redaction(text, ()), text


def test_a_card_inside_a_longer_run_of_numbers_is_found() -> None:
    result = redact("4111 1111 1111 1111 2024")
    assert result == Redaction("411111******1111 2024", (SecretKind.CARD_NUMBER,))


# ---------------------------------------------------------------- several at once, idempotence, robustness


def test_findings_are_distinct_and_in_order_of_appearance() -> None:
    key = hashlib.sha256(b"several").hexdigest()
    phrase = " ".join(english_phrase("several", 12))
    text = f"card 4111111111111111, phrase {phrase}, key {key}, card 5555555555554444, again {phrase}"
    result = redact(text)
    assert result.findings == (SecretKind.CARD_NUMBER, SecretKind.RECOVERY_PHRASE, SecretKind.PRIVATE_KEY)
    assert result.text.count(PHRASE) == 2


def _secret_samples() -> list[str]:
    key = hashlib.sha256(b"idem").hexdigest()
    return [
        " ".join(english_phrase("idem", 24)),
        " ".join(chinese_phrase("idem", 12)),
        "".join(chinese_phrase("idem2", 18)),
        key,
        f"txid {hashlib.sha256(b'x').hexdigest()} then {key}",
        base58check(b"\x80" + entropy("idem", 32) + b"\x01"),
        json.dumps(_keystore()),
        "4111 1111 1111 1111 4111 1111 1111 1111",
        "4111111111111111-4111",
    ]


@pytest.mark.parametrize("text", _secret_samples())
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert once.exposed
    twice = redact(once.text)
    assert twice == Redaction(once.text, ())


def _random_text(rng: random.Random) -> str:
    english = english_phrase(f"fuzz-{rng.random()}", 24)
    chinese = chinese_phrase(f"fuzz-{rng.random()}", 24)
    pieces = [
        *english,
        *chinese,
        *"的一是在不了有和人这中大",
        " ",
        "  ",
        "\n",
        ",",
        "，",
        "1.",
        "12)",
        "-",
        "{",
        "}",
        '"',
        "\\",
        ":",
        "[redacted:",
        "]",
        "*",
        "+",
        "0x",
        "txid",
        "私钥",
        "助记词",
        "ciphertext",
        '"kdf":',
        "4111",
        "1111",
        "62",
        hashlib.sha256(str(rng.random()).encode()).hexdigest(),
        base58check(b"\x80" + entropy(str(rng.random()), 32)),
        "".join(rng.choice(_BASE58) for _ in range(rng.randint(1, 120))),
        "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(1, 8))),
        "０１２３４５６７８９",
    ]
    return "".join(rng.choice(pieces) + rng.choice(["", " ", ""]) for _ in range(rng.randint(0, 80)))


def test_random_input_never_raises_and_stays_idempotent() -> None:
    rng = random.Random(20240612)
    for _ in range(400):
        text = _random_text(rng)
        once = redact(text)
        assert isinstance(once.text, str)
        twice = redact(once.text)
        assert twice.findings == (), text
        assert twice.text == once.text, text


def test_secrets_glued_together_are_all_found_and_stay_found() -> None:
    phrase = " ".join(english_phrase("glued", 12))
    wif = base58check(b"\x80" + entropy("glued", 32) + b"\x01")
    for text, kinds in (
        (phrase + wif, (SecretKind.RECOVERY_PHRASE, SecretKind.WIF_KEY)),
        (phrase + "4111111111111111", (SecretKind.RECOVERY_PHRASE, SecretKind.CARD_NUMBER)),
        (" ".join(chinese_phrase("glued", 12)) + wif, (SecretKind.RECOVERY_PHRASE, SecretKind.WIF_KEY)),
    ):
        once = redact(text)
        assert once.findings == kinds
        assert wif not in once.text
        assert redact(once.text) == Redaction(once.text, ())


def test_full_width_characters_are_read_as_ascii() -> None:
    xprv = _extended(bytes.fromhex("0488ADE4"), b"\x00" + entropy("fw", 32))
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in xprv)
    assert redact(f"备份：{full_width}") == Redaction(
        "备份：[redacted:extended_private_key]", (SecretKind.EXTENDED_PRIVATE_KEY,)
    )


def test_empty_and_odd_input() -> None:
    for text in ("", " ", "\x00", "{" * 500, "}" * 500, '{"' * 300, "\\" * 100, "1 " * 2000, "的 " * 3000):
        assert isinstance(redact(text).text, str)


# ---------------------------------------------------------------- ordinary chat passes unchanged


def test_ordinary_support_chat_is_not_redacted() -> None:
    lines = CHAT_EN + CHAT_ZH
    assert len(lines) >= 200
    changed = [line for line in lines if redact(line) != Redaction(line, ())]
    rate = len(changed) / len(lines)
    print(
        f"false-positive rate: {rate:.2%} ({len(changed)} of {len(lines)} lines: {len(CHAT_EN)} en, {len(CHAT_ZH)} zh)"
    )
    assert rate < 0.01, changed


def test_tx_hashes_in_the_chat_corpus_are_kept() -> None:
    from tests.unit.test_redaction_corpus import TX1, TX2, TX3, TX4

    joined = "\n".join(redact(line).text for line in CHAT_EN + CHAT_ZH)
    for tx in (TX1, TX2, TX3, TX4):
        assert tx in joined


# ---------------------------------------------------------------- agents asking for secrets


@pytest.mark.parametrize(
    "message",
    [
        "please send me your recovery phrase",
        "What are your 12 words?",
        "verify your wallet by entering your seed phrase",
        "Don't worry, just send me your seed phrase.",
        "Please paste your private key here so I can check the wallet.",
        "To unlock your account, type your 24 words into the form at the link below.",
        "We need your keystore file and its password to recover the funds.",
        "Do you have your seed phrase? Send it to me and I will fix it.",
        "Please tell me the verification code we just sent you.",
        "What is your payment password?",
        "请提供您的助记词",
        "把私钥发给我",
        "告诉我你的12个单词",
        "为了验证身份，请把助记词发给我",
        "请在下面的链接中输入您的助记词完成验证",
        "不用担心，把你的助记词告诉我就可以解冻",
        "请提供短信验证码",
        "你的助记词还在吗？发给我",
        "Have you got your seed phrase? Send it to me.",
    ],
)
def test_requests_for_secrets_are_detected(message: str) -> None:
    assert asks_for_secret(message)


@pytest.mark.parametrize(
    "message",
    [
        "we will never ask for your recovery phrase",
        "do not share your seed phrase with anyone",
        "客服绝不会索要您的助记词",
        "Never share your recovery phrase or private key with anyone, including us.",
        "Please send us a screenshot, but never your recovery phrase.",
        "You will need your recovery phrase to restore the wallet on your new phone.",
        "Did you share your seed phrase with anyone recently?",
        "Scammers often ask for your seed phrase; please be careful.",
        "We will send you a guide on how to back up your recovery phrase.",
        "Please enter the verification code in the app to finish the reset.",
        "Please send us the txid and the time of the transfer.",
        "请不要把助记词告诉任何人，包括客服。",
        "助记词请勿发给他人，谨防诈骗。",
        "您之前有没有在其他网站输入过助记词？",
        "请在App中输入验证码完成重置。",
        "请提供订单号和付款截图，我们马上为您查询。",
        "您的银行卡绑定失败，请提供银行卡后四位。",
        "Did you share your seed phrase with anyone? If so, please send me a screenshot of the transaction.",
        "您是否泄露过助记词？如果有，请提供一下交易截图。",
        "What is a seed phrase? It is a list of words that backs up your wallet.",
    ],
)
def test_warnings_and_ordinary_requests_pass(message: str) -> None:
    assert not asks_for_secret(message)


# ---------------------------------------------------------------- the customer warning


@pytest.mark.parametrize("language", ["zh", "zh-CN", "zh_CN", "zh-Hans", "ZH-tw"])
def test_warning_in_chinese(language: str) -> None:
    warning = secret_warning(language)
    assert "助记词" in warning
    assert "不会" in warning
    assert "新钱包" in warning
    assert "授权" in warning
    assert "官方" in warning


@pytest.mark.parametrize("language", ["en", "en-US", "fr", "", "x-unknown"])
def test_warning_falls_back_to_english(language: str) -> None:
    warning = secret_warning(language)
    assert "never ask" in warning
    assert "new wallet" in warning
    assert "approvals" in warning
    assert "password" in warning
    assert "official app" in warning


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_the_warning_itself_is_neither_redacted_nor_refused(language: str) -> None:
    warning = secret_warning(language)
    assert redact(warning) == Redaction(warning, ())
    assert not asks_for_secret(warning)

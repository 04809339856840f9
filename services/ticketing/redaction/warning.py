"""The system message shown to a customer whose message carried a secret."""

from __future__ import annotations

_ZH = (
    "安全提醒：您刚才发送的内容中包含敏感信息（如助记词、私钥、Keystore 文件或银行卡号），"
    "系统已自动隐藏，客服人员看不到。\n"
    "请注意：我们的客服在任何情况下都不会向您索要助记词、私钥、Keystore 文件或其密码、支付密码及验证码。"
    "任何索要这些信息的人都是骗子。\n"
    "如果这些信息曾经发给过任何人，请立即：\n"
    "1. 在您信任的设备上新建一个钱包（生成新的助记词），并尽快把资产转入新钱包；\n"
    "2. 撤销旧钱包对第三方应用和合约的授权；\n"
    "3. 修改账户密码和支付密码；\n"
    "4. 只通过官方 App 内的客服入口联系我们，不要相信其他渠道发来的链接或账号。"
)

_EN = (
    "Security notice: your message contained sensitive information (such as a recovery phrase, private key, "
    "keystore file or card number). We have hidden them automatically; our agents cannot see them.\n"
    "Our support team will never ask for your recovery phrase, private keys, keystore file or its password, "
    "payment password or verification codes. Anyone who asks for them is a scammer.\n"
    "If you have shared any of these with anyone, please act now:\n"
    "1. Create a new wallet on a device you trust (with a new recovery phrase) and move your funds to it;\n"
    "2. Revoke the token approvals your old wallet gave to apps and contracts;\n"
    "3. Change your account password and payment password;\n"
    "4. Contact us only through the support section of the official app; ignore links or accounts "
    "that reach you any other way."
)


def secret_warning(language: str) -> str:
    """The warning in Chinese for any ``zh`` tag (zh, zh-CN, zh_Hans, zh-TW…), otherwise in English."""
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    return _ZH if primary in {"zh", "cmn", "yue"} else _EN

"""``asks_for_secret``: does an agent's outbound message ask the customer for a wallet secret?

Fake support always ends with a request for the recovery phrase or a key. The rules, small on purpose:

1. The message is cut into sentences, and sentences into clauses at commas and at "but"/"但是"/"不过",
   so a negation only covers its own clause ("Don't panic, just send me your seed phrase").
2. A clause asks for a secret when it names one together with a request verb:
   - wallet secrets (recovery/seed/secret phrase, mnemonic, "12 words", private key, keystore, xprv;
     助记词, 私钥, 密钥, 种子, 12个单词…) with any request: send, tell, share, type, enter, paste,
     import, upload, verify, screenshot… (输入, 发给, 提供, 导入, 截图…). Support never needs them,
     not even typed into a screen the agent points to;
   - credentials (password, verification code, CVV, PIN; 密码, 验证码…) only with a request to
     disclose (send, tell, give, share, "what is your"; 告诉, 发给, 提供…): agents legitimately ask
     customers to type a password or a code into the app itself.
3. A clause with a negation or warning never asks: never, not, don't, no one, avoid, beware, scam…;
   不会, 绝不, 不要, 请勿, 切勿, 谨防, 骗子… ("don't worry/forget/hesitate", "别担心", "不要忘记" are
   not negations). Nor does one that gives something to the customer ("send you", "给您").
4. Questions about the past are not requests: "did you share…", "have you entered…", "有没有…", "是否曾…".
5. A secret named in one sentence carries to the next: "Do you have your seed phrase? Send it to me."
   asks for it, through a request with "it"/"them"/它/这些, or a bare request right after a question
   ("你的助记词还在吗？发给我").
"""

from __future__ import annotations

import re

_SENTENCE = re.compile(r"[^.!?;\n。！？；]+[.!?;\n。！？；]*")
_CLAUSE_BREAK = re.compile(r"[,，]|\bbut\b|\bhowever\b|但是|不过|然而|可是", re.IGNORECASE)

_WALLET_SECRET = re.compile(
    r"\b(?:recovery|seed|secret|backup|mnemonic|wallet)[\s-]+(?:phrase|words?|sentence)s?\b"
    r"|\bmnemonics?\b|\bseed\b|\bpass\s?phrase\b"
    r"|\b(?:12|15|18|21|24|twelve|twenty[\s-]four)[\s-]+(?:secret\s+|seed\s+|recovery\s+)?words?\b"
    r"|\bprivate[\s-]+keys?\b|\bsecret[\s-]+keys?\b|\bpriv\s?keys?\b|\bkey\s?store\b|\bxprv\b"
    r"|\bextended\s+private\b|\bwif\b"
    r"|助记词|助記詞|记忆词|恢复词|恢復詞|恢复短语|种子|種子|私钥|私鑰|密钥|密鑰|秘钥"
    r"|(?:12|15|18|21|24|十二|二十四)\s*个?\s*(?:单词|單詞|词|詞|字)",
    re.IGNORECASE,
)
_CREDENTIAL = re.compile(
    r"\bpassword\b|\bpasscode\b|\bpin(?:\s+code)?\b|\bcvv\d?\b|\bcvc\b|\botp\b"
    r"|\b(?:verification|sms|2fa|security|one[\s-]time|auth(?:entication)?|confirmation)\s+codes?\b"
    r"|密码|密碼|验证码|驗證碼|动态码|安全码|校验码|cvv",
    re.IGNORECASE,
)

# Every secret or credential pattern above contains one of these; most messages contain none.
_ANCHORS = (
    *("phrase", "word", "sentence", "mnemonic", "seed", "key", "private", "xprv", "wif"),
    *("password", "passcode", "pin", "cvv", "cvc", "otp", "code"),
    *("助记", "助記", "记忆词", "恢复", "恢復", "种子", "種子", "钥", "鑰"),
    *("词", "詞", "字", "密码", "密碼", "码", "碼"),
)

_NOT_TO_YOU = r"(?!\s+(?:you|a|an)\b)"  # "send you a guide" gives to the customer; it asks for nothing
_DISCLOSE = (
    rf"\b(?:send|give|provide|share|forward|submit){_NOT_TO_YOU}\b"
    r"|\btell\s+(?:me|us)\b|\b(?:dm|text|message)\s+(?:me|us)\b|\breply\s+with\b"
    r"|\bread\s+(?:(?:it|them)\s+)?(?:out|back|aloud|to\s+me|me)\b"
    r"|\bwhat(?:'s|’s|\s+is|\s+are|\s+were)\s+your\b|\b(?:i|we)\s+(?:will\s+|would\s+|do\s+)?(?:need|require)\b"
    r"|\bask(?:ing)?\s+(?:you\s+)?for\b|\blet\s+(?:me|us)\s+(?:have|see|know)\b"
    # A Chinese verb followed by 的 describes ("您发送的内容"), it does not ask.
    r"|(?:提供|发送|發送|发给|發給|发我|发过来|給我|给我|告诉我|告訴我|告知|报一下|说一下|念一下|私信"
    r"|我们需要|我需要|需要您提供|需要你提供|索要|索取|回复)(?!的)"
    r"|(?:你|您)的[^，。？！,?]{0,12}(?:是什么|是多少|是哪些|有哪些)"
)
_ENTER = (
    r"\b(?:type|enter|input|paste|import|upload|verify|validate|sync|screenshot|photograph)\b"
    r"|\b(?:entering|typing|pasting|importing|uploading)\b|\b(?:take|send)\s+a\s+(?:photo|picture|screenshot)\b"
    r"|(?:输入|填写|填入|提交|粘贴|导入|上传|验证|核对|核实|截图|拍照|拍一下|同步)(?!的)"
)
_DISCLOSE_VERB = re.compile(_DISCLOSE, re.IGNORECASE)
_ANY_VERB = re.compile(f"{_DISCLOSE}|{_ENTER}", re.IGNORECASE)
_OBJECT_PRONOUN = re.compile(r"\b(?:it|them|these|those)\b|它|这些|那些|這些", re.IGNORECASE)
# What a bare request ("send me", "tell us", "发给我", "发我一下") is left with once its verb is gone.
_FILLER = re.compile(
    r"\b(?:please|pls|kindly|just|now|me|us|here|over|to)\b|请|麻烦|直接|就|吧|一下|我们|我|过来|[\W_]+", re.IGNORECASE
)

_NOT_A_NEGATION = re.compile(
    r"\b(?:don['’]t|do\s+not|never)\s+(?:forget|hesitate|worry|panic)\b|\bno\s+worries\b"
    r"|别忘了|别忘记|不要忘记|不要忘了|不用担心|别担心|不要担心|不要着急|别着急|不要紧",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\bnever\b|\bnot\b|n['’]t\b|\bno\s+one\b|\bnobody\b|\bno\s+(?:staff|agent|employee|support)\b|\bavoid\b"
    r"|\bbeware\b|\bcareful\b|\bwarn(?:ing)?\b|\bscam\w*|\bfraud\w*|\bphishing\b|\bfake\b|\bunder\s+no\b"
    r"|不会|绝不|決不|决不|从不|從不|从来不|永远不|不要|不能|不可|不得|不需要|无需|不用|请勿|切勿|勿|别(?!人)"
    r"|严禁|禁止|谨防|警惕|小心|骗子|诈骗|冒充|假冒|任何人"
    r"|(?:给|發給|发给|发送给|告诉|提醒)(?:您|你)(?!们)",
    re.IGNORECASE,
)
_PAST_QUESTION = re.compile(
    r"\b(?:did|have|has|had)\s+(?:you|anyone|someone|somebody)\b|\bwere\s+you\s+asked\b"
    r"|有没有|有沒有|是否(?:曾|已经|已|有)|过吗|過嗎",
    re.IGNORECASE,
)


def _clause_asks(clause: str, carried: bool, after_question: bool) -> bool:
    """Whether one clause (with no negation) asks for a secret, given the sentence before it."""
    if _WALLET_SECRET.search(clause):
        return _ANY_VERB.search(clause) is not None
    if _CREDENTIAL.search(clause) and _DISCLOSE_VERB.search(clause):
        return True
    if not carried or _ANY_VERB.search(clause) is None:
        return False
    if _OBJECT_PRONOUN.search(clause):
        return True
    if not after_question or _DISCLOSE_VERB.search(clause) is None:
        return False
    return not _FILLER.sub("", _DISCLOSE_VERB.sub("", clause))  # nothing else asked for: it is the secret


def _mentions(sentence: str) -> bool:
    return _WALLET_SECRET.search(sentence) is not None or _CREDENTIAL.search(sentence) is not None


def asks_for_secret(text: str) -> bool:
    """Whether an agent's message asks the customer for a recovery phrase, key, keystore or credential."""
    lowered = text.lower()
    if not any(anchor in lowered for anchor in _ANCHORS):  # cheap exit for the usual message
        return False
    carried = asked = False  # the previous sentence named a wallet secret; it was a question
    for sentence in _SENTENCE.findall(text):
        if not (carried or _mentions(sentence)):
            continue
        past = _PAST_QUESTION.search(sentence) is not None
        named = False
        for clause in _CLAUSE_BREAK.split(_NOT_A_NEGATION.sub(" ", sentence)):
            if _NEGATION.search(clause):
                continue
            if not past and _clause_asks(clause, carried or named, carried and asked):
                return True
            named = named or _WALLET_SECRET.search(clause) is not None
        carried, asked = named, sentence.rstrip().endswith(("?", "？", "吗", "嗎"))
    return False

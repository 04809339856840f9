"""What each kind of notification says, in zh-CN and en. Pure: facts in, title and body out."""

from __future__ import annotations

from collections.abc import Mapping

from services.notify.domain import DEFAULT_LOCALE, normalise_locale

# kind -> locale -> (title, body). Placeholders name facts; a missing fact renders empty.
TEMPLATES: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "ticket.received": {
        "zh-CN": (
            "我们已收到您的工单",
            "工单“{subject}”已提交，客服人员将尽快为您处理。客服绝不会索要您的助记词、私钥或密码。",
        ),
        "en": (
            "We have your ticket",
            "Your ticket “{subject}” is with us and an agent will pick it up shortly. "
            "Support will never ask for your recovery phrase, private keys or password.",
        ),
    },
    "agent.assigned": {
        "zh-CN": ("客服已接手您的工单", "客服人员正在处理工单“{subject}”，请留意回复。"),
        "en": ("An agent has your ticket", "An agent is now working on “{subject}”; watch for their reply."),
    },
    "agent.replied": {
        "zh-CN": ("客服回复了您", "工单“{subject}”有新回复：{excerpt}"),
        "en": ("Support replied", "New reply on “{subject}”: {excerpt}"),
    },
    "ticket.resolved": {
        "zh-CN": ("您的工单已解决", "工单“{subject}”已标记为已解决。如问题仍在，直接回复即可重新打开。"),
        "en": ("Your ticket is resolved", "“{subject}” is marked resolved. Reply to reopen it if the problem is back."),
    },
    "csat.requested": {
        "zh-CN": ("请为本次服务评分", "工单“{subject}”的服务体验如何？请花几秒钟为我们打分（1-5 分）。"),
        "en": ("How did we do?", "Please rate the help you got with “{subject}” from 1 to 5."),
    },
    "ticket.assigned": {
        "zh-CN": ("新工单已分配给您", "工单“{subject}”现由您负责。"),
        "en": ("Ticket assigned to you", "You now hold “{subject}”."),
    },
    "customer.replied": {
        "zh-CN": ("客户回复了", "工单“{subject}”有客户新消息：{excerpt}"),
        "en": ("Customer replied", "New customer message on “{subject}”: {excerpt}"),
    },
    "offer.received": {
        "zh-CN": ("新工单待接受", "队列 {queue} 的工单等待您接受，{expire_time} 前有效。"),
        "en": ("New ticket offered", "A ticket from queue {queue} is offered to you until {expire_time}."),
    },
    "sla.warning": {
        "zh-CN": ("SLA 即将超时", "工单“{subject}”的{metric}目标已用去 {percent}%，截止 {deadline}。"),
        "en": ("SLA warning", "{percent}% of the {metric} target on “{subject}” has passed; due {deadline}."),
    },
    "sla.breached": {
        "zh-CN": ("SLA 已超时", "工单 {ticket_id}（队列 {queue}）的{metric}目标已超时。"),
        "en": ("SLA breached", "The {metric} target on ticket {ticket_id} (queue {queue}) was missed."),
    },
    "ticket.escalated": {
        "zh-CN": ("工单升级", "工单 {ticket_id} 在队列 {queue} 等待过久（第 {step} 步），需要主管关注。"),
        "en": ("Ticket escalated", "Ticket {ticket_id} has waited too long in {queue} (step {step}) and needs you."),
    },
    "secret.exposed": {
        "zh-CN": ("客户泄露了敏感信息", "工单 {ticket_id} 中检测到并已删除：{reasons}。请跟进客户资金安全。"),
        "en": ("Customer exposed a secret", "Removed from ticket {ticket_id}: {reasons}. Follow up on their funds."),
    },
    "complaint.opened": {
        "zh-CN": ("新投诉", "客户提交了投诉“{subject}”（工单 {ticket_id}）。"),
        "en": ("New complaint", "A customer filed the complaint “{subject}” (ticket {ticket_id})."),
    },
    "security.alert": {
        "zh-CN": ("账户安全提醒", "您的账户于 {occur_time} 发生了一项安全相关操作。如非本人操作，请立即点击“不是我”。"),
        "en": (
            "Security alert",
            "Something security-related happened on your account at {occur_time}. "
            "If this wasn't you, tap “This wasn't me” now.",
        ),
    },
    "security.suspicious_login": {
        "zh-CN": (
            "异常登录提醒",
            "您的账户于 {occur_time} 在 {device}（{location}）登录。如非本人操作，请立即点击“不是我”并修改密码。",
        ),
        "en": (
            "Unusual sign-in",
            "Your account signed in on {device} ({location}) at {occur_time}. "
            "If this wasn't you, tap “This wasn't me” and change your password now.",
        ),
    },
    "security.large_transfer": {
        "zh-CN": (
            "大额转账提醒",
            "您的账户于 {occur_time} 转出 {amount} {currency}。如非本人操作，请立即点击“不是我”。",
        ),
        "en": (
            "Large transfer",
            "{amount} {currency} left your account at {occur_time}. If this wasn't you, tap “This wasn't me” now.",
        ),
    },
    "security.password_changed": {
        "zh-CN": ("密码已修改", "您的登录密码于 {occur_time} 被修改（{device}）。如非本人操作，请立即点击“不是我”。"),
        "en": (
            "Password changed",
            "Your password was changed at {occur_time} ({device}). If this wasn't you, tap “This wasn't me” now.",
        ),
    },
    "security.card_linked": {
        "zh-CN": (
            "新银行卡已绑定",
            "尾号 {card_last4} 的银行卡于 {occur_time} 绑定到您的账户。如非本人操作，请立即点击“不是我”。",
        ),
        "en": (
            "New card linked",
            "A card ending {card_last4} was linked to your account at {occur_time}. "
            "If this wasn't you, tap “This wasn't me” now.",
        ),
    },
}

_METRICS = {
    "first_response": {"zh-CN": "首次响应", "en": "first response"},
    "next_response": {"zh-CN": "下次响应", "en": "next response"},
    "resolution": {"zh-CN": "解决", "en": "resolution"},
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render(kind: str, locale: str, facts: Mapping[str, str]) -> tuple[str, str]:
    """Title and body of ``kind`` in ``locale`` (English when the locale has no template)."""
    by_locale = TEMPLATES[kind]
    chosen = normalise_locale(locale)
    title, body = by_locale.get(chosen, by_locale[DEFAULT_LOCALE])
    values = _Blank(facts)
    if "metric" in facts:
        values["metric"] = _METRICS.get(facts["metric"], {}).get(chosen, facts["metric"])
    return title.format_map(values), body.format_map(values)

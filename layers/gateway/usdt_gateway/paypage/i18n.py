# ruff: noqa: RUF001 (Chinese is written with full-width punctuation)
"""The payment page's languages: its strings in English and Simplified Chinese, and which one a
request gets (`?lang=` first, else the best match of Accept-Language by q-value, else English).

Strings are plain text with `{name}` placeholders; the renderer escapes the text and puts each
value in an element of its own, so the page script can update the value in place.
"""

from __future__ import annotations

import re

DEFAULT = "en"
LANGUAGES = ("en", "zh")
# The <html lang> of each: Simplified Chinese as written in mainland China.
HTML_LANG = {"en": "en", "zh": "zh-CN"}
# The switch shows each language's name in that language.
NATIVE_NAME = {"en": "English", "zh": "中文"}

MAX_HEADER_CHARS = 1024
_Q_VALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Pay {amount} USDT",
        "heading": "Pay with USDT",
        "language": "Language",
        "send_only": "Send only USDT on {network}.",
        "wrong_network": "Other tokens, or USDT on another network, cannot be credited to this payment.",
        "amount": "Amount",
        "amount_missing": "Still to send",
        "exact_amount": "Send exactly this amount.",
        "address": "Deposit address",
        "network": "Network",
        "contract": "Token contract",
        "qr_alt": "QR code of this payment",
        "qr_note_evm": "For wallets that read payment links (EIP-681). Check the amount and network before you "
        "confirm.",
        "qr_note_tron": "The QR code holds the address only: enter the amount yourself.",
        "copy": "Copy",
        "copied": "Copied",
        "time_left": "Time left",
        "until": "until {time}",
        "pending_title": "Waiting for your payment",
        "pending_text": "This page updates by itself once your payment is on chain.",
        "confirming_title": "Payment seen on chain",
        "confirming_counted": "{confirmations} of {required} confirmations",
        "confirming_finality": "{confirmations} confirmations; waiting for the block to be final",
        "confirming_text": "No need to send anything else: the payment completes once it is final.",
        "underpaid_title": "Partly paid",
        "underpaid_text": "Received {paid} of {amount} USDT. Send the missing {missing} USDT to the same address "
        "before the time runs out to complete the payment.",
        "confirmed_title": "Payment received",
        "confirmed_text": "Thank you: {paid} USDT received.",
        "overpaid_text": "You sent {excess} USDT more than asked. Contact the merchant about the difference.",
        "paid_late_text": "Your payment arrived after the deadline and was accepted.",
        "expired_title": "This payment request has expired",
        "expired_text": "Do not send anything to this address now. If you have already paid, this page updates "
        "once the payment is found.",
        "cancelled_title": "Payment cancelled",
        "cancelled_text": "The merchant cancelled this payment. Do not send anything to this address.",
        "failed_title": "Payment incomplete",
        "failed_text": "Only {paid} of {amount} USDT arrived before the deadline. Contact the merchant about the "
        "amount received.",
        "receipt": "Receipt",
        "paid_amount": "Amount paid",
        "paid_at": "Paid at",
        "transactions": "Transactions",
        "deposit_final": "final",
        "deposit_confirmations": "confirmations: {confirmations}",
        "return": "Return to merchant",
        "redirecting": "Returning to the merchant in {seconds} s.",
        "stay": "Stay on this page",
        "offline": "Cannot reach the server; retrying.",
        "delayed": "Status updates are delayed; this page keeps checking.",
        "noscript": "Reload this page to see the latest status.",
        "not_found_title": "Payment not found",
        "not_found_text": "This payment link is not valid. Check the link, or ask the merchant for a new one.",
        "error_title": "Something went wrong",
        "error_text": "Please reload this page in a moment.",
        "too_many_title": "Too many requests",
        "too_many_text": "Too many requests came from your network. Please reload this page in a minute.",
    },
    "zh": {
        "title": "支付 {amount} USDT",
        "heading": "使用 USDT 付款",
        "language": "语言",
        "send_only": "仅可发送 {network} 网络上的 USDT。",
        "wrong_network": "其他代币或其他网络上的 USDT 无法计入本次付款。",
        "amount": "金额",
        "amount_missing": "仍需支付",
        "exact_amount": "请发送准确金额。",
        "address": "收款地址",
        "network": "网络",
        "contract": "代币合约",
        "qr_alt": "本次付款的二维码",
        "qr_note_evm": "适用于支持支付链接（EIP-681）的钱包。确认前请核对金额和网络。",
        "qr_note_tron": "二维码仅包含收款地址，请手动输入金额。",
        "copy": "复制",
        "copied": "已复制",
        "time_left": "剩余时间",
        "until": "截止 {time}",
        "pending_title": "等待付款",
        "pending_text": "付款上链后，本页面会自动更新。",
        "confirming_title": "已在链上发现付款",
        "confirming_counted": "已确认 {confirmations}/{required}",
        "confirming_finality": "已确认 {confirmations} 个区块，等待区块最终确认",
        "confirming_text": "无需再次付款：最终确认后即完成付款。",
        "underpaid_title": "部分付款",
        "underpaid_text": "已收到 {paid} / {amount} USDT。请在时间结束前向同一地址补付 {missing} USDT 以完成付款。",
        "confirmed_title": "付款成功",
        "confirmed_text": "谢谢！已收到 {paid} USDT。",
        "overpaid_text": "您多付了 {excess} USDT，请联系商家处理差额。",
        "paid_late_text": "您的付款在截止时间之后到账，已被接受。",
        "expired_title": "付款请求已过期",
        "expired_text": "请勿再向此地址付款。如果您已经付款，系统找到付款后本页面会自动更新。",
        "cancelled_title": "付款已取消",
        "cancelled_text": "商家已取消本次付款，请勿向此地址付款。",
        "failed_title": "付款不完整",
        "failed_text": "截止前仅收到 {paid} / {amount} USDT。请联系商家处理已收到的款项。",
        "receipt": "付款凭证",
        "paid_amount": "已付金额",
        "paid_at": "付款时间",
        "transactions": "交易",
        "deposit_final": "已最终确认",
        "deposit_confirmations": "确认数：{confirmations}",
        "return": "返回商家",
        "redirecting": "{seconds} 秒后返回商家。",
        "stay": "留在此页",
        "offline": "无法连接服务器，正在重试。",
        "delayed": "状态更新有延迟，本页面会继续检查。",
        "noscript": "请刷新页面查看最新状态。",
        "not_found_title": "未找到付款",
        "not_found_text": "此付款链接无效。请检查链接，或向商家索取新的付款链接。",
        "error_title": "出错了",
        "error_text": "请稍后刷新本页面。",
        "too_many_title": "请求过多",
        "too_many_text": "来自您所在网络的请求过多，请一分钟后刷新本页面。",
    },
}


def _q_value(text: str) -> int | None:
    """An Accept-Language q-value in thousandths (RFC 9110 §12.4.2), None if malformed."""
    if not _Q_VALUE.match(text):
        return None
    whole, _, fraction = text.partition(".")
    return int(whole) * 1000 + int((fraction + "000")[:3])


def _language(tag: str) -> str | None:
    """Our language for a language range: en-GB -> en; zh, zh-CN, zh-Hans, zh-TW... -> zh."""
    primary = tag.split("-", 1)[0]
    return primary if primary in LANGUAGES else None


def negotiate(accept_language: str | None, requested: str | None = None) -> str:
    """The page's language: `requested` (the ?lang= switch) if we have it, else the preferred
    language of Accept-Language we have (highest q, the first listed among equals), else English."""
    if requested in LANGUAGES:
        return str(requested)
    weights: dict[str, int] = {}
    wildcard: int | None = None
    for part in (accept_language or "")[:MAX_HEADER_CHARS].split(","):
        tag, *params = (p.strip() for p in part.split(";"))
        q: int | None = 1000
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = _q_value(value.strip())
        tag = tag.lower()
        if q is None or not tag:
            continue
        if tag == "*":
            wildcard = q if wildcard is None else wildcard
        elif (lang := _language(tag)) is not None:
            weights[lang] = max(q, weights.get(lang, 0))  # zh-TW;q=0.9, zh-CN;q=0.8: zh at 0.9
    if wildcard is not None:  # "*": every language not named otherwise
        for lang in LANGUAGES:
            weights.setdefault(lang, wildcard)
    acceptable = [(q, -i, lang) for i, (lang, q) in enumerate(weights.items()) if q > 0]
    return max(acceptable)[2] if acceptable else DEFAULT

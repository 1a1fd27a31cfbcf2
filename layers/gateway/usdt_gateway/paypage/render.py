"""The payment page's HTML, from the public order view.

Every state's message is in the page; `data-show` names the states an element is shown in, and
the server sets `hidden` on the others exactly as the page script does after each poll, so the
page reads right without JavaScript too. Values the script updates sit in `data-field` elements.
Everything that comes from data goes through `html.escape`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote, urlsplit

from usdt_gateway.paypage import assets
from usdt_gateway.paypage.i18n import HTML_LANG, LANGUAGES, NATIVE_NAME, STRINGS
from usdt_gateway.schemas import OrderStatus, PublicDepositView, PublicOrderView

PAID = ("confirmed", "overpaid", "paid_late")
CLOSED = (*PAID, "expired", "cancelled", "failed")
WITH_DEPOSITS = ("confirming", "underpaid", "failed", *PAID)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def page_state(view: PublicOrderView, now_ms: int) -> str:
    """Which message the page shows: the status, `overpaid` or `paid_late` for a confirmed order
    with that exception, and `expired` (`failed`) for a pending (underpaid) order whose time is up
    while the scanner has yet to close it. page.js has the same rule."""
    if view.status == OrderStatus.CONFIRMED:
        return view.exception.value if view.exception else "confirmed"
    if view.status == OrderStatus.PENDING and now_ms >= view.expires_at:
        return "expired"
    if view.status == OrderStatus.UNDERPAID and now_ms >= view.expires_at:
        return "failed"
    return view.status.value


def has_excess(view: PublicOrderView) -> bool:
    """More than asked arrived (excessAmount > 0), in any paid state: the overpaid message says so
    itself; a paid_late (or confirmed) order shows it as a note. page.js has the same rule."""
    return view.status == OrderStatus.CONFIRMED and any(c in "123456789" for c in view.excess_amount)


def countdown(remaining_ms: int) -> str:
    """h:mm:ss, or mm:ss under an hour (page.js formats it the same way)."""
    seconds = max(0, remaining_ms) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def waiting_confirmations(view: PublicOrderView) -> int:
    """The confirmations of the least confirmed deposit not final yet (the one being waited for)."""
    open_ = [d.confirmations for d in view.deposits if not d.final]
    return min(open_) if open_ else max((d.confirmations for d in view.deposits), default=0)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(lang: str, key: str, **values: str) -> str:
    """The string `key`, escaped, with each {placeholder} replaced by its (already HTML) value."""
    template = STRINGS[lang][key]
    parts = _PLACEHOLDER.split(template)
    # split() alternates literal text and placeholder names
    return "".join(escape(p) if i % 2 == 0 else values[p] for i, p in enumerate(parts))


def _field(name: str, value: str) -> str:
    return f'<span data-field="{name}">{escape(value)}</span>'


def _show(states: tuple[str, ...], state: str, *, present: bool = True) -> str:
    """The states an element is shown in; hidden in the others (and while it has nothing to show)."""
    hidden = "" if state in states and present else " hidden"
    return f'data-show="{" ".join(states)}"{hidden}'


def _time(ms: int | None, *, field: str = "", style: str = "datetime") -> str:
    attrs = f' data-field="{field}"' if field else ""
    if ms is None:
        return f'<time{attrs} data-style="{style}"></time>'
    return f'<time{attrs} data-style="{style}" data-ts="{ms}" datetime="{_iso(ms)}">{escape(_utc(ms))}</time>'


def _copy_button(lang: str, target: str) -> str:
    s = STRINGS[lang]
    return (
        f'<button type="button" class="copy" data-copy="{target}" data-copied="{escape(s["copied"])}" '
        f"hidden>{escape(s['copy'])}</button>"
    )


def _deposit_row(lang: str, deposit: PublicDepositView | None) -> str:
    """One transaction of the receipt; with None, the empty row page.js fills in (a <template>)."""
    txid = escape(deposit.txid) if deposit else ""
    amount = escape(deposit.amount) if deposit else ""
    confirmations = str(deposit.confirmations) if deposit else ""
    final_hidden = "" if deposit and deposit.final else " hidden"
    seen_hidden = " hidden" if deposit and deposit.final else ""
    seen = _text(lang, "deposit_confirmations", confirmations=f'<span data-d="confirmations">{confirmations}</span>')
    return (
        f'<li class="deposit"><code class="txid" data-d="txid">{txid}</code>'
        f'<span class="deposit-amount"><span data-d="amount">{amount}</span> USDT</span>'
        f'<span class="badge final" data-d="final"{final_hidden}>{escape(STRINGS[lang]["deposit_final"])}</span>'
        f'<span class="badge seen" data-d="seen"{seen_hidden}>{seen}</span></li>'
    )


def _language_switch(lang: str) -> str:
    links = []
    for other in LANGUAGES:
        name = escape(NATIVE_NAME[other])
        if other == lang:
            links.append(f'<span class="current" aria-current="true">{name}</span>')
        else:
            code = HTML_LANG[other]
            links.append(f'<a href="?lang={other}" lang="{code}" hreflang="{code}">{name}</a>')
    return f'<nav class="lang" aria-label="{escape(STRINGS[lang]["language"])}">{"".join(links)}</nav>'


def _safe_return_url(url: str | None) -> str | None:
    """The merchant's returnUrl as a link target: only http(s) (checked at creation too)."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("https", "http") and parts.netloc else None


def _head(lang: str, title: str) -> str:
    return f"""<!doctype html>
<html lang="{HTML_LANG[lang]}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="robots" content="noindex, nofollow">
<meta name="referrer" content="no-referrer">
<title>{escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/{assets.STYLESHEET.name}">
<script src="assets/{assets.SCRIPT.name}" defer></script>
</head>
"""


def _status(lang: str, view: PublicOrderView, state: str) -> str:
    def t(key: str) -> str:
        return _text(
            lang,
            key,
            amount=_field("amount", view.amount),
            paid=_field("paid", view.paid_amount),
            missing=_field("missing", view.missing_amount),
            excess=_field("excess", view.excess_amount),
            confirmations=_field("confirmations", str(waiting_confirmations(view))),
            required=_field("required", "" if view.confirmations is None else str(view.confirmations)),
        )

    counted = "confirming_counted" if view.confirmations is not None else "confirming_finality"
    panels = [
        ("pending", "pending_title", ["pending_text"]),
        ("confirming", "confirming_title", [counted, "confirming_text"]),
        ("underpaid", "underpaid_title", ["underpaid_text"]),
        ("confirmed", "confirmed_title", ["confirmed_text"]),
        ("overpaid", "confirmed_title", ["confirmed_text", "overpaid_text"]),
        ("paid_late", "confirmed_title", ["confirmed_text", "paid_late_text"]),
        ("expired", "expired_title", ["expired_text"]),
        ("cancelled", "cancelled_title", ["cancelled_text"]),
        ("failed", "failed_title", ["failed_text"]),
    ]
    out = []
    for name, title, texts in panels:
        body = "".join(f"<p>{t(key)}</p>" for key in texts)
        out.append(
            f'<div class="panel {name}" data-panel="{name}" {_show((name,), state)}>'
            f'<h2 class="headline">{t(title)}</h2>{body}</div>'
        )
    return "\n".join(out)


def render_page(view: PublicOrderView, qr_data_uri: str, lang: str) -> str:
    """The whole payment page for one order, in `lang`."""
    s = STRINGS[lang]
    state = page_state(view, view.server_time)
    status_url = f"../v1/public/orders/{quote(view.public_id, safe='')}"
    evm = view.payment_uri.startswith("ethereum:")
    return_url = _safe_return_url(view.return_url)
    deposits = "".join(_deposit_row(lang, d) for d in view.deposits)
    network = f"<span>{escape(view.network_name)}</span>"
    # More than asked, on an order paid without the overpaid message (e.g. late): said as a note.
    excess_note = _text(lang, "overpaid_text", excess=_field("excess", view.excess_amount))
    return_link = ""
    if return_url:
        return_link = f"""<div class="return" {_show(CLOSED, state)}>
<a class="button" data-return href="{escape(return_url)}">{escape(s["return"])}</a>
<p class="redirect" data-redirect hidden>{_text(lang, "redirecting", seconds=_field("redirect", "5"))}
<button type="button" class="link" data-stay>{escape(s["stay"])}</button></p>
</div>"""
    return (
        _head(lang, STRINGS[lang]["title"].format(amount=view.amount))
        + f"""<body>
<main class="card" id="payment" data-state="{state}" data-status="{view.status.value}"
 data-exception="{view.exception.value if view.exception else ""}" data-status-url="{escape(status_url)}"
 data-expires-at="{view.expires_at}" data-server-time="{view.server_time}">
<header class="top"><h1>{escape(s["heading"])}</h1>{_language_switch(lang)}</header>
<section class="status" aria-live="polite">
{_status(lang, view, state)}
<p class="excess" data-excess {_show(("confirmed", "paid_late"), state, present=has_excess(view))}>{excess_note}</p>
<p class="offline" data-offline hidden>{escape(s["offline"])}</p>
<p class="offline" data-delayed hidden>{escape(s["delayed"])}</p>
<noscript><p class="hint">{escape(s["noscript"])}</p></noscript>
</section>
<section class="pay" {_show(("pending", "underpaid"), state)}>
<p class="network-warning"><strong>{_text(lang, "send_only", network=network)}</strong>
{escape(s["wrong_network"])}</p>
<div class="row amount-row" {_show(("pending",), state)}>
<span class="label">{escape(s["amount"])}</span>
<span class="value big"><span id="amount-value" data-field="amount">{escape(view.amount)}</span> USDT</span>
{_copy_button(lang, "amount-value")}
<span class="hint">{escape(s["exact_amount"])}</span>
</div>
<div class="row amount-row" {_show(("underpaid",), state)}>
<span class="label">{escape(s["amount_missing"])}</span>
<span class="value big"><span id="missing-value" data-field="missing">{escape(view.missing_amount)}</span> USDT</span>
{_copy_button(lang, "missing-value")}
</div>
<figure class="qr" {_show(("pending",), state)}>
<img id="qr" src="{escape(qr_data_uri)}" alt="{escape(s["qr_alt"])}">
<figcaption>{escape(s["qr_note_evm" if evm else "qr_note_tron"])}</figcaption>
</figure>
<div class="row">
<span class="label">{escape(s["address"])}</span>
<code class="value mono" id="address-value">{escape(view.address)}</code>
{_copy_button(lang, "address-value")}
</div>
<div class="row">
<span class="label">{escape(s["network"])}</span>
<span class="value">USDT · {escape(view.network_name)}</span>
</div>
<div class="row">
<span class="label">{escape(s["contract"])}</span>
<code class="value mono small" id="contract-value">{escape(view.token_contract)}</code>
</div>
<p class="timer"><span class="label">{escape(s["time_left"])}</span>
<span class="countdown" data-field="countdown">{countdown(view.expires_at - view.server_time)}</span>
<span class="until">{_text(lang, "until", time=_time(view.expires_at, style="time"))}</span></p>
</section>
<section class="receipt" {_show(PAID, state)}>
<h2>{escape(s["receipt"])}</h2>
<dl>
<dt>{escape(s["paid_amount"])}</dt><dd><span data-field="paid">{escape(view.paid_amount)}</span> USDT</dd>
<dt>{escape(s["network"])}</dt><dd>USDT · {escape(view.network_name)}</dd>
<dt>{escape(s["paid_at"])}</dt><dd>{_time(view.confirmed_at, field="paidAt")}</dd>
</dl>
</section>
<section class="deposits" data-deposits {_show(WITH_DEPOSITS, state, present=bool(view.deposits))}>
<h3>{escape(s["transactions"])}</h3>
<ul class="deposit-list" data-deposit-list>{deposits}</ul>
<template id="deposit-row">{_deposit_row(lang, None)}</template>
</section>
{return_link}
</main>
</body>
</html>
"""
    )


def render_message(lang: str, title_key: str, text_key: str) -> str:
    """A page with one message (unknown payment, internal error), with the language switch."""
    s = STRINGS[lang]
    return (
        _head(lang, s[title_key])
        + f"""<body>
<main class="card message" id="message">
<header class="top"><h1>{escape(s["heading"])}</h1>{_language_switch(lang)}</header>
<section class="status"><div class="panel"><h2 class="headline">{escape(s[title_key])}</h2>
<p>{escape(s[text_key])}</p></div></section>
</main>
</body>
</html>
"""
    )

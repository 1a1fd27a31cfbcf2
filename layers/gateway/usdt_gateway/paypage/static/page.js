// The hosted payment page's script: polls the public order endpoint and updates the page in
// place (state, amounts, confirmations, transactions), counts down to the expiry on the server's
// clock, copies the amount and the address, and returns to the merchant once paid.
// Amounts stay strings as the API gives them: nothing here does arithmetic on money.
"use strict";

(function () {
  const main = document.getElementById("payment");
  if (!main) {
    return; // a message page (unknown payment): nothing to update
  }
  const POLL_MS = 4000;
  const SLOW_POLL_MS = 15000; // after expiry: a late payment may still be found
  const MAX_BACKOFF_MS = 30000;
  const JITTER_MS = 2000;
  const REDIRECT_S = 5;
  const PAID = ["confirmed", "overpaid", "paid_late"];
  const FINISHED = [...PAID, "cancelled"]; // nothing can change any more

  const lang = document.documentElement.lang || "en";
  const statusUrl = main.dataset.statusUrl;
  let expiresAt = Number(main.dataset.expiresAt);
  let offset = Number(main.dataset.serverTime) - Date.now(); // server clock minus ours
  // The last answer of the status endpoint; until the first, what the page was rendered from.
  const excessField = main.querySelector('[data-excess] [data-field="excess"]');
  let view = {
    status: main.dataset.status,
    exception: main.dataset.exception || null,
    excessAmount: excessField ? excessField.textContent : "",
    expiresAt,
  };
  let state = main.dataset.state;
  let timer = null;
  let failures = 0;
  let redirect = null;

  function serverNow() {
    return Date.now() + offset;
  }

  // The same rule as render.page_state on the server.
  function stateOf(v, now) {
    if (v.status === "confirmed") {
      return v.exception || "confirmed";
    }
    if (v.status === "pending" && now >= v.expiresAt) {
      return "expired";
    }
    if (v.status === "underpaid" && now >= v.expiresAt) {
      return "failed";
    }
    return v.status;
  }

  function setField(name, value) {
    for (const el of main.querySelectorAll(`[data-field="${name}"]`)) {
      if (el.textContent !== value) {
        el.textContent = value;
      }
    }
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // h:mm:ss, or mm:ss under an hour (render.countdown on the server).
  function countdown(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
  }

  const formats = {
    time: new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" }),
    datetime: new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }),
  };

  // <time data-ts> elements in the payer's own time zone.
  function showTime(el, ms) {
    if (ms === null || ms === undefined) {
      el.textContent = "";
      el.removeAttribute("datetime");
      return;
    }
    const date = new Date(ms);
    el.dateTime = date.toISOString();
    el.dataset.ts = String(ms);
    el.textContent = (formats[el.dataset.style] || formats.datetime).format(date);
  }

  // More than asked arrived: a digit other than 0 in the amount string (render.has_excess).
  function hasExcess(v) {
    return v.status === "confirmed" && /[1-9]/.test(v.excessAmount || "");
  }

  function showStates() {
    main.dataset.state = state;
    for (const el of main.querySelectorAll("[data-show]")) {
      const shown = el.dataset.show.split(" ").includes(state);
      const empty = (el.hasAttribute("data-deposits") && !main.querySelector("[data-deposit-list] li")) ||
        (el.hasAttribute("data-excess") && !hasExcess(view));
      el.hidden = !shown || empty;
    }
  }

  // Which notice the status line shows while updates do not come through: "delayed" while the
  // gateway asks the page to slow down (429/418), "offline" while it cannot be reached.
  function notice(which) {
    main.querySelector("[data-offline]").hidden = which !== "offline";
    main.querySelector("[data-delayed]").hidden = which !== "delayed";
  }

  function tick() {
    setField("countdown", countdown(expiresAt - serverNow()));
    const next = stateOf(view, serverNow());
    if (next !== state) {
      enter(next);
    }
  }

  function renderDeposits(deposits) {
    const list = main.querySelector("[data-deposit-list]");
    const template = document.getElementById("deposit-row");
    const rows = deposits.map((d) => {
      const row = template.content.firstElementChild.cloneNode(true);
      row.querySelector('[data-d="txid"]').textContent = d.txid;
      row.querySelector('[data-d="amount"]').textContent = d.amount;
      row.querySelector('[data-d="confirmations"]').textContent = String(d.confirmations);
      row.querySelector('[data-d="final"]').hidden = !d.final;
      row.querySelector('[data-d="seen"]').hidden = d.final;
      return row;
    });
    list.replaceChildren(...rows);
  }

  function waitingConfirmations(deposits) {
    const open = deposits.filter((d) => !d.final).map((d) => d.confirmations);
    const all = deposits.map((d) => d.confirmations);
    return open.length ? Math.min(...open) : Math.max(0, ...all);
  }

  function apply(v) {
    view = v;
    offset = v.serverTime - Date.now();
    expiresAt = v.expiresAt;
    main.dataset.expiresAt = String(v.expiresAt);
    setField("amount", v.amount);
    setField("paid", v.paidAmount);
    setField("missing", v.missingAmount);
    setField("excess", v.excessAmount);
    setField("confirmations", String(waitingConfirmations(v.deposits)));
    setField("required", v.confirmations === null ? "" : String(v.confirmations));
    for (const el of main.querySelectorAll('[data-field="paidAt"]')) {
      showTime(el, v.confirmedAt);
    }
    renderDeposits(v.deposits);
    const next = stateOf(v, serverNow());
    if (next !== state) {
      enter(next);
    } else {
      showStates();
    }
    tick();
  }

  function enter(next) {
    const wasPaid = PAID.includes(state);
    state = next;
    showStates();
    if (PAID.includes(next) && !wasPaid) {
      startRedirect();
    }
  }

  // Back to the merchant a few seconds after the payment completes while the payer watches.
  function startRedirect() {
    const link = main.querySelector("[data-return]");
    const notice = main.querySelector("[data-redirect]");
    if (!link || !notice || redirect) {
      return;
    }
    let left = REDIRECT_S;
    setField("redirect", String(left));
    notice.hidden = false;
    redirect = setInterval(() => {
      left -= 1;
      setField("redirect", String(Math.max(left, 0)));
      if (left <= 0) {
        clearInterval(redirect);
        window.location.assign(link.href);
      }
    }, 1000);
    main.querySelector("[data-stay]").addEventListener("click", () => {
      clearInterval(redirect);
      notice.hidden = true;
    });
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (FINISHED.includes(state) || document.visibilityState === "hidden") {
      return; // resumed by visibilitychange
    }
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    let wait = ["expired", "failed"].includes(state) ? SLOW_POLL_MS : POLL_MS;
    try {
      const response = await fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        failures = 0;
        notice(null);
        apply(await response.json());
        wait = ["expired", "failed"].includes(state) ? SLOW_POLL_MS : POLL_MS;
      } else if (response.status === 429 || response.status === 418) {
        // Wait as long as the gateway says, plus a little at random, so the pages behind one
        // shared address do not all come back in the same second.
        const retryAfter = Number(response.headers.get("Retry-After"));
        const seconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 10;
        wait = Math.max(wait, seconds * 1000) + Math.floor(Math.random() * JITTER_MS);
        notice("delayed");
      } else {
        throw new Error(`status ${response.status}`);
      }
    } catch (error) {
      failures += 1;
      notice("offline");
      wait = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(failures, 3));
    }
    schedule(wait);
  }

  function copy(button) {
    const source = document.getElementById(button.dataset.copy);
    const text = source.textContent.trim();
    const label = button.textContent;
    const done = () => {
      button.textContent = button.dataset.copied;
      button.classList.add("done");
      setTimeout(() => {
        button.textContent = label;
        button.classList.remove("done");
      }, 2000);
    };
    const select = () => {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, select);
    } else {
      select(); // the payer copies the selection themselves
    }
  }

  for (const button of main.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", () => copy(button));
  }
  for (const el of main.querySelectorAll("time[data-ts]")) {
    showTime(el, Number(el.dataset.ts));
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      schedule(0);
    }
  });
  tick();
  setInterval(tick, 1000);
  schedule(POLL_MS);
})();

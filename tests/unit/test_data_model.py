"""The item types documented beside the table in template.yaml are the keys the code writes: every
key function of the gateway (found in its source, so a new one is covered without a change here)
makes the keys of exactly one documented line, and every documented line is some function's."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.template import REPO_ROOT, TEMPLATE_PATH
from usdt_gateway import records, store

GATEWAY = REPO_ROOT / "layers/gateway/usdt_gateway"
TABLE_COMMENT_START = "# One table. Item types"
# A sample value per parameter type: no "#", so a documented <value> (which matches no "#")
# cannot swallow the next part of a key.
SAMPLES: dict[str, Any] = {"str": "v1", "int": 7}


@dataclass(frozen=True)
class Documented:
    pk: str
    sk: str
    line: str

    def matches(self, pk: str, sk: str) -> bool:
        return bool(pattern(self.pk).fullmatch(pk) and pattern(self.sk).fullmatch(sk))


def pattern(documented: str) -> re.Pattern[str]:
    """A documented key as a regex: <name> is a value without "#", <name, N digits> N digits."""
    parts = re.split(r"(<[^>]+>)", documented)
    out = []
    for part in parts:
        if part.startswith("<"):
            digits = re.search(r"(\d+) digits>$", part)
            out.append(rf"\d{{{digits.group(1)}}}" if digits else r"[^#]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def table_comment(text: str) -> list[str]:
    """The comment lines of the table's item-type list (up to its blank comment line)."""
    lines = text.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.strip().startswith(TABLE_COMMENT_START)]
    block = []
    for line in lines[start + 1 :]:
        body = line.strip()
        if body == "#" or not body.startswith("#"):
            break
        block.append(body[1:])
    return block


def documented_items(text: str) -> list[Documented]:
    """Lines "  <pk> / <sk>  description": the key starts in the entry column, the description
    (and any continuation) after two spaces or more, or on the next lines."""
    entries = []
    for line in table_comment(text):
        if not line.startswith("   ") or line.startswith("    "):
            continue  # the heading sentences, or a continuation
        key = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if " / " in key:
            pk, sk = key.split(" / ")
            entries.append(Documented(pk, sk, key))
    return entries


def documented_index_keys(text: str) -> list[Documented]:
    """Each "gsi1: <pk> / <sk>" (or "gsi1 <pk> / <sk>") of the item list."""
    found = []
    for line in table_comment(text):
        for pk, sk in re.findall(r"gsi1:? (\S+) / (.+?)(?:;|$)", line.strip()):
            found.append(Documented(pk, sk, f"{pk} / {sk}"))
    return found


def key_functions(suffix: str, returns: str) -> dict[str, Callable[..., Any]]:
    """Every top-level function of the gateway named *<suffix> that returns `returns`."""
    found = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(("usdt_gateway", *path.relative_to(GATEWAY).with_suffix("").parts))
        for node in tree.body:
            if (
                isinstance(node, ast.FunctionDef)
                and node.name.endswith(suffix)
                and node.returns is not None
                and ast.unparse(node.returns) == returns
            ):
                found[f"{module}.{node.name}"] = getattr(importlib.import_module(module), node.name)
    return found


def call_with_samples(function: Callable[..., Any]) -> Any:
    """The function called with a sample per parameter; one named <item>_pk gets the pk that
    store.<item>_key makes (watch_key's order_pk is an order's pk)."""

    def sample(param: inspect.Parameter) -> Any:
        maker = getattr(store, param.name.removesuffix("_pk") + "_key", None)
        if param.name.endswith("_pk") and maker is not None:
            return call_with_samples(maker)[0]
        assert str(param.annotation) in SAMPLES, f"{function.__name__}({param.name}: {param.annotation}): add a sample"
        return SAMPLES[str(param.annotation)]

    return function(*(sample(p) for p in inspect.signature(function).parameters.values()))


def item_keys() -> dict[str, tuple[str, str]]:
    return {name: call_with_samples(f) for name, f in key_functions("_key", "tuple[str, str]").items()}


def index_pks() -> dict[str, str]:
    found = {name: call_with_samples(f) for name, f in key_functions("_index_pk", "str").items()}
    found |= {f"store.{n}": v for n, v in vars(store).items() if n.endswith("_INDEX_PK") and isinstance(v, str)}
    return found


@pytest.fixture(scope="module")
def text() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


def unmatched(documented: list[Documented], keys: dict[str, tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Key functions that match no line or more than one, and lines no key function matches."""
    bad_functions = []
    for name, (pk, sk) in keys.items():
        lines = [d.line for d in documented if d.matches(pk, sk)]
        if len(lines) != 1:
            bad_functions.append(f"{name} -> {pk} / {sk} matches {lines or 'no documented line'}")
    stale = [d.line for d in documented if not any(d.matches(pk, sk) for pk, sk in keys.values())]
    return bad_functions, stale


def test_every_item_key_function_makes_the_keys_of_exactly_one_documented_item_type(text: str) -> None:
    # Given the documented item types and every key function of the code
    documented = documented_items(text)
    keys = item_keys()
    assert len(documented) >= 20 and len(keys) >= 20, (len(documented), len(keys))

    # When each function's keys (from sample arguments) are matched against the documented lines
    bad_functions, stale = unmatched(documented, keys)

    # Then each function has its line, and no line is left that no code writes
    assert not bad_functions, "document these keys in template.yaml:\n" + "\n".join(bad_functions)
    assert not stale, f"documented item types no key function makes: {stale}"


def test_every_gsi1_partition_is_documented_and_made_by_the_code(text: str) -> None:
    # Given the documented gsi1 keys and the code's index partition keys
    documented = documented_index_keys(text)
    pks = index_pks()
    assert len(pks) >= 6, pks

    # Then each code partition matches exactly one documented gsi1 partition, and back
    for name, pk in pks.items():
        lines = [d.line for d in documented if pattern(d.pk).fullmatch(pk)]
        assert len(lines) == 1, f"{name} -> {pk} matches {lines or 'no documented gsi1 key'}"
    for d in documented:
        assert any(pattern(d.pk).fullmatch(pk) for pk in pks.values()), f"gsi1 {d.pk}: no code makes it"


def test_the_event_index_sort_key_is_the_documented_one(text: str) -> None:
    # Given the gsi1 sort keys documented for the events' and the outbox markers' partitions
    documented = {d.pk: d.sk for d in documented_index_keys(text)}
    sk = records.event_index_sk(1_700_000_000_000, 3, "evt_1")
    for pk in (store.events_index_pk("m"), store.OUTBOX_INDEX_PK):
        (line,) = [p for p in documented if pattern(p).fullmatch(pk)]
        # Then the code's sort key has that shape (zero-padded: the index sorts by it as text)
        assert pattern(documented[line]).fullmatch(sk), (line, documented[line], sk)


# --- the check itself: it fails when the code and the comment part ------------------------

TABLE = """\
  # One table. Item types (pk / sk).
  # A sentence about the table / not an entry.
  #   MERCHANT#<merchantId> / PROFILE            the profile
  #                                              gsi1: MERCHANT#<merchantId>#KEYS / <createdAt ms, 13 digits>#<apiKey>
  #   WATCH#<network> / <createdAt ms, 13 digits>#ORDER#<merchantId>#<orderId>
  #                                              the watch list
  #
  # Access patterns: not part of it / either
"""


def test_the_comment_is_read_as_its_entries_and_gsi1_keys() -> None:
    assert [d.line for d in documented_items(TABLE)] == [
        "MERCHANT#<merchantId> / PROFILE",
        "WATCH#<network> / <createdAt ms, 13 digits>#ORDER#<merchantId>#<orderId>",
    ]
    assert [d.line for d in documented_index_keys(TABLE)] == [
        "MERCHANT#<merchantId>#KEYS / <createdAt ms, 13 digits>#<apiKey>"
    ]


def test_a_new_key_function_or_a_changed_key_fails_until_the_comment_follows() -> None:
    # Given the two documented items and the functions that make them
    documented = documented_items(TABLE)
    keys = {"merchant_key": store.merchant_key("m1"), "watch_key": store.watch_key("bsc", 7, "ORDER#m1#o1")}
    assert unmatched(documented, keys) == ([], [])

    # When a key function is added that no line documents
    added = keys | {"rate_key": ("RATE#1.2.3.4#PAGES", "RATE")}
    # Then it is reported
    assert unmatched(documented, added)[0] == ["rate_key -> RATE#1.2.3.4#PAGES / RATE matches no documented line"]

    # When a key changes shape (the creation time no longer zero-padded to 13 digits)
    changed = keys | {"watch_key": ("WATCH#bsc", "7#ORDER#m1#o1")}
    bad, stale = unmatched(documented, changed)
    # Then the function is reported, and so is its line, which nothing makes any more
    assert bad == ["watch_key -> WATCH#bsc / 7#ORDER#m1#o1 matches no documented line"]
    assert stale == ["WATCH#<network> / <createdAt ms, 13 digits>#ORDER#<merchantId>#<orderId>"]

    # And a documented <value> never swallows a "#": RATE#<ip> is not the page meter's RATE#<ip>#PAGES
    assert not pattern("RATE#<ip>").fullmatch("RATE#1.2.3.4#PAGES")


def test_key_functions_are_found_in_the_source() -> None:
    # The discovery sees the key functions of every module, not a hand-kept list
    names = set(item_keys())
    assert {
        "usdt_gateway.store.merchant_key",
        "usdt_gateway.store.ledger_key",
        "usdt_gateway.store.listing_secret_key",
        "usdt_gateway.ratelimit.page_ip_key",
        "usdt_gateway.ratelimit.webhook_test_key",
        "usdt_gateway.auth.replay_key",
    } <= names

"""The operator CLI (`python -m usdt_gateway.admin`), run in-process against the moto server:
what it prints, what it stores, and how the API treats the keys it manages."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from bip_utils import Bip39MnemonicGenerator, Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins

from tests.integration.apiclient import ApiClient
from tests.integration.conftest import TABLE, account_xpub

pytestmark = pytest.mark.usefixtures("gateway_env")
VALID_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run the CLI; returns (exit code, parsed stdout or None, stderr)."""
    from usdt_gateway.admin import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def stored(pk: str, sk: str) -> dict[str, Any] | None:
    return boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")


def new_shop(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = admin(capsys, "create-merchant", "--name", "CLI shop")
    assert code == 0
    merchant_id: str = out["merchantId"]
    return merchant_id


def new_key(capsys: pytest.CaptureFixture[str], merchant_id: str) -> dict[str, str]:
    code, out, _ = admin(capsys, "create-key", "--merchant", merchant_id)
    assert code == 0
    key: dict[str, str] = out
    return key


def list_orders(handler: object, key: dict[str, str]) -> Any:
    return ApiClient(handler, key["apiKey"], key["secretKey"]).request("GET", "/v1/payment/orders")


def test_create_merchant_stores_the_webhook_secret_encrypted(capsys: pytest.CaptureFixture[str]) -> None:
    # Given / When a merchant is created
    code, out, _ = admin(capsys, "create-merchant", "--name", "Shop", "--webhook-url", "https://shop.example/hook")
    # Then its id and webhook secret are printed once, and the stored profile holds only a ciphertext
    assert code == 0
    assert out["merchantId"].startswith("m_") and out["webhookSecret"].startswith("whsec_")
    item = stored(f"MERCHANT#{out['merchantId']}", "PROFILE")
    assert item is not None and item["webhookUrl"]["S"] == "https://shop.example/hook"
    assert out["webhookSecret"] not in json.dumps(item)
    assert out["webhookSecret"][len("whsec_") :] not in json.dumps(item)


def test_create_key_prints_the_secret_once_and_stores_no_plaintext(
    capsys: pytest.CaptureFixture[str], handler: object
) -> None:
    # Given a merchant
    merchant_id = new_shop(capsys)
    # When a key is created
    code, out, _ = admin(capsys, "create-key", "--merchant", merchant_id, "--label", "checkout")
    # Then the secret is printed, the stored key item has no plaintext of it, and the key works
    assert code == 0
    assert out["merchantId"] == merchant_id
    assert out["apiKey"].startswith("ak_") and out["secretKey"].startswith("sk_")
    item = stored(f"APIKEY#{out['apiKey']}", "KEY")
    assert item is not None and "secretCipher" in item
    assert out["secretKey"] not in json.dumps(item)
    assert out["secretKey"][len("sk_") :] not in json.dumps(item)
    assert list_orders(handler, out).status == 200


def test_create_key_v2_only_refuses_v1_requests(capsys: pytest.CaptureFixture[str], handler: object) -> None:
    # Given a key created with --v2-only
    merchant_id = new_shop(capsys)
    code, out, _ = admin(capsys, "create-key", "--merchant", merchant_id, "--v2-only")
    assert code == 0
    client = ApiClient(handler, out["apiKey"], out["secretKey"])
    # When it lists orders signed with V1, then with V2
    v1 = client.request("GET", "/v1/payment/orders", sign="v1")
    v2 = client.request("GET", "/v1/payment/orders", sign="v2")
    # Then only V2 is accepted, and list-keys shows the key as V2-only
    assert (v1.status, v1.body["code"]) == (401, "SIGNATURE_V2_REQUIRED") and v2.status == 200
    code, keys, _ = admin(capsys, "list-keys", "--merchant", merchant_id)
    assert code == 0 and [k["v2Only"] for k in keys] == [True]


def test_create_key_for_unknown_merchant_or_scope_fails(capsys: pytest.CaptureFixture[str]) -> None:
    # Given no such merchant, and a real merchant asked for an unknown scope
    merchant_id = new_shop(capsys)
    # When keys are requested
    unknown, _, unknown_err = admin(capsys, "create-key", "--merchant", "m_doesnotexist")
    bad_scope, _, scope_err = admin(capsys, "create-key", "--merchant", merchant_id, "--scopes", "orders:admin")
    # Then both exit 2 with a JSON error naming the code
    assert unknown == 2 and json.loads(unknown_err)["error"] == "MERCHANT_NOT_FOUND"
    assert bad_scope == 2 and json.loads(scope_err)["error"] == "INVALID_SCOPES"


def test_list_keys_shows_no_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a merchant with two keys
    merchant_id = new_shop(capsys)
    keys = [new_key(capsys, merchant_id) for _ in range(2)]
    # When its keys are listed
    code, out, _ = admin(capsys, "list-keys", "--merchant", merchant_id)
    text = json.dumps(out)
    # Then both are listed as active, without any secret or ciphertext
    assert code == 0
    assert [k["apiKey"] for k in out] == [k["apiKey"] for k in keys]
    assert all(k["status"] == "active" for k in out)
    for key in keys:
        assert key["secretKey"] not in text
    assert "sk_" not in text and "secretCipher" not in text


def test_rotate_key_keeps_the_old_key_during_the_overlap(capsys: pytest.CaptureFixture[str], handler: object) -> None:
    # Given a merchant's key
    merchant_id = new_shop(capsys)
    old = new_key(capsys, merchant_id)
    # When it is rotated with the default overlap
    code, new, _ = admin(capsys, "rotate-key", "--key", old["apiKey"])
    # Then a new key of the same merchant is printed, and both keys authenticate
    assert code == 0
    assert new["merchantId"] == merchant_id and new["apiKey"] != old["apiKey"]
    assert list_orders(handler, old).status == 200
    assert list_orders(handler, new).status == 200


def test_rotate_key_without_overlap_expires_the_old_key(capsys: pytest.CaptureFixture[str], handler: object) -> None:
    # Given a merchant's key
    old = new_key(capsys, new_shop(capsys))
    # When it is rotated with no overlap
    code, new, _ = admin(capsys, "rotate-key", "--key", old["apiKey"], "--overlap-seconds", "0")
    # Then the old key is refused as expired and the new one works
    assert code == 0
    refused = list_orders(handler, old)
    assert (refused.status, refused.body["code"]) == (403, "KEY_EXPIRED")
    assert list_orders(handler, new).status == 200


def test_rotate_webhook_secret_prints_the_new_secret_once(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a merchant and its webhook secret
    code, shop, _ = admin(capsys, "create-merchant", "--name", "Rotating shop")
    before = stored(f"MERCHANT#{shop['merchantId']}", "PROFILE")
    assert code == 0 and before is not None
    # When the secret is rotated with a 10-minute overlap
    code, out, _ = admin(capsys, "rotate-webhook-secret", "--merchant", shop["merchantId"], "--overlap-seconds", "600")
    # Then a new secret is printed, stored only encrypted, with the old ciphertext kept for the overlap
    assert code == 0 and out["merchantId"] == shop["merchantId"]
    assert out["webhookSecret"].startswith("whsec_") and out["webhookSecret"] != shop["webhookSecret"]
    item = stored(f"MERCHANT#{shop['merchantId']}", "PROFILE")
    assert item is not None and out["webhookSecret"][len("whsec_") :] not in json.dumps(item)
    assert item["previousWebhookSecretCipher"] == before["webhookSecretCipher"]
    assert int(item["previousWebhookSecretUntil"]["N"]) == out["previousValidUntil"]
    # And an unknown merchant or a negative overlap exits 2
    unknown, _, err = admin(capsys, "rotate-webhook-secret", "--merchant", "m_doesnotexist")
    negative, _, neg_err = admin(
        capsys, "rotate-webhook-secret", "--merchant", shop["merchantId"], "--overlap-seconds", "-1"
    )
    assert unknown == 2 and json.loads(err)["error"] == "MERCHANT_NOT_FOUND"
    assert negative == 2 and json.loads(neg_err)["error"] == "INVALID_OVERLAP"


def test_revoke_key(capsys: pytest.CaptureFixture[str], handler: object) -> None:
    # Given a merchant's working key
    key = new_key(capsys, new_shop(capsys))
    assert list_orders(handler, key).status == 200
    # When it is revoked, and revoked again
    code, out, _ = admin(capsys, "revoke-key", "--key", key["apiKey"])
    again, _, err = admin(capsys, "revoke-key", "--key", key["apiKey"])
    # Then the API refuses it, and the second revoke exits 2 with KEY_NOT_ACTIVE
    assert (code, out) == (0, {"apiKey": key["apiKey"], "status": "revoked"})
    refused = list_orders(handler, key)
    assert (refused.status, refused.body["code"]) == (403, "KEY_REVOKED")
    assert again == 2 and json.loads(err)["error"] == "KEY_NOT_ACTIVE"


def test_set_xpub_then_orders_use_its_addresses(capsys: pytest.CaptureFixture[str], handler: object) -> None:
    # Given a merchant, a key and an account-level Tron xpub
    merchant_id = new_shop(capsys)
    key = new_key(capsys, merchant_id)
    xpub = account_xpub(Bip44Coins.TRON)
    # When the xpub is set and an order created
    code, out, _ = admin(capsys, "set-xpub", "--merchant", merchant_id, "--family", "tron", "--xpub", xpub)
    order = ApiClient(handler, key["apiKey"], key["secretKey"]).create(network="tron")
    # Then the order pays to the xpub's first receive address
    assert code == 0 and out["mode"] == "xpub" and out["nextIndex"] == 0
    expected = Bip44.FromExtendedKey(xpub, Bip44Coins.TRON).Change(Bip44Changes.CHAIN_EXT).AddressIndex(0)
    assert order.status == 201
    assert order.body["address"] == expected.PublicKey().ToAddress()


def _extended_key(value: str) -> str:
    """A fresh account-level xprv ("private"), a master-level xpub ("master"), or the value itself."""
    seed = Bip39SeedGenerator(Bip39MnemonicGenerator().FromWordsNumber(12)).Generate()
    wallet = Bip44.FromSeed(seed, Bip44Coins.ETHEREUM)
    if value == "private":
        return str(wallet.Purpose().Coin().Account(0).PrivateKey().ToExtended())
    if value == "master":
        return str(wallet.PublicKey().ToExtended())
    return value


@pytest.mark.parametrize("value", ["private", "master", "xpub-garbage-not-base58-0OIl", "not an xpub"])
def test_set_xpub_refuses_private_or_invalid_keys(capsys: pytest.CaptureFixture[str], value: str) -> None:
    # Given a merchant and an extended private key, a master-level xpub or garbage in place of an account xpub
    merchant_id = new_shop(capsys)
    key = _extended_key(value)
    # When it is set
    code, out, err = admin(capsys, "set-xpub", "--merchant", merchant_id, "--family", "evm", "--xpub", key)
    # Then the CLI exits 2 with INVALID_XPUB, echoes nothing of the key and stores no configuration
    assert (code, out) == (2, None)
    assert json.loads(err)["error"] == "INVALID_XPUB"
    assert key not in err
    if value == "private":
        assert "PRIVATE" in json.loads(err)["message"]
    if value == "master":
        assert "depth 0" in json.loads(err)["message"]
    assert stored(f"MERCHANT#{merchant_id}", "ADDRCFG#evm") is None


def test_set_address_checks_the_tron_checksum(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a merchant, a valid Tron address and the same address with one character changed
    merchant_id = new_shop(capsys)
    mistyped = VALID_TRON[:-1] + ("u" if VALID_TRON[-1] != "u" else "v")
    # When each is set as the fixed receiving address
    bad, _, err = admin(capsys, "set-address", "--merchant", merchant_id, "--family", "tron", "--address", mistyped)
    after_bad = stored(f"MERCHANT#{merchant_id}", "ADDRCFG#tron")
    good, out, _ = admin(capsys, "set-address", "--merchant", merchant_id, "--family", "tron", "--address", VALID_TRON)
    # Then the mistyped one exits 2 without storing anything, and the valid one is stored
    assert bad == 2
    assert json.loads(err)["error"] == "INVALID_ADDRESS_CONFIG"
    assert "checksum" in json.loads(err)["message"]
    assert after_bad is None
    assert good == 0 and out["mode"] == "fixed" and out["address"] == VALID_TRON
    config = stored(f"MERCHANT#{merchant_id}", "ADDRCFG#tron")
    assert config is not None and config["address"]["S"] == VALID_TRON


def test_every_command_and_option_has_help_and_the_top_help_tells_the_scope_syntax(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the CLI's parser
    import argparse

    from usdt_gateway.admin import _parser
    from usdt_gateway.auth import SCOPES

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {choice.dest: choice.help for choice in commands._choices_actions}
    # Then every command has a summary and a description, and every one of its options a help text
    assert set(summaries) == set(commands.choices) and all(summaries.values())
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not action.help
    ]
    assert missing == []
    assert all(command.description for command in commands.choices.values())
    # And --help shows how to write scopes, at the top and for create-key
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        parser.parse_args(["create-key", "--help"])
    create_key = " ".join(capsys.readouterr().out.split())
    for text in (top, create_key):
        assert "comma-separated" in text and all(scope in text for scope in SCOPES)

"""Contract-mode settlement on anvil: DepositFactory and its Deposit clones. Deposit addresses
computed offline are where the factory deploys; sweeps pay only the treasury, whatever the
relayer (the gas-paying key) tries; refunds need the owner's EIP-712 signature, once, on this
factory and chain; a hostile token cannot re-enter; tokens that return nothing or false on
success sweep by balance."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import ABIElement, ABIFunction, ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractEvent
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt, Wei

from devstack.evm import CHAIN_ID, Anvil, deploy_token, mint, start_anvil
from devstack.settlement_contracts import (
    deploy_deposit_implementation,
    deploy_factory,
    deploy_test_token,
    deploy_tron_build,
)
from usdt_gateway.address_codec import tron_address_from_body
from usdt_gateway.create2 import clone_init_code, deposit_address, keccak256, order_salt, tron_deposit_address

GAS = 5_000_000  # explicit: a reverting call is mined (status 0) instead of failing estimation
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FAR_FUTURE = 2**40


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with start_anvil() as node:
        yield node


@pytest.fixture
def w3(anvil: Anvil) -> Iterator[Web3]:
    """A client of the module's node; the chain goes back to its previous state after the test."""
    snapshot = anvil.rpc("evm_snapshot")
    yield anvil.web3()
    assert anvil.rpc("evm_revert", [snapshot]) is True


@dataclass
class Merchant:
    w3: Web3
    factory: Contract
    implementation: Contract
    owner: LocalAccount  # the merchant's key: signs refunds, never sends transactions
    treasury: str
    deployer: str  # funds the tests' payments and deploys the contracts
    relayer: str  # the gateway's gas-paying key: an unlocked anvil account

    def salt(self) -> bytes:
        return order_salt("merchant-1", f"ord_{secrets.token_hex(6)}")

    def address(self, salt: bytes) -> ChecksumAddress:
        return Web3.to_checksum_address(deposit_address(self.factory.address, self.implementation.address, salt))

    def clone(self, salt: bytes) -> Contract:
        return self.w3.eth.contract(address=self.address(salt), abi=self.implementation.abi)

    def send(self, call: Any, *, sender: str | None = None) -> TxReceipt:
        """Mine `call` from the relayer (or `sender`) with a fixed gas limit; returns the receipt,
        status 0 when it reverted."""
        tx_hash = call.transact({"from": sender or self.relayer, "gas": GAS})
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)

    def send_raw(self, to: str, data: bytes, *, value: int = 1) -> TxReceipt:
        """Mine a transaction from the relayer with this calldata and some ether."""
        tx: TxParams = {"from": self.relayer, "to": to, "data": data, "value": Wei(value), "gas": GAS}
        return self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(tx), timeout=30)

    def sweep(self, token: Contract, salts: list[bytes]) -> TxReceipt:
        return self.send(self.factory.functions.sweep(token.address, salts))

    def refund_typed_data(
        self, token: str, salt: bytes, to: str, amount: int, nonce: int, deadline: int, *, chain_id: int = CHAIN_ID
    ) -> dict[str, Any]:
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Refund": [
                    {"name": "token", "type": "address"},
                    {"name": "salt", "type": "bytes32"},
                    {"name": "to", "type": "address"},
                    {"name": "amount", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Refund",
            "domain": {
                "name": "USDT Gateway Deposits",
                "version": "1",
                "chainId": chain_id,
                "verifyingContract": self.factory.address,
            },
            "message": {
                "token": token,
                "salt": salt,
                "to": to,
                "amount": amount,
                "nonce": nonce,
                "deadline": deadline,
            },
        }

    def sign_refund(self, signer: LocalAccount, typed: dict[str, Any]) -> bytes:
        return bytes(signer.sign_message(encode_typed_data(full_message=typed)).signature)

    def refund(self, token: Contract, typed: dict[str, Any], signature: bytes) -> TxReceipt:
        m = typed["message"]
        call = self.factory.functions.refund(
            token.address, m["salt"], m["to"], m["amount"], m["nonce"], m["deadline"], signature
        )
        return self.send(call)


def _fresh() -> str:
    return str(Account.create().address)


def _new_merchant(w3: Web3, implementation: Contract | None = None) -> Merchant:
    deployer, relayer = w3.eth.accounts[0], w3.eth.accounts[1]  # type: ignore[misc]  # web3 types accounts as a 1-tuple
    implementation = implementation or deploy_deposit_implementation(w3, deployer)
    owner, treasury = Account.create(), _fresh()
    factory = deploy_factory(
        w3, deployer, treasury=treasury, owner=owner.address, implementation=implementation.address
    )
    return Merchant(w3, factory, implementation, owner, treasury, deployer, relayer)


@pytest.fixture
def merchant(w3: Web3) -> Merchant:
    return _new_merchant(w3)


@pytest.fixture
def usdt(w3: Web3) -> Contract:
    """The repo's TestUSDT (transfer returns true); the deployer holds 1,000,000 units."""
    token = deploy_token(w3, w3.eth.accounts[0])
    mint(token, w3.eth.accounts[0], 10**12, owner=w3.eth.accounts[0])
    return token


def _pay(m: Merchant, token: Contract, to: str, amount: int) -> None:
    """A payment to `to`: minted straight there for the test tokens, transferred for TestUSDT."""
    test_token = not token.get_function_by_name("mint").abi["outputs"]  # TestUSDT's owner-only mint returns bool
    if test_token:
        assert m.send(token.functions.mint(to, amount), sender=m.deployer)["status"] == 1
    else:
        assert m.send(token.functions.transfer(to, amount), sender=m.deployer)["status"] == 1


def _events(event: ContractEvent, receipt: TxReceipt) -> list[Any]:
    """The logs of `event` in the receipt (the tokens' own logs are skipped)."""
    return list(event.process_receipt(receipt, errors=DISCARD))


def _balance(token: Contract, holder: str) -> int:
    return int(token.functions.balanceOf(holder).call())


# -- Addresses ------------------------------------------------------------------------------------


def test_offline_address_is_where_the_factory_deploys(merchant: Merchant, usdt: Contract) -> None:
    # Given an order's salt and its deposit address computed offline, with money paid to it
    salt = merchant.salt()
    offline = merchant.address(salt)
    assert merchant.factory.functions.deposit_address(salt).call() == offline
    assert merchant.w3.eth.get_code(offline) == b""  # valid before anything is deployed
    _pay(merchant, usdt, offline, 5_000_000)

    # When the relayer sweeps it
    receipt = merchant.sweep(usdt, [salt])

    # Then the clone is deployed exactly there, and the money is in the treasury
    assert receipt["status"] == 1
    deployed = _events(merchant.factory.events.DepositDeployed(), receipt)
    assert [(e.args.deposit, e.args.salt) for e in deployed] == [(offline, salt)]
    assert merchant.w3.eth.get_code(offline) != b""
    assert _balance(usdt, offline) == 0
    assert _balance(usdt, merchant.treasury) == 5_000_000


# -- Sweeps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "no-return", "false-return"])
def test_sweep_moves_every_balance_to_the_treasury(merchant: Merchant, usdt: Contract, kind: str) -> None:
    # Given a token whose transfer returns true, nothing (Ethereum USDT) or false (Tron USDT),
    # and three deposit addresses: two paid, one empty
    w3 = merchant.w3
    token = usdt if kind == "standard" else deploy_test_token(w3, merchant.deployer, kind)
    salts = [merchant.salt() for _ in range(3)]
    _pay(merchant, token, merchant.address(salts[0]), 7)
    _pay(merchant, token, merchant.address(salts[2]), 1_000_000)

    # When they are swept in one transaction
    total = merchant.factory.functions.sweep(token.address, salts).call({"from": merchant.relayer})
    receipt = merchant.sweep(token, salts)

    # Then both balances are in the treasury, counted by balance; the empty address is not deployed
    assert receipt["status"] == 1
    assert total == 1_000_007
    assert _balance(token, merchant.treasury) == 1_000_007
    assert [_balance(token, merchant.address(s)) for s in salts] == [0, 0, 0]
    swept = _events(merchant.factory.events.Swept(), receipt)
    assert [(e.args.deposit, e.args.amount) for e in swept] == [
        (merchant.address(salts[0]), 7),
        (merchant.address(salts[2]), 1_000_000),
    ]
    assert w3.eth.get_code(merchant.address(salts[1])) == b""


def test_sweeping_twice_or_with_a_payment_in_flight_loses_nothing(merchant: Merchant, usdt: Contract) -> None:
    # Given a deposit address swept once (which deployed it)
    salt = merchant.salt()
    address = merchant.address(salt)
    _pay(merchant, usdt, address, 3_000_000)
    assert merchant.sweep(usdt, [salt])["status"] == 1

    # When a second payment lands after that deploy, and the address is swept twice more,
    # once with the salt repeated in the batch
    _pay(merchant, usdt, address, 2_500_000)
    again = merchant.sweep(usdt, [salt, salt])
    empty = merchant.sweep(usdt, [salt])

    # Then every unit is in the treasury, each sweep succeeded, and the last one found nothing
    assert again["status"] == 1 and empty["status"] == 1
    assert _balance(usdt, merchant.treasury) == 5_500_000
    assert _balance(usdt, address) == 0
    assert _events(merchant.factory.events.Swept(), empty) == []


def test_a_token_that_reports_success_without_moving_money_reverts_the_sweep(merchant: Merchant) -> None:
    # Given a hostile token whose transfer returns true and moves nothing, paid to a deposit address
    token = deploy_test_token(merchant.w3, merchant.deployer, "reentrant")
    salt = merchant.salt()
    _pay(merchant, token, merchant.address(salt), 100)
    assert merchant.send(token.functions.set_lazy(True))["status"] == 1

    # When it is swept, Then the sweep reverts (the balance did not move) and nothing changed
    assert merchant.sweep(token, [salt])["status"] == 0
    assert _balance(token, merchant.address(salt)) == 100
    assert _balance(token, merchant.treasury) == 0


def test_the_tron_build_computes_tron_deposit_addresses(merchant: Merchant) -> None:
    # Given the Tron builds of Deposit and DepositFactory (their views run the same on anvil)
    w3 = merchant.w3
    implementation = deploy_tron_build(w3, merchant.deployer, "Deposit")
    factory = deploy_tron_build(
        w3, merchant.deployer, "DepositFactory", merchant.treasury, merchant.owner.address, implementation.address
    )
    body = bytes.fromhex(implementation.address[2:])
    assert bytes(implementation.functions.CLONE_INIT_CODE_HASH().call()) == keccak256(clone_init_code(body))
    for salt in (merchant.salt(), merchant.salt()):
        # When the factory's view names a salt's deposit address
        on_chain = factory.functions.deposit_address(salt).call()
        # Then it is the offline Tron address (0x41 prefix), not the EVM one
        as_tron = tron_address_from_body(bytes.fromhex(on_chain[2:]))
        offline = tron_deposit_address(
            tron_address_from_body(bytes.fromhex(factory.address[2:])), tron_address_from_body(body), salt
        )
        assert as_tron == offline
        assert Web3.to_checksum_address(deposit_address(factory.address, implementation.address, salt)) != on_chain


# -- The relayer's power --------------------------------------------------------------------------


def test_the_relayer_cannot_move_money_anywhere_but_the_treasury(merchant: Merchant, usdt: Contract) -> None:
    # Given two paid deposit addresses, one deployed by a sweep and paid again, one never deployed
    w3, relayer = merchant.w3, merchant.relayer
    deployed, fresh = merchant.salt(), merchant.salt()
    _pay(merchant, usdt, merchant.address(deployed), 1)
    assert merchant.sweep(usdt, [deployed])["status"] == 1
    _pay(merchant, usdt, merchant.address(deployed), 40_000_000)
    _pay(merchant, usdt, merchant.address(fresh), 60_000_000)
    before = {a: _balance(usdt, a) for a in (merchant.address(deployed), merchant.address(fresh))}
    # The state-changing functions the relayer can reach; a new one fails here until it is covered.
    writes = {f["name"] for f in [*merchant.factory.abi, *merchant.implementation.abi] if _writes(f)}
    assert writes == {"sweep", "refund", "transfer_token"}

    # When the relayer tries every path with hostile arguments
    typed = merchant.refund_typed_data(usdt.address, deployed, relayer, 40_000_000, 1, FAR_FUTURE)
    unsigned_refunds = [
        merchant.sign_refund(Account.from_key(w3.eth.account.create().key), typed),  # its own key
        b"",
        b"\x00" * 65,
        bytes(32) + bytes(32) + b"\x1b",
    ]
    own = _new_merchant(w3, merchant.implementation)  # a factory of its own, same implementation
    attempts = [
        *(merchant.refund(usdt, typed, signature) for signature in unsigned_refunds),
        # the deployed clone or the implementation called directly, naming either salt
        *(
            merchant.send(c.functions.transfer_token(usdt.address, relayer, 1, s))
            for s in (deployed, fresh)
            for c in (merchant.clone(deployed), merchant.implementation)
        ),
        # the address that is not deployed yet: a call to an account without code does nothing
        merchant.send(merchant.clone(fresh).functions.transfer_token(usdt.address, relayer, 1, fresh)),
        # its own factory, naming the merchant's salts: it reaches only its own addresses
        own.sweep(usdt, [deployed, fresh]),
        # sweeps that name a contract of the system, or an account without code, as the token
        *(
            merchant.send(merchant.factory.functions.sweep(bogus, [deployed, fresh]))
            for bogus in (
                merchant.factory.address,
                merchant.address(deployed),
                merchant.implementation.address,
                relayer,
            )
        ),
        # calldata the contracts do not know, and plain ether
        *(
            merchant.send_raw(to, data)
            for to in (merchant.factory.address, merchant.address(deployed), merchant.implementation.address)
            for data in (b"", b"\xa9\x05\x9c\xbb" + bytes(64), secrets.token_bytes(100))
        ),
    ]

    # Then nothing it tried moved a unit: only a plain sweep does, and that pays the treasury
    assert [r["status"] for r in attempts[:8]] == [0] * 8  # refunds and direct calls revert
    assert [r["status"] for r in attempts[10:14]] == [0] * 4  # sweeps of things that are no token
    assert [r["status"] for r in attempts[14:]] == [0] * 9  # no fallback takes calldata or ether
    assert before == {a: _balance(usdt, a) for a in before}
    assert _balance(usdt, relayer) == 0
    assert _balance(usdt, own.treasury) == 0
    assert merchant.sweep(usdt, [deployed, fresh])["status"] == 1
    assert _balance(usdt, merchant.treasury) == 1 + 100_000_000
    assert _balance(usdt, relayer) == 0


def _writes(entry: ABIElement) -> TypeGuard[ABIFunction]:
    return entry.get("type") == "function" and entry.get("stateMutability") not in ("view", "pure")


# -- Refunds --------------------------------------------------------------------------------------


@pytest.fixture
def paid(merchant: Merchant, usdt: Contract) -> bytes:
    """The salt of a deposit address holding 10 USDT, not deployed yet."""
    salt = merchant.salt()
    _pay(merchant, usdt, merchant.address(salt), 10_000_000)
    return salt


def test_an_owner_signed_refund_runs_once(merchant: Merchant, usdt: Contract, paid: bytes) -> None:
    # Given the owner's signature of a refund of 4 USDT to the payer
    payer = _fresh()
    typed = merchant.refund_typed_data(usdt.address, paid, payer, 4_000_000, 7, FAR_FUTURE)
    signature = merchant.sign_refund(merchant.owner, typed)
    m = typed["message"]
    on_chain = merchant.factory.functions.refund_digest(
        usdt.address, paid, payer, m["amount"], m["nonce"], m["deadline"]
    ).call()
    assert on_chain == _eip712_digest(typed)  # the contract's digest is EIP-712's

    # When the relayer submits it, and then submits it again
    first = merchant.refund(usdt, typed, signature)
    replay = merchant.refund(usdt, typed, signature)

    # Then the first moved 4 USDT from the deposit address to the payer, and the replay failed
    assert first["status"] == 1 and replay["status"] == 0
    assert _balance(usdt, payer) == 4_000_000
    assert _balance(usdt, merchant.address(paid)) == 6_000_000
    assert merchant.factory.functions.nonce_used(7).call() is True
    events = _events(merchant.factory.events.Refunded(), first)
    assert [(e.args.deposit, e.args.to, e.args.amount, e.args.nonce) for e in events] == [
        (merchant.address(paid), payer, 4_000_000, 7)
    ]


def _eip712_digest(typed: dict[str, Any]) -> bytes:
    message = encode_typed_data(full_message=typed)
    return bytes(Web3.keccak(b"\x19" + message.version + message.header + message.body))


def test_refunds_without_a_valid_owner_signature_fail(
    w3: Web3, merchant: Merchant, usdt: Contract, paid: bytes
) -> None:
    # Given refunds signed wrongly: by another key, for another factory of the same owner, for
    # another chain, past their deadline, with the high-s twin of a valid signature, or altered
    payer = _fresh()
    typed = merchant.refund_typed_data(usdt.address, paid, payer, 1_000_000, 1, FAR_FUTURE)
    good = merchant.sign_refund(merchant.owner, typed)
    sibling = deploy_factory(
        w3,
        merchant.deployer,
        treasury=merchant.treasury,
        owner=merchant.owner.address,
        implementation=merchant.implementation.address,
    )
    other_factory = {**typed, "domain": {**typed["domain"], "verifyingContract": sibling.address}}
    other_chain = merchant.refund_typed_data(usdt.address, paid, payer, 1_000_000, 1, FAR_FUTURE, chain_id=1)
    now = int(w3.eth.get_block("latest")["timestamp"])
    expired = merchant.refund_typed_data(usdt.address, paid, payer, 1_000_000, 1, now - 1)
    r, s, v = good[:32], int.from_bytes(good[32:64]), good[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v])  # the same signature, malleated
    more = {**typed, "message": {**typed["message"], "amount": 10_000_000}}
    elsewhere = {**typed, "message": {**typed["message"], "to": _fresh()}}

    # When the relayer submits each
    receipts = [
        merchant.refund(usdt, typed, merchant.sign_refund(Account.create(), typed)),
        merchant.refund(usdt, typed, merchant.sign_refund(merchant.owner, other_factory)),
        merchant.refund(usdt, typed, merchant.sign_refund(merchant.owner, other_chain)),
        merchant.refund(usdt, expired, merchant.sign_refund(merchant.owner, expired)),
        merchant.refund(usdt, typed, high_s),
        merchant.refund(usdt, more, good),
        merchant.refund(usdt, elsewhere, good),
    ]

    # Then every one fails and the deposit keeps its money; the good signature still works after
    assert [r["status"] for r in receipts] == [0] * 7
    assert _balance(usdt, merchant.address(paid)) == 10_000_000
    assert merchant.refund(usdt, typed, good)["status"] == 1
    assert _balance(usdt, payer) == 1_000_000


# -- Re-entrancy ----------------------------------------------------------------------------------


def test_reentry_through_a_hostile_token_has_no_effect(merchant: Merchant) -> None:
    # Given a hostile token paid to two deposit addresses (`other` deployed by an earlier sweep),
    # armed in turn to re-enter the factory's sweep, a valid owner-signed refund, and the deposit
    # clone itself, from inside its transfer
    w3 = merchant.w3
    token = deploy_test_token(w3, merchant.deployer, "reentrant")
    salt, other = merchant.salt(), merchant.salt()
    _pay(merchant, token, merchant.address(other), 1)
    assert merchant.sweep(token, [other])["status"] == 1
    _pay(merchant, token, merchant.address(other), 2_000)
    thief = _fresh()
    typed = merchant.refund_typed_data(token.address, other, thief, 2_000, 9, FAR_FUTURE)
    signed = merchant.sign_refund(merchant.owner, typed)
    m = typed["message"]
    payloads = [
        (merchant.factory, merchant.factory.functions.sweep(token.address, [other])),
        (
            merchant.factory,
            merchant.factory.functions.refund(token.address, other, thief, 2_000, 9, m["deadline"], signed),
        ),
        (merchant.clone(other), merchant.clone(other).functions.transfer_token(token.address, thief, 2_000, other)),
    ]
    # Every re-entry is attempted during a sweep that deploys and then moves `salt`'s balance.
    for target, call in payloads:
        _pay(merchant, token, merchant.address(salt), 1_000)  # the first sweep deploys it
        data = call._encode_transaction_data()
        assert merchant.send(token.functions.arm(target.address, data))["status"] == 1

        # When the relayer sweeps `salt`
        assert merchant.sweep(token, [salt])["status"] == 1

    # Then each re-entry was attempted and refused; the sweeps moved only `salt`'s money
    assert token.functions.reentry_attempts().call() == 3
    assert token.functions.reentry_successes().call() == 0
    assert _balance(token, merchant.treasury) == 1 + 1_000 * 3
    assert _balance(token, merchant.address(other)) == 2_000
    assert _balance(token, thief) == 0
    assert merchant.factory.functions.nonce_used(9).call() is False

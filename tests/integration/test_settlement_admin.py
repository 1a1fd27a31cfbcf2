"""The operator's settlement commands (`python -m usdt_gateway.admin settlement-status` and
`release-deposits`) on anvil, with the relayer's key in the local KMS: what they print about a
network whose settlement is running, and a held deposit released and swept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from web3 import Web3

from tests.integration import test_settlement_function
from tests.integration.test_settlement_function import RevertingEstimates, World
from usdt_gateway.settlement import candidates
from usdt_gateway.settlement.relayer import read_state

world = test_settlement_function.world  # the fixture: a contract-mode merchant on anvil, the relayer in KMS


def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Run the CLI; returns (exit code, parsed stdout or None, stderr)."""
    from usdt_gateway.admin import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def fail_three_times(world: World) -> dict[str, Any]:
    """A paid order whose deposit's sweeps failed as often as the policy allows: held."""
    order = world.paid_order("25.00")
    working = world.job.endpoints
    world.job.endpoints = [RevertingEstimates(working[0])]
    for _ in range(candidates.MAX_FAILURES):
        world.clock.advance(1_000)  # the settlements close one after another
        assert world.run()["marked"]
    world.job.endpoints = working
    return order


def status_of(capsys: pytest.CaptureFixture[str], world: World, *argv: str) -> dict[str, Any]:
    code, out, err = admin(capsys, "settlement-status", "--network", world.network, *argv)
    assert (code, err) == (0, "")
    (network,) = out["networks"]
    assert network["network"] == world.network
    report: dict[str, Any] = network
    return report


def test_settlement_status_shows_the_relayer_the_sweep_in_flight_and_what_waits(
    world: World, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    anvil = world.contracts.chain.anvil
    settings_env.setenv("RELAYER_KEY_ID", world.config.relayer_key_id)
    settings_env.setenv("RPC_ENDPOINTS", json.dumps({world.network: ["http://127.0.0.1:9", anvil.url]}))
    merchant = world.merchant.merchant_id
    # Given a deposit held after three failed sweeps, a sweep in flight for a second order, and a
    # third order paid below the minimum while it is in flight
    held = fail_three_times(world)
    swept = world.paid_order("30.00")
    started = world.clock.ms
    assert world.run()["outcome"] == "pending"
    world.paid_order("4.00")
    world.clock.advance(90_000)
    # When the operator asks for the network's settlement status
    report = status_of(capsys, world)
    # Then it names the relayer's address, from the key's public key, and its balance now
    relayer = report["relayer"]
    assert relayer["address"] == world.job.signer.address and relayer["keyId"] == world.config.relayer_key_id
    balance = world.contracts.chain.w3.eth.get_balance(Web3.to_checksum_address(relayer["address"]))
    assert relayer["balanceWei"] == str(balance) and relayer["endpoint"] == "127.0.0.1:" + anvil.url.split(":")[-1]
    assert 0 < balance < 10**19  # anvil mined the sweep at once: its gas is paid
    # And the sweep in flight, as the relayer last recorded it: its step, nonce, transaction and
    # age, its deposit claimed
    flight = report["inFlight"]
    state = read_state(world.network)
    assert state is not None and state.sweep is not None
    (sent,) = state.sweep.attempts
    assert (flight["step"], flight["nonce"], flight["txHash"], flight["transactions"]) == (
        "broadcast",
        0,
        sent.tx_hash,
        1,
    )
    assert (flight["merchantId"], flight["createdAt"], flight["ageSeconds"]) == (merchant, started, 90)
    assert report["nextNonce"] == 1 and report["lease"]["held"] is False
    (claimed,) = report["claimed"]
    assert (claimed["settlementId"], claimed["deposits"], claimed["amount"]) == (flight["settlementId"], 1, "30.00")
    # And what waits, per merchant: the payment made since
    (waiting,) = report["waiting"]
    assert (waiting["merchantId"], waiting["deposits"], waiting["amount"], waiting["units"]) == (
        merchant,
        1,
        "4.00",
        4_000_000,
    )
    # And the held deposit, with its three failures
    (stuck,) = report["held"]
    assert (stuck["orderId"], stuck["amount"], stuck["failures"], stuck["address"]) == (
        held["orderId"],
        "25.00",
        3,
        held["address"],
    )
    assert report["heldAfterFailures"] == 3
    # And the last settlements, newest first: the three that failed
    assert [s["status"] for s in report["settlements"]] == ["failed"] * 3
    assert [s["closedAt"] for s in report["settlements"]] == sorted(
        (s["closedAt"] for s in report["settlements"]), reverse=True
    )
    assert all("execution reverted" in s["reason"] and s["amount"] == "25.00" for s in report["settlements"])
    # And once the sweep is final, it heads that list, completed, and nothing is in flight
    world.contracts.chain.mine(1)
    world.settle()
    after = status_of(capsys, world, "--recent", "2")
    assert (after["settlements"][0]["settlementId"], after["settlements"][0]["status"]) == (
        flight["settlementId"],
        "completed",
    )
    assert len(after["settlements"]) == 2 and after["inFlight"] is None and after["claimed"] == []
    assert world.funds(swept) == "swept"


def test_settlement_status_says_what_it_cannot_read(
    world: World, settings_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no relayer key configured, and no RPC endpoint for the network
    settings_env.delenv("RELAYER_KEY_ID", raising=False)
    settings_env.setenv("RPC_ENDPOINTS", "{}")
    # When the status is asked for, Then it says there is no key
    relayer = status_of(capsys, world)["relayer"]
    assert relayer["address"] is None and "no relayer key" in relayer["note"]
    # And with the key given, it prints the address and says the balance was not read, and why
    relayer = status_of(capsys, world, "--relayer-key-id", world.config.relayer_key_id)["relayer"]
    assert relayer["address"] == world.job.signer.address and relayer["balanceWei"] is None
    assert relayer["note"] == f"no RPC endpoint configured for {world.network} (RPC_ENDPOINTS): balance not read"
    # And a network that is not enabled is a usage error
    code, _, err = admin(capsys, "settlement-status", "--network", "solana")
    assert code == 2 and json.loads(err)["error"] == "CONFIG_ERROR"


def test_release_deposits_sweeps_the_held_deposits_again(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deposit held after three failed sweeps
    order = fail_three_times(world)
    (held,) = candidates.held(world.network)
    assert world.run()["claimed"] is None
    # When the operator releases another merchant's held deposits, Then nothing is released
    code, out, _ = admin(capsys, "release-deposits", "--network", world.network, "--merchant", "m_other")
    assert code == 0 and (out["released"], out["changed"]) == ([], [])
    # When the operator releases the merchant's
    code, out, _ = admin(
        capsys, "release-deposits", "--network", world.network, "--merchant", world.merchant.merchant_id
    )
    # Then it prints the deposit released, whose failures are reset
    assert code == 0
    (released,) = out["released"]
    assert (released["depositId"], released["amount"], released["failures"]) == (held.deposit_id, "25.00", 3)
    assert [c.failures for c in candidates.unsettled(world.network)] == [0]
    # And a release made from a stale read changes nothing
    assert candidates.release(held) is False
    # And the next runs sweep it to the treasury
    world.settle()
    assert world.balance(world.contracts.treasury) == 25_000_000 and world.funds(order) == "swept"
    # And releasing again finds nothing held
    code, out, _ = admin(capsys, "release-deposits", "--network", world.network)
    assert code == 0 and out["released"] == []

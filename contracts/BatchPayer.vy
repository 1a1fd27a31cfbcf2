# pragma version 0.4.3
"""
@title Batch payer
@notice Pays several recipients in one transaction: token.transferFrom(msg.sender, to, amount)
        for each pair. The payer approves this contract on the token first. The Transfer logs
        come from the token, while the transaction's `to` is this contract (a deposit made
        through another contract).
"""

from ethereum.ercs import IERC20

MAX_PAYMENTS: constant(uint256) = 64


@external
def pay(token: address, recipients: DynArray[address, MAX_PAYMENTS], amounts: DynArray[uint256, MAX_PAYMENTS]):
    assert len(recipients) == len(amounts), "length mismatch"
    for i: uint256 in range(len(recipients), bound=MAX_PAYMENTS):
        assert extcall IERC20(token).transferFrom(msg.sender, recipients[i], amounts[i]), "transferFrom failed"

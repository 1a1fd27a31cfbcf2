# pragma version 0.4.3
"""
@title Test USDT whose transfer returns false on success
@notice Like Tron's USDT (TR7NHq…Lj6t): `transfer` succeeds yet returns false, so a caller
        that trusts the return value reverts. For the settlement tests.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    amount: uint256

balanceOf: public(HashMap[address, uint256])


@external
def mint(to: address, amount: uint256):
    """
    @notice Create `amount` units for `to` (anyone may: a test token).
    @param to The recipient.
    @param amount Token units.
    """
    self.balanceOf[to] += amount
    log Transfer(sender=empty(address), receiver=to, amount=amount)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Send `amount` to `to`; returns false although it succeeded, like Tron USDT.
    @param to The recipient.
    @param amount Token units.
    @return False, always.
    """
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=msg.sender, receiver=to, amount=amount)
    return False

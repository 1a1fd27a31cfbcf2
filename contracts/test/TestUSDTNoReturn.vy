# pragma version 0.4.3
"""
@title Test USDT whose transfer returns nothing
@notice Like Ethereum's USDT (0xdAC17F…1ec7): `transfer` returns no value, so a caller that
        expects a bool reverts. For the settlement tests.
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
def transfer(to: address, amount: uint256):
    """
    @notice Send `amount` to `to`; returns nothing, like Ethereum USDT.
    @param to The recipient.
    @param amount Token units.
    """
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=msg.sender, receiver=to, amount=amount)

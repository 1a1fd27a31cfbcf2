# pragma version 0.4.3
"""
@title Hostile test token
@notice A token that, once armed, calls back into another contract from inside `transfer`
        (before it moves any balance) and records whether that call succeeded; or, when lazy,
        reports success without moving anything. For the settlement security tests.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    amount: uint256

balanceOf: public(HashMap[address, uint256])
target: public(address)
payload: public(Bytes[2048])
armed: public(bool)
lazy: public(bool)
reentry_attempts: public(uint256)
reentry_successes: public(uint256)


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
def arm(target: address, payload: Bytes[2048]):
    """
    @notice Make the next `transfer` call `target` with `payload` first.
    @param target The contract to re-enter.
    @param payload The calldata of the re-entering call.
    """
    self.target = target
    self.payload = payload
    self.armed = True


@external
def set_lazy(lazy: bool):
    """
    @notice When lazy, `transfer` returns true and moves nothing.
    @param lazy The new mode.
    """
    self.lazy = lazy


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Send `amount` to `to`, after the armed call if any.
    @param to The recipient.
    @param amount Token units.
    @return True, always (even when lazy).
    """
    if self.armed:
        self.armed = False  # once: a successful re-entry must not recurse forever
        self.reentry_attempts += 1
        if raw_call(self.target, self.payload, revert_on_failure=False):
            self.reentry_successes += 1
    if self.lazy:
        return True
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=msg.sender, receiver=to, amount=amount)
    return True

# pragma version 0.4.3
# pragma evm-version cancun
"""
@title Deposit
@notice The code behind every deposit address of every DepositFactory on a chain. A deposit
        address is an EIP-1167 clone of this contract, deployed with CREATE2 by a factory; it
        holds the tokens paid to it until its factory moves them.
@dev A clone obeys only the factory that deployed it: the caller must be the CREATE2 deployer
     of the clone's own address for the salt it names, which only that factory can be. The clone
     runs this code by DELEGATECALL, so `self` is the clone and the immutable below (kept in this
     contract's code) is the same for every clone. One implementation serves every factory of a
     chain, and no clone keeps any storage.
"""

# Vyper's `create_minimal_proxy_to` init code: a 9-byte loader, then the 45-byte EIP-1167 runtime
# with the implementation's address in the middle.
PROXY_HEAD: constant(Bytes[19]) = x"602d3d8160093d39f3363d3d373d3d3d363d73"
PROXY_TAIL: constant(Bytes[15]) = x"5af43d82803e903d91602b57fd5bf3"
TRANSFER: constant(bytes4) = method_id("transfer(address,uint256)", output_type=bytes4)

# keccak256 of the init code of a clone of this contract.
CLONE_INIT_CODE_HASH: public(immutable(bytes32))


@deploy
def __init__():
    """
    @notice Record the init code hash of clones of this contract, to check a caller against.
    """
    CLONE_INIT_CODE_HASH = keccak256(concat(PROXY_HEAD, convert(self, bytes20), PROXY_TAIL))


@external
def transfer_token(token: address, to: address, amount: uint256, salt: bytes32):
    """
    @notice Send `amount` of `token` held by this deposit address to `to`.
    @dev Only the factory that deployed this clone with `salt` may call. The token's return value
         is ignored (Ethereum USDT returns nothing, Tron USDT returns false on success); the
         factory counts the transfer by the change of balance instead.
    @param token The token contract.
    @param to The recipient, chosen by the factory.
    @param amount Token units to send.
    @param salt The CREATE2 salt this clone was deployed with.
    """
    created: bytes32 = keccak256(concat(x"ff", convert(msg.sender, bytes20), salt, CLONE_INIT_CODE_HASH))
    assert convert(convert(created, uint256) & convert(max_value(uint160), uint256), address) == self, "not the factory"
    raw_call(token, abi_encode(to, amount, method_id=TRANSFER))

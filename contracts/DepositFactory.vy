# pragma version 0.4.3
# pragma evm-version cancun
"""
@title Deposit factory
@notice One merchant's deposit addresses on one chain. Each is the CREATE2 address of a minimal
        clone of a Deposit contract under this factory, known before anything is deployed. Anyone
        may sweep deposit addresses, and a sweep pays only the treasury fixed at deployment; any
        other movement of money (a refund) needs the owner's EIP-712 signature.
@dev The relayer that pays gas holds no power: `sweep` has one destination, and `refund` runs
     only with a signature by `OWNER`, who is the merchant (a cold key, or an AWS KMS key: a plain
     secp256k1 ECDSA signature with low s). Transfers are counted by balance changes, never by the
     token's return value. Both entry points share one re-entrancy lock.
"""

interface Deposit:
    def transfer_token(token: address, to: address, amount: uint256, salt: bytes32): nonpayable

interface Token:
    def balanceOf(holder: address) -> uint256: view


event DepositDeployed:
    deposit: indexed(address)
    salt: bytes32

event Swept:
    token: indexed(address)
    deposit: indexed(address)
    amount: uint256

event Refunded:
    token: indexed(address)
    deposit: indexed(address)
    to: indexed(address)
    amount: uint256
    nonce: uint256


MAX_BATCH: constant(uint256) = 256
# Same bytes as Deposit.vy: the init code of `create_minimal_proxy_to`.
PROXY_HEAD: constant(Bytes[19]) = x"602d3d8160093d39f3363d3d373d3d3d363d73"
PROXY_TAIL: constant(Bytes[15]) = x"5af43d82803e903d91602b57fd5bf3"
# secp256k1 n / 2: a signature with a higher s is the malleable twin of a valid one (EIP-2).
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
NAME_HASH: constant(bytes32) = keccak256("USDT Gateway Deposits")
VERSION_HASH: constant(bytes32) = keccak256("1")
REFUND_TYPEHASH: constant(bytes32) = keccak256(
    "Refund(address token,bytes32 salt,address to,uint256 amount,uint256 nonce,uint256 deadline)"
)

# Where every sweep pays; fixed for the factory's life.
TREASURY: public(immutable(address))
# The merchant's key: only its signature authorises a refund.
OWNER: public(immutable(address))
# The Deposit contract every deposit address of this factory clones.
DEPOSIT_IMPLEMENTATION: public(immutable(address))
# keccak256 of a deposit clone's init code: with this factory and a salt, it fixes the address.
DEPOSIT_INIT_CODE_HASH: public(immutable(bytes32))
# Refund nonces already spent: a signed refund runs once.
nonce_used: public(HashMap[uint256, bool])


@deploy
def __init__(treasury: address, owner: address, deposit_implementation: address):
    """
    @notice Fix the merchant's treasury and owner; a new treasury means a new factory.
    @param treasury Where every sweep pays.
    @param owner The key whose EIP-712 signature authorises refunds.
    @param deposit_implementation The chain's Deposit contract that every deposit address clones.
    """
    assert treasury != empty(address), "treasury is the zero address"
    assert owner != empty(address), "owner is the zero address"
    assert deposit_implementation.codesize > 0, "deposit implementation has no code"
    TREASURY = treasury
    OWNER = owner
    DEPOSIT_IMPLEMENTATION = deposit_implementation
    DEPOSIT_INIT_CODE_HASH = keccak256(concat(PROXY_HEAD, convert(deposit_implementation, bytes20), PROXY_TAIL))


@internal
@view
def _deposit_address(salt: bytes32) -> address:
    created: bytes32 = keccak256(concat(x"ff", convert(self, bytes20), salt, DEPOSIT_INIT_CODE_HASH))
    return convert(convert(created, uint256) & convert(max_value(uint160), uint256), address)


@internal
def _deployed(salt: bytes32) -> address:
    deposit: address = self._deposit_address(salt)
    if deposit.codesize == 0:
        created: address = create_minimal_proxy_to(DEPOSIT_IMPLEMENTATION, salt=salt)
        assert created == deposit, "deployed elsewhere"
        log DepositDeployed(deposit=deposit, salt=salt)
    return deposit


@internal
def _move(token: address, deposit: address, salt: bytes32, to: address, amount: uint256, before: uint256):
    extcall Deposit(deposit).transfer_token(token, to, amount, salt)
    # Counted by the balance change: a token may return nothing, or false on success.
    assert staticcall Token(token).balanceOf(deposit) + amount == before, "balance did not move"


@external
@view
def deposit_address(salt: bytes32) -> address:
    """
    @notice The deposit address of `salt`, deployed or not.
    @param salt The CREATE2 salt (the gateway derives one per order).
    @return The CREATE2 address of the Deposit clone for `salt` under this factory.
    """
    return self._deposit_address(salt)


@external
@nonreentrant
def sweep(token: address, salts: DynArray[bytes32, MAX_BATCH]) -> uint256:
    """
    @notice Move the whole `token` balance of each deposit address to the treasury, deploying
            the deposit contracts that hold money and are not deployed yet.
    @dev Anyone may call: the destination is always TREASURY. An empty address is skipped without
         a deployment; a repeated salt finds nothing left.
    @param token The token contract to sweep.
    @param salts The salts of the deposit addresses to sweep (at most 256).
    @return The token units taken from the deposit addresses.
    """
    total: uint256 = 0
    for salt: bytes32 in salts:
        deposit: address = self._deposit_address(salt)
        amount: uint256 = staticcall Token(token).balanceOf(deposit)
        if amount == 0:
            continue
        self._deployed(salt)
        self._move(token, deposit, salt, TREASURY, amount, amount)
        log Swept(token=token, deposit=deposit, amount=amount)
        total += amount
    return total


@internal
@view
def _domain_separator() -> bytes32:
    # Built per call from chain.id, so a signature stays bound to its chain even after a fork.
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@internal
@view
def _refund_digest(
    token: address, salt: bytes32, to: address, amount: uint256, nonce: uint256, deadline: uint256
) -> bytes32:
    data: bytes32 = keccak256(abi_encode(REFUND_TYPEHASH, token, salt, to, amount, nonce, deadline))
    return keccak256(concat(x"1901", self._domain_separator(), data))


@external
@view
def domain_separator() -> bytes32:
    """
    @notice The EIP-712 domain separator of this factory on this chain.
    @return keccak256 of the domain (name "USDT Gateway Deposits", version "1", chainId, this factory).
    """
    return self._domain_separator()


@external
@view
def refund_digest(
    token: address, salt: bytes32, to: address, amount: uint256, nonce: uint256, deadline: uint256
) -> bytes32:
    """
    @notice The EIP-712 digest the owner signs to authorise a refund.
    @param token The token contract.
    @param salt The salt of the deposit address to refund from.
    @param to The recipient of the refund.
    @param amount Token units to refund.
    @param nonce Any number not used before by this factory.
    @param deadline Last block timestamp (seconds) at which the refund may run.
    @return The digest of the typed data Refund(token, salt, to, amount, nonce, deadline).
    """
    return self._refund_digest(token, salt, to, amount, nonce, deadline)


@external
@nonreentrant
def refund(
    token: address,
    salt: bytes32,
    to: address,
    amount: uint256,
    nonce: uint256,
    deadline: uint256,
    signature: Bytes[65],
):
    """
    @notice Move `amount` of `token` from a deposit address to `to`, as the owner signed.
    @dev Anyone may submit the owner's signature. A nonce works once; after `deadline` the
         signature is void. Only 65-byte (r, s, v) signatures with low s recover.
    @param token The token contract.
    @param salt The salt of the deposit address to refund from.
    @param to The recipient of the refund.
    @param amount Token units to refund.
    @param nonce Any number not used before by this factory.
    @param deadline Last block timestamp (seconds) at which the refund may run.
    @param signature The owner's signature of `refund_digest(...)`: r ‖ s ‖ v, v 27 or 28.
    """
    assert block.timestamp <= deadline, "signature expired"
    assert not self.nonce_used[nonce], "nonce already used"
    assert len(signature) == 65, "signature is not 65 bytes"
    r: uint256 = convert(extract32(signature, 0), uint256)
    s: uint256 = convert(extract32(signature, 32), uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert s <= HALF_N, "signature s is high"
    assert v == 27 or v == 28, "signature v is not 27 or 28"
    digest: bytes32 = self._refund_digest(token, salt, to, amount, nonce, deadline)
    assert ecrecover(digest, v, r, s) == OWNER, "not signed by the owner"
    self.nonce_used[nonce] = True
    deposit: address = self._deployed(salt)
    self._move(token, deposit, salt, to, amount, staticcall Token(token).balanceOf(deposit))
    log Refunded(token=token, deposit=deposit, to=to, amount=amount, nonce=nonce)

import base64

import png
import pytest
import zxingcpp

from usdt_gateway.payment_uri import payment_uri
from usdt_gateway.qr import qr_png_data_uri

USDT_ETH = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
USDT_BSC = "0x55d398326f99059fF775485246999027B3197955"
RECIPIENT_EVM = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
USDT_TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
RECIPIENT_TRON = "TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH"
PNG_PREFIX = "data:image/png;base64,"


def _decode_qr(data_uri: str) -> list[str]:
    """Decode with zxing-cpp from a plain grayscale buffer: the venv has neither Pillow nor numpy."""
    assert data_uri.startswith(PNG_PREFIX)
    width, height, rows, _ = png.Reader(bytes=base64.b64decode(data_uri[len(PNG_PREFIX) :])).asDirect()
    pixels = bytearray()
    for row in rows:  # 1-bit greyscale: 1 = white, 0 = black
        pixels.extend(255 if value else 0 for value in row)
    image = memoryview(bytes(pixels)).cast("B", (height, width))
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def test_evm_qr_decodes_to_eip681_uri() -> None:
    # Given an EIP-681 URI for 50.00 USDT on Ethereum
    uri = payment_uri(
        family="evm", token_contract=USDT_ETH, chain_id=1, recipient=RECIPIENT_EVM, amount_base_units=50_000_000
    )
    # When it is rendered as a QR code and scanned back
    decoded = _decode_qr(qr_png_data_uri(uri))
    # Then the scanner reads exactly the URI
    assert decoded == [uri]


def test_tron_qr_decodes_to_address() -> None:
    # Given a Tron payment (bare address)
    uri = payment_uri(
        family="tron", token_contract=USDT_TRON, chain_id=0, recipient=RECIPIENT_TRON, amount_base_units=50_000_000
    )
    # When it is rendered and scanned back
    decoded = _decode_qr(qr_png_data_uri(uri))
    # Then the scanner reads the address
    assert decoded == [RECIPIENT_TRON]


def test_qr_png_has_quiet_zone() -> None:
    # Given a rendered QR code
    width, height, rows, _ = png.Reader(
        bytes=base64.b64decode(qr_png_data_uri(RECIPIENT_TRON)[len(PNG_PREFIX) :])
    ).read()
    first_row = list(next(iter(rows)))
    # Then it is square with an all-white top edge (the quiet zone scanners need)
    assert width == height
    assert all(first_row)


def test_payment_uri_evm_6_decimals() -> None:
    # Given 12.5 USDT on Ethereum (6 decimals) in base units
    # When the URI is built from lowercase addresses
    uri = payment_uri(
        family="evm",
        token_contract=USDT_ETH.lower(),
        chain_id=1,
        recipient=RECIPIENT_EVM.lower(),
        amount_base_units=12_500_000,
    )
    # Then it is EIP-681 with checksummed addresses and the amount as plain integer digits
    assert uri == f"ethereum:{USDT_ETH}@1/transfer?address={RECIPIENT_EVM}&uint256=12500000"


def test_payment_uri_evm_18_decimals_keeps_every_digit() -> None:
    # Given 1234.567890123456789 BSC-USD (18 decimals: beyond float precision) in base units
    amount = 1_234_567_890_123_456_789_000
    # When the URI is built
    uri = payment_uri(
        family="evm", token_contract=USDT_BSC, chain_id=56, recipient=RECIPIENT_EVM, amount_base_units=amount
    )
    # Then the amount is written exactly, without exponent or rounding
    assert uri == f"ethereum:{USDT_BSC}@56/transfer?address={RECIPIENT_EVM}&uint256=1234567890123456789000"


def test_payment_uri_tron_is_bare_address() -> None:
    # Given a Tron recipient in hex form
    # When the payment URI is built
    uri = payment_uri(
        family="tron",
        token_contract=USDT_TRON,
        chain_id=0,
        recipient="41c8599111f29c1e1e061265b4af93ea1f274ad78a",
        amount_base_units=1,
    )
    # Then it is just the base58 address (Tron has no standard payment URI)
    assert uri == RECIPIENT_TRON


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"amount_base_units": 0}, "positive integer"),
        ({"amount_base_units": -1}, "positive integer"),
        ({"amount_base_units": True}, "positive integer"),
        ({"chain_id": 0}, "chain_id"),
        ({"recipient": RECIPIENT_TRON}, "40 hex digits"),
        ({"family": "btc"}, "unknown chain family"),
    ],
)
def test_payment_uri_rejects_bad_input(kwargs: dict[str, object], reason: str) -> None:
    # Given valid EVM arguments with one field spoiled
    args: dict[str, object] = {
        "family": "evm",
        "token_contract": USDT_ETH,
        "chain_id": 1,
        "recipient": RECIPIENT_EVM,
        "amount_base_units": 1,
    } | kwargs
    # When / Then it is refused with a reason
    with pytest.raises(ValueError, match=reason):
        payment_uri(**args)  # type: ignore[arg-type]

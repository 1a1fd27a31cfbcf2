"""QR code as a PNG data URI, rendered by pypng: Pillow would add 22 MB to the Lambda package."""

from __future__ import annotations

import base64
import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pure import PyPNGImage

BOX_SIZE = 6  # pixels per module: an EIP-681 URI (version ~8, 57 modules with border) is ~340 px
BORDER = 4  # the quiet zone the QR spec requires


def qr_png_data_uri(text: str) -> str:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX_SIZE, border=BORDER, image_factory=PyPNGImage)
    qr.add_data(text)
    qr.make(fit=True)
    buffer = io.BytesIO()
    qr.make_image().save(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

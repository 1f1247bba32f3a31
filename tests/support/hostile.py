"""Small files that decode to huge images: the uploads an attacker (or an unlucky folder) sends.

Each is a real, valid file of at most a few MB. The PNGs are written row by row through zlib, so
making a 40-megapixel one costs a second and no memory. Used by tests/test_hostile.py and
bench/hostile.py.
"""

import io
import struct
import zlib

from PIL import Image

# PNG colour types and bytes per pixel at 8 bits: grey, RGB, palette, RGBA.
_GREY, _RGB, _PALETTE, _RGBA = 0, 2, 3, 6
_CHANNELS = {_GREY: 1, _RGB: 3, _PALETTE: 1, _RGBA: 4}


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, colour_type=_GREY, bit_depth=8, body=True, extra=b""):
    """A PNG of zeros claiming width x height. body=False leaves the pixels out (a header bomb)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    row = b"\x00" * (1 + width * _CHANNELS[colour_type] * bit_depth // 8)  # filter byte + pixels
    z = zlib.compressobj(9)
    if body:
        step = max(1, (1 << 20) // len(row))  # about 1 MB of raw rows per call
        data = [z.compress(row * min(step, height - y)) for y in range(0, height, step)]
    else:
        data = [z.compress(row)]
    idat = b"".join(data) + z.flush()
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_header(width, height):
    """A GIF whose logical screen and one frame claim width x height."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) +
            b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def jpeg(width, height, quality=50):
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def cases(max_pixels):
    """name -> (bytes, accepted): `accepted` says whether a budget of `max_pixels` lets it through."""
    side = int((max_pixels * 0.99) ** 0.5)  # just under the budget: the worst image still decoded
    palette = _chunk(b"PLTE", b"\x00\x00\x00" * 2) + _chunk(b"tRNS", b"\x00")
    return {
        "1x300000 grey PNG": (png(1, 300_000), True),
        "1x100000 grey PNG": (png(1, 100_000), True),
        "300000x1 grey PNG": (png(300_000, 1), True),
        f"{side}x{side} RGBA PNG": (png(side, side, _RGBA), True),
        f"{side}x{side} palette PNG with transparency": (png(side, side, _PALETTE, extra=palette), True),
        f"{side}x{side} 16-bit grey PNG": (png(side, side, _GREY, bit_depth=16), True),
        "9000x9000 JPEG (decoded at 1/8)": (jpeg(9000, 9000), True),
        "12000x12000 RGBA PNG": (png(12_000, 12_000, _RGBA), False),
        "12000x12000 RGBA PNG header only": (png(12_000, 12_000, _RGBA, body=False), False),
        "65535x65535 GIF header": (gif_header(65_535, 65_535), False),
    }


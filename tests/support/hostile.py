"""Small files that decode to huge images: the uploads an attacker (or an unlucky folder) sends.

Each is a real, valid file of at most a few MB. The PNGs' rows are compressed a megabyte at
a time through zlib, so making a 40-megapixel one costs no memory and a fraction of a second; WebP, AVIF, TIFF and HEIC come from
Pillow's encoders. Used by tests/test_hostile.py and bench/hostile.py.
"""

import io
import json
import os
import struct
import subprocess
import sys
import zlib

from PIL import Image

from support import ROOT

#: The checkout: the decoder measured by decoder_peaks is its tools/images.py.

# PNG colour types and bytes per pixel at 8 bits: grey, RGB, palette, RGBA.
_GREY, _RGB, _PALETTE, _RGBA = 0, 2, 3, 6
_CHANNELS = {_GREY: 1, _RGB: 3, _PALETTE: 1, _RGBA: 4}


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, colour_type=_GREY, bit_depth=8, body=True, extra=b""):
    """A PNG of zeros claiming width x height. body=False leaves the pixels out (a header bomb)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    row = b"\x00" * (1 + width * _CHANNELS[colour_type] * bit_depth // 8)  # filter byte + pixels
    # About 1 MB of rows is compressed once and repeated (after a full flush the same rows make the same
    # bytes), as raw deflate with the zlib header and checksum written here.
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    step = max(1, (1 << 20) // len(row))
    blocks, rest = divmod(height, step) if body else (0, 1)
    block = z.compress(row * step) + z.flush(zlib.Z_FULL_FLUSH) if blocks else b""
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(row * step, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    idat = b"\x78\xda" + block * blocks + z.compress(row * rest) + z.flush() + struct.pack(">I", checksum)
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_header(width, height):
    """A GIF whose logical screen and one frame claim width x height."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) +
            b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00;")


def jpeg(width, height, quality=50, **options):
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "JPEG", quality=quality, **options)
    return buf.getvalue()


def encoded(mode, size, fmt, **options):
    """A blank image of `mode` and `size` in `fmt` (Pillow's encoder)."""
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, fmt, **options)
    return buf.getvalue()


def _under(pixels):
    """The side of the largest square under `pixels`."""
    return int((pixels * 0.99) ** 0.5)


def cases(max_pixels, slow=False):
    """name -> (bytes, accepted): `accepted` says whether a budget of `max_pixels` lets it through.

    Each format is there just under its own budget (max_pixels / tools.images.DECODE_COST): the costliest
    image of that format the decoder accepts. 1535x23025 is the costliest shape for a 224 px model:
    15:1, and only halved by Image.reduce before conversion. slow=True adds a HEIC (20 s to encode)."""
    from tools.images import DECODE_COST

    side = _under(max_pixels)  # just under the budget: the worst image still decoded
    palette = _chunk(b"PLTE", b"\x00\x00\x00" * 2) + _chunk(b"tRNS", b"\x00")
    webp, avif, tiff, heic = (_under(max_pixels / DECODE_COST[f]) for f in ("WEBP", "AVIF", "TIFF", "HEIF"))
    progressive = _under(max_pixels / 1.5)  # 2 bytes per pixel and band for 3 bands (4:4:4)
    out = {
        "1x300000 grey PNG": (png(1, 300_000), False),
        "300000x1 grey PNG": (png(300_000, 1), False),
        "1x39000000 grey PNG (thin strip under the pixel budget)": (png(1, 39_000_000), False),
        "1535x23025 RGBA PNG (15:1)": (png(1535, 23_025, _RGBA), 1535 * 23_025 <= max_pixels),
        f"{side}x{side} RGBA PNG": (png(side, side, _RGBA), True),
        f"{side}x{side} palette PNG with transparency": (png(side, side, _PALETTE, extra=palette), True),
        f"{side}x{side} 16-bit grey PNG": (png(side, side, _GREY, bit_depth=16), True),
        "9000x9000 JPEG (decoded at 1/8)": (jpeg(9000, 9000), True),
        "6400x6400 progressive JPEG (800x800 at 1/8)": (jpeg(6400, 6400, progressive=True), False),
        f"{progressive}x{progressive} progressive JPEG, 4:4:4": (
            encoded("RGB", (progressive,) * 2, "JPEG", quality=50, progressive=True, subsampling=0), True),
        f"{webp}x{webp} RGBA WebP": (encoded("RGBA", (webp, webp), "WEBP", lossless=True, quality=0, method=0), True),
        f"{avif}x{avif} AVIF": (encoded("RGB", (avif, avif), "AVIF", quality=10, speed=10), True),
        f"{tiff}x{tiff} float TIFF, one strip": (
            encoded("F", (tiff, tiff), "TIFF", compression="tiff_adobe_deflate", strip_size=2 ** 31), True),
        "12000x12000 RGBA PNG": (png(12_000, 12_000, _RGBA), False),
        "12000x12000 RGBA PNG header only": (png(12_000, 12_000, _RGBA, body=False), False),
        "65535x65535 GIF header": (gif_header(65_535, 65_535), False),
    }
    if slow:
        from tools.images import _register_heif

        _register_heif()
        out[f"{heic}x{heic} HEIC"] = (encoded("RGB", (heic, heic), "HEIF", quality=10), True)
    return out


_PEAKS = r"""
import io, json, os, sys
sys.path.insert(0, os.getcwd())
from PIL import Image
from tools import images

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

size = int(sys.argv[1])
warm_up = io.BytesIO()
Image.new("RGB", (640, 480)).save(warm_up, "JPEG")
images.load_resized(warm_up.getvalue(), size)
warm = status("VmRSS")  # peaks above it: what an earlier image left behind counts too (an upper bound)
for path in sys.argv[2:]:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # a new peak window (Linux >= 4.0); where refused, VmHWM is the peak so far
    except OSError:
        pass
    try:
        outcome = list(images.load_resized(path, size).shape)
    except images.ImageDecodeError as e:
        outcome = f"{type(e).__name__}: {e}"
    print(json.dumps([os.path.basename(path), (status("VmHWM") - warm) / 2 ** 20, outcome]), flush=True)
"""


def decoder_peaks(named, input_size, folder, python=sys.executable, root=None):
    """{name: (peak RSS above the warm process in MB, the decoded shape or the error)} of
    tools.images.load_resized on each of `named` (name -> bytes), in one fresh process: what the
    decoder alone costs, without a server around it."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for i, (name, data) in enumerate(named.items()):
        paths[f"{i:03d}"] = name
        with open(os.path.join(folder, f"{i:03d}"), "wb") as f:
            f.write(data)
    out = subprocess.run([python, "-c", _PEAKS, str(input_size), *(os.path.join(folder, p) for p in paths)],
                         cwd=root or ROOT, capture_output=True, text=True, check=True)
    return {paths[file]: (peak, outcome) for file, peak, outcome in map(json.loads, out.stdout.splitlines())}


def trickle(port, count, drip, interval, seconds, burst=b"", step=1):
    """`count` connections to 127.0.0.1:`port` that send `burst`, then `drip` `step` bytes every
    `interval` seconds (never silent for longer), for at most `seconds`: slow-loris clients. Returns,
    for each, (seconds until the server closed it, or None if it stayed open; all the server sent)."""
    import selectors
    import socket
    import time

    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    start = time.monotonic()
    got, closed = [b""] * count, [None] * count
    with selectors.DefaultSelector() as selector:
        for i, s in enumerate(socks):
            if burst:
                s.sendall(burst)
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ, i)
        sent, next_drip = 0, start
        while time.monotonic() - start < seconds and None in closed:
            now = time.monotonic()
            if now >= next_drip and sent < len(drip):
                for i, s in enumerate(socks):
                    if closed[i] is None:
                        try:
                            s.send(drip[sent:sent + step])
                        except OSError:
                            pass  # closed: the read below says when
                sent, next_drip = sent + step, next_drip + interval
            for key, _ in selector.select(timeout=max(0.0, min(0.1, next_drip - time.monotonic()))):
                i = key.data
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if data:
                    got[i] += data
                else:
                    closed[i] = time.monotonic() - start
                    selector.unregister(key.fileobj)
    for s in socks:
        s.close()
    return list(zip(closed, got))

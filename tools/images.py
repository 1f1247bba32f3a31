"""Turn any photo a user may have (path or bytes) into an RGB uint8 array of a known size.

One decoder for training, prediction and serving, so all three see the same pixels:
- a budget, checked from the header before anything is decoded: at most MAX_PIXELS decoded pixels
  (after JPEG draft scaling), and no side more than MAX_SIDE_RATIO times the other (no camera makes
  such a photo, and a thin strip costs memory per row: a 76 KB 1x39,000,000 PNG under the pixel
  budget took 0.8 GB to decode), so that any image under the limits costs at most about one decoded
  copy of itself (40 Mpx RGBA: 160 MB) plus a copy a quarter of that size;
- large JPEGs are decoded at reduced scale (PIL `draft`, 1/2..1/8) and other large images are
  shrunk by an integer factor (`Image.reduce`) right after decoding; the shrinking and the
  conversion to RGB run in bands of rows and the decoded image is released before the rest, so mode
  conversions and the resize work on a small image: a 12 MP phone photo decodes several times
  faster and memory stays near one copy of the decoded image;
- EXIF orientation is applied (phones store portrait photos sideways);
- every mode becomes RGB: L, LA, P, RGBA (composited on white), CMYK, 16-bit and float images;
- HEIC/HEIF photos (iPhones, many Android phones) open through pillow-heif, registered with Pillow
  on first use; AVIF through Pillow's own plugin.
"""

import ctypes
import functools
import io
import os
import warnings

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from tools.contract import resize_size
from tools.errors import GarbageError

#: Extensions treated as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")

#: Most pixels decoded for one image (after JPEG draft scaling): 40 Mpx is 160 MB as RGBA, and
#: above any phone camera's JPEG once drafted. Images over it are refused with ImageTooLarge.
MAX_PIXELS = 40_000_000

#: Longest-to-shortest side ratio over which an image is refused from its header (ImageTooLarge):
#: phone panoramas are about 4:1 to 8:1. Within the pixel budget, a 1 x 39,000,000 strip cost five
#: times what a square does (Pillow keeps a pointer and an allocation per row, in every copy).
MAX_SIDE_RATIO = 15

#: Decoded images at least this large (bytes, before shrinking) are followed by returning freed
#: memory to the system: rare (a phone's JPEG is decoded at reduced scale), and each costs the next
#: model call a few page faults.
TRIM_BYTES = 64 * 2 ** 20

#: Longest-to-shortest side ratio kept before resizing; a longer image (up to MAX_SIDE_RATIO) is
#: centre-cropped to it first (the centre crop that prediction uses is unchanged), so resizing the
#: shorter side to 256 makes at most a 256 x 2560 image.
MAX_ASPECT = 10

#: How many times a PNG's memory per decoded pixel (at most 4 bytes, RGBA) a format's decoder takes;
#: its pixel budget is MAX_PIXELS divided by this. At 40 Mpx (bench/hostile.py): libwebp's animation
#: decoder keeps a canvas, a frame and a copy (a 34-byte 6292x6292 WebP took 607 MB), libavif and
#: libheif YUV planes and an RGB buffer (351 and 275 MB), libtiff a strip, which may be the whole image
#: (305 MB). Formats not named cost 1.
DECODE_COST = {"WEBP": 4, "AVIF": 3, "HEIF": 2, "TIFF": 2}

# Pillow warns from 89 Mpx on, before our stricter budget (checked on the drafted size) has spoken.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

#: EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageDecodeError(GarbageError, ValueError):
    """The input is not a readable image (the message says why)."""


class ImageTooLarge(ImageDecodeError):
    """The image would take more memory to decode or resize than the pixel budget allows."""

    http_status = 413


@functools.cache
def _register_heif():
    """Teach Pillow HEIC/HEIF, once; False when pillow-heif is not installed."""
    try:
        import pillow_heif  # optional at import time: 0.1 s and a native library, only when decoding
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@functools.cache
def _decodable_formats():
    """The ACCEPTED formats this Pillow can open (HEIF only with pillow-heif): nothing else is tried."""
    _register_heif()
    Image.init()
    return tuple(name for name in ACCEPTED if name in Image.OPEN)


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _gray8(img, top=None):
    """16-bit, 32-bit integer and float images -> 8-bit L, scaled as a viewer shows them: 16-bit by
    257, others by 255/top, where `top` is 65535 for an image whose maximum (the whole image's, when
    `img` is one band of it) is over 255, else 255."""
    if img.mode.startswith("I;16"):
        arr = np.array(img)
        arr //= 257  # 65535 -> 255 in place: no float copy of a large image
        return Image.fromarray(arr.astype(np.uint8))
    arr = np.asarray(img, dtype=np.float32)
    if top is None:
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8))


def _to_rgb(img, top=None):
    """Any Pillow mode -> RGB, keeping what a person sees (`top`: see _gray8)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _gray8(img, top).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _averageable(img):
    """`img` in a mode whose pixels Image.reduce may average (not palette indices or 1-bit)."""
    if img.mode.startswith("I;16"):
        return _gray8(img)
    if img.mode in ("P", "PA"):
        return img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    return img.convert("L") if img.mode == "1" else img


def _in_bands(img, make_band, factor=1, band_pixels=1 << 20):
    """make_band(each band of whole factor x factor blocks of `img`), pasted into one image of the
    bands' mode: the work of one call on the whole image, with memory near one copy of the result.
    A last partial block (< factor pixels) is left out rather than averaged into a stretched pixel."""
    w, h = img.size[0] // factor * factor, img.size[1] // factor * factor
    rows = factor * max(1, band_pixels // (w * factor))
    out = None
    for top in range(0, h, rows):
        part = make_band(img.crop((0, top, w, min(h, top + rows))))
        if out is None:
            out = Image.new(part.mode, (w // factor, h // factor))
        out.paste(part, (0, top // factor))
    return out


def _reduce(img, min_side, band_pixels=1 << 20):
    """Shrink by an integer factor (box filter, in C) while the shorter side stays >= 2 * min_side,
    as Pillow's own `reducing_gap=2` resize would, so what follows works on the small copy.

    Done in bands (_in_bands, the same result as one call): Pillow's reduce copies an RGBA image
    whole to premultiply it, and mode conversions copy too.
    """
    factor = min(img.size) // (2 * min_side)
    if factor < 2:
        return img
    return _in_bands(img, lambda band: _averageable(band).reduce(factor), factor, band_pixels)


def _to_rgb_in_bands(img, band_pixels=1 << 20):
    """_to_rgb(img), band by band: compositing RGBA on white takes three more copies of the image,
    the float scaling of 16-bit and float images four."""
    if img.mode == "RGB":
        return img
    top = None
    if img.mode in ("I", "F"):  # one scale for the whole image, as _to_rgb of it would choose
        top = 65535.0 if max(img.getextrema()[1], 0) > 255 else 255.0
    return _in_bands(img, lambda band: _to_rgb(band, top), band_pixels=band_pixels)


def _check_budget(size, max_pixels, kind="", cost=1):
    """ImageTooLarge unless `size` is within MAX_SIDE_RATIO and, at `cost` times a PNG's memory per
    pixel (DECODE_COST), within the pixel budget; `kind` names the format whose cost it is."""
    w, h = size
    if max(w, h) > MAX_SIDE_RATIO * min(w, h):
        raise ImageTooLarge(f"image too long and thin: {w}x{h}, the longest side may be at most {MAX_SIDE_RATIO} "
                            "times the shortest (no camera makes such a photo)")
    limit = max_pixels / cost
    if w * h > limit:
        which = f" for {kind} images (their decoder takes {cost:g} times the memory per pixel)" if cost != 1 else ""
        raise ImageTooLarge(f"image too large: {w}x{h} is {w * h / 1e6:.1f} megapixels, the limit{which} is "
                            f"{limit / 1e6:.3g}")


def _open_within_budget(decoded, min_side, max_pixels):
    """Choose the JPEG draft scale, then check the budget on what the decoder will hold (nothing is
    decoded yet): the drafted size, the header size for a progressive JPEG (its coefficients are
    kept whole, 2 bytes per pixel and band, whatever the scale), each format at its DECODE_COST."""
    header = decoded.size
    jpeg = isinstance(decoded, JpegImagePlugin.JpegImageFile)  # MPO (many phones' JPEGs) too
    if min_side and jpeg:
        decoded.draft(decoded.mode, (min_side, min_side))
    if jpeg and decoded.info.get("progressive"):
        _check_budget(header, max_pixels, "progressive JPEG", max(1, len(decoded.getbands()) / 2))
    _check_budget(decoded.size, max_pixels, _FORMAT_NAMES.get(decoded.format, decoded.format),
                  DECODE_COST.get(decoded.format, 1))


def decode_image(source, min_side=None, max_pixels=MAX_PIXELS):
    """Decode `source` (path, bytes or file object) to an RGB Pillow image, upright.

    With `min_side`, JPEGs are decoded at the smallest scale whose both sides are still >= min_side
    and other large images are reduced right after decoding (both sides stay >= 2 * min_side).
    Raises ImageTooLarge when more than `max_pixels` would be decoded or the image is longer than
    MAX_SIDE_RATIO to 1, ImageDecodeError with a reason a person can act on for anything else that
    is not a readable image.
    """
    return _decode(source, min_side, max_pixels)[0]


def _decode(source, min_side, max_pixels):
    """decode_image(), and the bytes the decoded image took (before it was shrunk)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageDecodeError("empty file")
        source = io.BytesIO(source)
    try:
        with Image.open(source, formats=_decodable_formats()) as decoded:
            _open_within_budget(decoded, min_side, max_pixels)
            decoded.load()
            decoded_bytes = decoded.size[0] * decoded.size[1] * len(decoded.getbands())
            transpose = _ORIENTATION.get(decoded.getexif().get(0x0112))
            img = _reduce(decoded, min_side) if min_side else decoded
            if img is not decoded:
                decoded.close()  # the decoded pixels go before the conversion, the transpose and the resize
            img = _to_rgb_in_bands(img)
            if img is not decoded:
                decoded.close()
            if transpose is not None:
                img = img.transpose(transpose)
            return img, decoded_bytes
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except (FileNotFoundError, ImageDecodeError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({e})") from None


def resize_shorter(img, size):
    """Resize so the shorter side is `size` (aspect kept, up to MAX_ASPECT: a longer image is
    centre-cropped to that ratio first, so the result is at most size x size * MAX_ASPECT)."""
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        cw, ch = min(w, MAX_ASPECT * h), min(h, MAX_ASPECT * w)
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch))
        w, h = img.size
    scale = size / min(w, h)
    new = (max(size, int(round(w * scale))), max(size, int(round(h * scale))))
    if new == (w, h):
        return img
    return img.resize(new, Image.Resampling.BILINEAR, reducing_gap=2.0 if scale < 0.5 else None)


def center_crop(arr, size):
    h, w = arr.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return arr[top:top + size, left:left + size]


def load_resized(source, input_size, max_pixels=MAX_PIXELS):
    """Decode and resize to the pre-crop size (shorter side 256 for 224); uint8 HxWx3 array.

    Raises ImageTooLarge when more than `max_pixels` would be decoded or the image is longer than
    MAX_SIDE_RATIO to 1, ImageDecodeError for anything else that is not a readable image.
    """
    side = resize_size(input_size)
    img, decoded_bytes = _decode(source, side, max_pixels)
    out = np.asarray(resize_shorter(img, side))
    del img
    if decoded_bytes >= TRIM_BYTES:
        _give_back_freed_memory()
    return out


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _give_back_freed_memory():
    """Return the freed heap pages to the system (glibc's malloc_trim). After a large free, glibc
    raises its mmap threshold (up to 32 MB), so the next large buffers come from the heap and stay
    in the process once freed: without this, a server's memory climbs to what its largest photos took."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def load_image_file(source, input_size, crop_size=None):
    """Decode, resize and centre-crop to `crop_size` (default `input_size`): what validation sees."""
    return center_crop(load_resized(source, input_size), crop_size or input_size)


# ---------------------------------------------------------------- what kind of file it is (was tools/sniff.py)
#: Formats the decoder takes -> the extension an accepted upload is saved with. HEIF (iPhone and
#: many Android photos, via pillow-heif) and AVIF (Pillow's own plugin) come in the same ISO box
#: container and are told apart by its brand.
ACCEPTED = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif",
            "HEIF": "heic", "AVIF": "avif"}

#: The accepted formats as a person names them, for error messages.
ACCEPTED_NAMES = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC or AVIF"
_FORMAT_NAMES = {"WEBP": "WebP", "HEIF": "HEIC"}

_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")


def sniff(data):
    """("JPEG" | "PNG" | ..., accepted) for known image formats; (None, False) for anything else."""
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG", True
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", True
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", True
    if head[:2] == b"BM":
        return "BMP", True
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF", True
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return "AVIF", True
        if head[8:12] in _HEIF_BRANDS:
            return "HEIF", True
    if head.startswith(b"%PDF"):
        return "PDF", False
    if head[:4] == b"8BPS":
        return "PSD", False
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO", False
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in bytes(data[:1024]).lower()):
        return "SVG", False
    return None, False

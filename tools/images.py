"""Turn any photo a user may have (path or bytes) into an RGB uint8 array of a known size.

One decoder for training, prediction and serving, so all three see the same pixels:
- a pixel budget, checked from the header before anything is decoded (MAX_PIXELS decoded pixels)
  and again before resizing (MAX_ASPECT): a 661-byte 1x300000 PNG or a 144 Mpx PNG of zeros would
  otherwise cost gigabytes of memory while Pillow's decompression-bomb guard stays silent;
- large JPEGs are decoded at reduced scale (PIL `draft`, 1/2..1/8) and other large images are
  shrunk by an integer factor (`Image.reduce`) right after decoding, so mode conversions and the
  resize work on a small image: a 12 MP phone photo decodes several times faster and memory stays
  near one copy of the decoded image;
- EXIF orientation is applied (phones store portrait photos sideways);
- every mode becomes RGB: L, LA, P, RGBA (composited on white), CMYK, 16-bit and float images;
- HEIC/HEIF photos (iPhones, many Android phones) open through pillow-heif, registered with Pillow
  on first use; AVIF through Pillow's own plugin.
"""

import functools
import io
import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from tools.contract import resize_size

#: Extensions treated as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif")

#: Most pixels decoded for one image (after JPEG draft scaling): 40 Mpx is 160 MB as RGBA, and
#: above any phone camera's JPEG once drafted. Images over it are refused with ImageTooLarge.
MAX_PIXELS = 40_000_000

#: Longest-to-shortest side ratio kept before resizing; a longer strip is centre-cropped to it
#: first (the centre crop that prediction uses is unchanged), so resizing the shorter side to 256
#: can never make a 256 x 76,800,000 image out of a 1 x 300,000 one.
MAX_ASPECT = 10

# Pillow warns from 89 Mpx on, before our stricter budget (checked on the drafted size) has spoken.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

#: EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageDecodeError(ValueError):
    """The input is not a readable image (the message says why)."""


class ImageTooLarge(ImageDecodeError):
    """The image would take more memory to decode or resize than the pixel budget allows."""


@functools.cache
def _register_heif():
    """Teach Pillow HEIC/HEIF, once; False when pillow-heif is not installed."""
    try:
        import pillow_heif  # optional at import time: 0.1 s and a native library, only when decoding
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def _gray8(img):
    """16-bit, 32-bit integer and float images -> 8-bit L, scaled as a viewer shows them."""
    if img.mode.startswith("I;16"):
        arr = np.array(img)
        arr //= 257  # 65535 -> 255 in place: no float copy of a large image
        return Image.fromarray(arr.astype(np.uint8))
    arr = np.asarray(img, dtype=np.float32)
    top = 65535.0 if arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8))


def _to_rgb(img):
    """Any Pillow mode -> RGB, keeping what a person sees."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return _gray8(img).convert("RGB")
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


def _reduce(img, min_side, band_pixels=1 << 22):
    """Shrink by an integer factor (box filter, in C) while the shorter side stays >= 2 * min_side,
    as Pillow's own `reducing_gap=2` resize would, so what follows works on the small copy.

    Done in bands of whole blocks (the same result as one call): Pillow's reduce copies an RGBA
    image whole to premultiply it, and mode conversions copy too; bands keep memory near one copy
    of the decoded image, whatever its mode. A last partial block (< factor pixels) is left out
    rather than averaged into a stretched pixel.
    """
    factor = min(img.size) // (2 * min_side)
    if factor < 2:
        return img
    w, h = img.size[0] // factor * factor, img.size[1] // factor * factor
    rows = factor * max(1, band_pixels // (w * factor))  # whole blocks of factor x factor
    out = None
    for top in range(0, h, rows):
        part = _averageable(img.crop((0, top, w, min(h, top + rows)))).reduce(factor)
        if out is None:
            out = Image.new(part.mode, (w // factor, h // factor))
        out.paste(part, (0, top // factor))
    return out


def _check_budget(size, max_pixels):
    w, h = size
    if w * h > max_pixels:
        raise ImageTooLarge(f"image too large: {w}x{h} is {w * h / 1e6:.1f} megapixels, the limit is "
                            f"{max_pixels / 1e6:g}")


def decode_image(source, min_side=None, max_pixels=MAX_PIXELS):
    """Decode `source` (path, bytes or file object) to an RGB Pillow image, upright.

    With `min_side`, JPEGs are decoded at the smallest scale whose both sides are still >= min_side
    and other large images are reduced right after decoding (both sides stay >= 2 * min_side).
    Raises ImageTooLarge when more than `max_pixels` would be decoded, ImageDecodeError with a
    reason a person can act on for anything else that is not a readable image.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageDecodeError("empty file")
        source = io.BytesIO(source)
    _register_heif()
    try:
        with Image.open(source) as img:
            if min_side and img.format == "JPEG":
                img.draft(img.mode, (min_side, min_side))
            _check_budget(img.size, max_pixels)  # from the header: nothing is decoded yet
            img.load()
            transpose = _ORIENTATION.get(img.getexif().get(0x0112))
            if min_side:
                img = _reduce(img, min_side)
            if transpose is not None:
                img = img.transpose(transpose)
            return _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except (FileNotFoundError, ImageDecodeError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({e})") from None


def resize_shorter(img, size):
    """Resize so the shorter side is `size` (aspect kept, up to MAX_ASPECT: a longer strip is
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

    Raises ImageTooLarge when more than `max_pixels` would be decoded, ImageDecodeError for
    anything else that is not a readable image.
    """
    side = resize_size(input_size)
    return np.asarray(resize_shorter(decode_image(source, min_side=side, max_pixels=max_pixels), side))


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

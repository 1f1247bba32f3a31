"""Turn any photo a user may have (path or bytes) into an RGB uint8 array of a known size.

One decoder for training, prediction and serving, so all three see the same pixels:
- large JPEGs are decoded at reduced scale (PIL `draft`, 1/2..1/8) before resizing: a 12 MP phone
  photo decodes several times faster and the loader stays ahead of the model;
- EXIF orientation is applied (phones store portrait photos sideways);
- every mode becomes RGB: L, LA, P, RGBA (composited on white), CMYK, 16-bit and float images;
- Pillow's decompression-bomb limit stays on: an oversized image is a clear error, not an OOM.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Extensions treated as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageDecodeError(ValueError):
    """The input is not a readable image (the message says why)."""


def is_image_file(path):
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def resize_size(input_size):
    """Shorter side before cropping: 256 for 224, scaled alike for other sizes (the 256/224 rule)."""
    return int(round(input_size * 256 / 224))


def _to_rgb(img):
    """Any Pillow mode -> RGB, keeping what a person sees."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(source, min_side=None):
    """Decode `source` (path, bytes or file object) to an RGB Pillow image, upright.

    With `min_side`, JPEGs are decoded at the smallest scale whose both sides are still >= min_side.
    Raises ImageDecodeError with a reason a person can act on.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageDecodeError("empty file")
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            if min_side and img.format == "JPEG":
                img.draft(img.mode, (min_side, min_side))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(f"image too large ({e})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({e})") from None


def resize_shorter(img, size):
    """Resize so the shorter side is `size` (aspect kept)."""
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


def random_crop(arr, size, rng):
    h, w = arr.shape[:2]
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return arr[top:top + size, left:left + size]


def load_resized(source, input_size):
    """Decode and resize to the pre-crop size (shorter side 256 for 224); uint8 HxWx3 array."""
    side = resize_size(input_size)
    return np.asarray(resize_shorter(decode_image(source, min_side=side), side))


def load_image_file(source, input_size, crop_size=None):
    """Decode, resize and centre-crop to `crop_size` (default `input_size`): what validation sees."""
    return center_crop(load_resized(source, input_size), crop_size or input_size)

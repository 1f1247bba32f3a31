"""Decoding a photo (tools/images.py): EXIF orientation, every mode to RGB uint8, one clear error for what is not
an image, reduced-scale JPEG decoding, HEIC and AVIF."""

import io

import numpy as np
import pytest
from PIL import Image

from support.datagen import make_folder_dataset, make_image
from tools.data.layout import load_dataset
from tools.images import ImageDecodeError, decode_image, load_image_file, load_resized



def _bytes(img, fmt="JPEG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    out = decode_image(_bytes(img, exif=exif))
    assert out.size == (20, 40)
    arr = np.asarray(out)
    assert arr[2, 10, 2] > 200 and arr[-2, 10, 0] > 200  # blue now on top


@pytest.mark.parametrize("make", [
    lambda: Image.new("L", (30, 20), 128),
    lambda: Image.new("CMYK", (30, 20), (0, 255, 255, 0)),
    lambda: Image.new("P", (30, 20), 3),
    lambda: Image.new("RGBA", (30, 20), (255, 0, 0, 0)),
    lambda: Image.fromarray(np.full((20, 30), 40000, np.uint16)),
], ids=["L", "CMYK", "P", "RGBA", "I16"])
def test_any_mode_becomes_rgb_uint8(make):
    img = make()
    fmt = "JPEG" if img.mode in ("L", "CMYK") else "PNG"
    out = decode_image(_bytes(img, fmt))
    assert out.mode == "RGB" and out.size == (30, 20)
    arr = np.asarray(out)
    if img.mode == "RGBA":  # fully transparent -> white background, not black or red
        assert arr.min() == 255
    if img.mode.startswith("I"):  # 16-bit 40000 ~ 61% grey, not clipped to white
        assert 150 < arr.mean() < 165


@pytest.mark.parametrize("data,reason", [(b"", "empty"), (b"hello, not an image", "not an image"),
                                         ("truncated", "truncated")])
def test_unreadable_inputs_raise_a_clear_error(data, reason):
    if data == "truncated":
        data = _bytes(make_image(0, np.random.default_rng(0), (200, 150)))[:600]
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_large_jpeg_is_decoded_at_reduced_scale():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    data = _bytes(big, quality=70)
    small = decode_image(data, min_side=256)
    assert 256 <= min(small.size) < 3000 // 2  # draft picked 1/8 scale (375x500)
    assert load_resized(data, 224).shape[0] == 256
    assert load_image_file(data, 224).shape == (224, 224, 3)


@pytest.mark.parametrize("fmt,ext", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heic_and_avif_photos_decode_like_the_original(fmt, ext, tmp_path):
    from tools.images import is_image_file
    from tools.images import ACCEPTED, sniff

    decode_image(_bytes(Image.new("RGB", (8, 8))))  # the HEIF opener is registered by the decoder
    photo = make_image(2, np.random.default_rng(0), (320, 240))
    data = _bytes(photo, fmt, quality=90)
    kind, accepted = sniff(data)
    assert accepted and kind == fmt and ACCEPTED[kind] == ext[1:]
    out = decode_image(data)
    assert out.mode == "RGB" and out.size == (320, 240)
    small = lambda img: np.asarray(img.resize((40, 30), Image.Resampling.BOX), np.int16)  # codec noise averaged out
    assert np.abs(small(out) - small(photo)).mean() < 6
    make_folder_dataset(str(tmp_path), per_class=2, classes=("cans", "paper"))
    with open(tmp_path / "cans" / f"phone{ext}", "wb") as f:
        f.write(data)
    assert is_image_file(f"x{ext.upper()}")
    ds = load_dataset(str(tmp_path))
    assert sum(p.endswith(ext) for p in ds.paths) == 1 and len(ds.paths) == 5

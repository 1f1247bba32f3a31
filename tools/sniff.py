"""What kind of file a client sent, judged by its first bytes (never by its name or claimed type)."""

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

"""Fetch an image from an http(s) URL safely: timeouts, a size cap, and a content-type check."""

import urllib.parse

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT = (5.0, 15.0)  # connect, read (seconds)


class FetchError(OSError):
    """The URL did not give an image (message says why)."""


def is_url(text):
    return urllib.parse.urlsplit(str(text)).scheme in ("http", "https")


def fetch_image(url, timeout=DEFAULT_TIMEOUT, max_bytes=DEFAULT_MAX_BYTES):
    """Bytes of the image at `url`, read in chunks and cut off past `max_bytes`."""
    import requests

    try:
        with requests.get(url, stream=True, timeout=timeout, headers={"Accept": "image/*"}) as r:
            if r.status_code != 200:
                raise FetchError(f"HTTP {r.status_code} {r.reason}")
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
                raise FetchError(f"not an image (Content-Type {ctype})")
            length = r.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError(f"too large ({int(length)} bytes > {max_bytes})")
            chunks, size = [], 0
            for chunk in r.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"too large (over {max_bytes} bytes)")
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.Timeout:
        raise FetchError(f"timed out (connect {timeout[0]}s / read {timeout[1]}s)") from None
    except requests.RequestException as e:
        reason = type(e).__name__ if not str(e) else str(e).split(":")[0][:120]
        raise FetchError(f"cannot fetch ({reason})") from None

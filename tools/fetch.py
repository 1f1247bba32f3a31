"""Fetch an image from an http(s) URL safely: timeouts, a total deadline, a size cap, a content-type check."""

import concurrent.futures
import threading
import urllib.parse

from tools.errors import GarbageError

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT = (5.0, 15.0)  # connect, read (seconds): each wait for the server
DEFAULT_DEADLINE = 30.0  # the whole fetch (seconds): a server dripping bytes restarts the read timeout, not this


class FetchError(GarbageError, OSError):
    """The URL did not give an image (message says why)."""


def fetch_image(url, timeout=DEFAULT_TIMEOUT, max_bytes=DEFAULT_MAX_BYTES, deadline=DEFAULT_DEADLINE):
    """Bytes of the image at `url`, read in chunks and cut off past `max_bytes` or `deadline` seconds.

    The download runs in a daemon thread so that the deadline holds whatever the server does (one
    byte every few seconds, in the headers or the body); a fetch given up on stops at its next chunk.
    """
    future, cancelled = concurrent.futures.Future(), threading.Event()

    def work():
        try:
            future.set_result(_download(url, timeout, max_bytes, cancelled))
        except BaseException as e:  # handed to the caller
            future.set_exception(e)

    threading.Thread(target=work, name="fetch", daemon=True).start()
    try:
        return future.result(timeout=deadline)
    except concurrent.futures.TimeoutError:
        cancelled.set()
        raise FetchError(f"timed out (over {deadline:g}s in all)") from None


def _download(url, timeout, max_bytes, cancelled):
    import requests
    import urllib3

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
            while not cancelled.is_set():
                chunk = r.raw.read1(64 * 1024, decode_content=True)  # what has arrived, at most 64 KB
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"too large (over {max_bytes} bytes)")
                chunks.append(chunk)
            raise FetchError("cancelled")
    except (requests.Timeout, urllib3.exceptions.TimeoutError):  # the body is read through urllib3
        raise FetchError(f"timed out (connect {timeout[0]}s / read {timeout[1]}s)") from None
    except requests.ConnectionError as e:
        host = urllib.parse.urlsplit(url).netloc.rsplit("@", 1)[-1]
        raise FetchError(f"cannot connect to {host} ({_os_reason(e) or type(e).__name__})") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
        reason = type(e).__name__ if not str(e) else str(e).split(":")[0][:120]
        raise FetchError(f"cannot fetch ({reason})") from None


def _os_reason(error):
    """What the system said under a requests/urllib3 error ("Connection refused", "Name or service not
    known", ...): the strerror of the innermost OSError it wraps; None when there is none."""
    seen, stack, found = set(), [error], None
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            found = e.strerror
        stack += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        stack += [a for a in e.args if isinstance(a, BaseException)]
    return found

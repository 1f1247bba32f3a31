"""A photo out of a request: its bytes, read in memory whatever the client sent, or a BadImage that says why not.

Why not Werkzeug's form parser as it is: it spools files over 500 KB to disk, drops a whole form
over one non-UTF-8 byte in a filename, and answers every form limit with a bare 413 that reads as
"file too large". Here a photo is a multipart field `file` or a raw image/* body, kept in memory
(MAX_CONTENT_LENGTH bounds it), and each refusal has its own status and message. With
--save_uploads a judged photo is kept under a generated name (save_upload), never the client's.
"""

import datetime
import io
import json
import os
import re
import uuid

from flask import Request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.sansio.multipart import Epilogue, Field, File, MultipartDecoder, NeedData

from tools.errors import GarbageError
from tools.serving.http import SlowClient


class BadImage(GarbageError):
    """An upload that is not a usable photo; `http_status` is the HTTP status (given as `status`), the message says why."""

    def __init__(self, message, status=400):
        super().__init__(message, http_status=status)


def body_too_large(limit):
    """The refusal of a body over `limit` bytes (MAX_CONTENT_LENGTH), whichever server says it."""
    return f"file too large: the limit is {limit / (1024 * 1024):g} MB"


class InMemoryRequest(Request):
    """Multipart uploads stay in memory (Werkzeug spools files over 500 KB to a temporary file on
    disk); MAX_CONTENT_LENGTH bounds how much memory one request can take."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_LINE_BREAKS = re.compile(rb"[\r\n]")


class TolerantMultipartDecoder(MultipartDecoder):
    """Werkzeug's multipart decoder, reading a part's headers whatever the client put in a filename.

    Werkzeug decodes part headers as strict UTF-8 (one non-UTF-8 byte in a filename raises
    UnicodeDecodeError, and its form parser then silently drops the whole form) and splits them at
    any CR or LF (one inside the quoted filename cuts the Content-Disposition line: the filename is
    lost and the photo becomes a text field). Here line breaks inside a quoted string become spaces
    and undecodable bytes U+FFFD. Filenames are never used: uploads are judged by their bytes and
    saved under generated names.
    """

    def _parse_headers(self, data):
        data = _QUOTED.sub(lambda m: _LINE_BREAKS.sub(b" ", m.group()), bytes(data))
        return super()._parse_headers(data.decode("utf-8", "replace").encode("utf-8"))


def read_multipart_photo(stream, boundary, max_field_size, max_parts):
    """The bytes of the first part named `file` (with or without a filename); None if there is none.

    Other parts are read and dropped; more than `max_parts` parts, or a text field (a part without
    a filename) over `max_field_size` bytes, is a 413 that says so: Werkzeug's limits, with their own
    messages (Werkzeug raises a bare 413 for both, which read as "file too large").
    """
    decoder = TolerantMultipartDecoder(boundary)
    photo = target = None
    parts = field_size = 0
    name, is_text = "", False
    while True:
        chunk = stream.read(64 * 1024)
        try:
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if max_parts is not None and parts > max_parts:
                        raise BadImage(f"too many form fields: the limit is {max_parts} parts; "
                                       "send the photo in the multipart field 'file'", 413)
                    name, is_text, field_size = event.name, isinstance(event, Field), 0
                    target = io.BytesIO() if name == "file" and photo is None else None
                    photo = photo if target is None else target
                elif target is not None:
                    target.write(event.data)
                elif is_text:
                    field_size += len(event.data)
                    if max_field_size is not None and field_size > max_field_size:
                        raise BadImage(f"form field {name!r} is too large: text fields may have "
                                       f"{max_field_size // 1000} KB; send the photo in the multipart field 'file'", 413)
                event = decoder.next_event()
        except ValueError as e:  # what Werkzeug's parser raises for a broken body
            raise BadImage(f"malformed multipart body: {e}") from None
        if not chunk or isinstance(event, Epilogue):
            break
    return None if photo is None else photo.getvalue()


def read_upload(request):
    """The image bytes of `request`: multipart field `file`, or a raw image/* body."""
    ctype = (request.mimetype or "").lower()
    try:
        if ctype == "multipart/form-data":
            boundary = request.mimetype_params.get("boundary", "")
            if not boundary:
                raise BadImage("malformed multipart body: the Content-Type has no boundary")
            data = read_multipart_photo(request.stream, boundary.encode("latin-1"),
                                        request.max_form_memory_size, request.max_form_parts)
            if data is None:
                raise BadImage("no image: send the photo in the multipart field 'file'")
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            data = _read_to_end(request.stream)
        elif not ctype and not request.content_length:
            raise BadImage("no image: send the photo in the multipart field 'file' or as an image/* body")
        else:
            raise BadImage(f"unsupported Content-Type {ctype}: send multipart/form-data or an image/* body", 415)
    except ClientDisconnected as e:  # Werkzeug's answer to a read that failed or timed out
        if isinstance(e.__context__, SlowClient):  # the dev server's body deadline
            raise BadImage(str(e.__context__), 408) from None
        if isinstance(e.__context__, TimeoutError):
            raise BadImage("upload stalled: the request body stopped arriving before it was complete", 408) from None
        raise BadImage("upload cut off: the client closed the connection before the body was complete") from None
    if not data:
        raise BadImage("empty file")
    return data


def _read_to_end(stream):
    """All of a request body. Werkzeug's readall() of a body without a Content-Length (chunked) stops
    silently at MAX_CONTENT_LENGTH, which judged a cut-off photo; a read past the limit raises
    RequestEntityTooLarge (413), as the multipart reader's does."""
    out = io.BytesIO()
    while chunk := stream.read(64 * 1024):
        out.write(chunk)
    return out.getvalue()


def save_upload(folder, data, ext, answer):
    """Keep the photo under a generated name (never the client's) with a JSON sidecar of the answer."""
    os.makedirs(folder, exist_ok=True)
    stem = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]
    with open(os.path.join(folder, f"{stem}.{ext}"), "wb") as f:
        f.write(data)
    with open(os.path.join(folder, f"{stem}.json"), "w", encoding="utf-8") as f:
        json.dump(answer, f, ensure_ascii=False, indent=1)

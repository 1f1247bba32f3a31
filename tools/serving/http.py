"""The HTTP servers that carry the app, and what every response says about them.

Why a module of its own: the app (routes, model) is the same under both servers; how connections are
read, timed out and encrypted is not. Both servers take a socket bound by listen() first (a port in
use fails at once, before the model loads) and enforce the same Limits on slow clients: silence,
a deadline on the whole request head, a minimum average rate for the body, a connection limit.
The dev server (python server.py) is Werkzeug's threaded server with those deadlines on every
read, at most Limits.connections threads, and https whose handshake runs in the connection's
thread; the production server (--production, tools/serving/production.py) is waitress, which reads
each whole request before a worker sees it. Both name no product versions, every response carries
the security headers, and the servers' own refusals are JSON like the app's.
"""

import dataclasses
import io
import json
import socket
import ssl
import threading
import time

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler, select_address_family

from tools.errors import GarbageError
from tools.serving import answers

#: The Server header of both servers: no product versions.
SERVER_NAME = "garbage-classifier"
#: Seconds a connection may send nothing (while sending headers or body, or idle) before it is closed.
READ_TIMEOUT = 30
#: Seconds the request line and headers may take in all, from their first byte (nginx's
#: client_header_timeout): a client trickling a header byte every few seconds is never silent.
HEAD_TIMEOUT = 10
#: Bytes per second a request body must average, counted from HEAD_TIMEOUT seconds after the
#: headers (so a body has HEAD_TIMEOUT s, plus 1 s per 8 KB): a 400 kB photo may take 60 s.
MIN_UPLOAD_RATE = 8 * 1024
#: Connections held at once. A trickler holds one for HEAD_TIMEOUT seconds at most; beyond the limit
#: the dev server answers 503, waitress leaves new connections in the listen backlog.
MAX_CONNECTIONS = 1000
#: waitress's worker threads (--threads).
THREADS = 8
#: Seconds a client is told to wait (Retry-After) when the model is still loading or the server is full.
RETRY_AFTER_S = 5
#: File descriptors a server process needs beside its connections (model, logs, libraries).
_SPARE_FILES = 64
#: On every response, pages and API. The pages load only their own scripts and styles (no inline
#: code); blob: is the upload page's preview of the chosen photo. The camera preview uses
#: video.srcObject, which no CSP directive governs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_security_headers(response):
    """after_request hook: SECURITY_HEADERS on every response (a view may set its own)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class SlowClient(GarbageError, TimeoutError):
    """A request head or body that arrived too slowly for Limits; the message says which limit."""

    http_status = 408


@dataclasses.dataclass(frozen=True)
class Limits:
    """How long and how slowly a client may take, on both servers (server.py's --timeout,
    --head_timeout, --min_upload_rate, --max_connections)."""

    idle_s: float = READ_TIMEOUT
    head_s: float = HEAD_TIMEOUT
    min_rate: float = MIN_UPLOAD_RATE  # bytes per second
    connections: int = MAX_CONNECTIONS

    def head_left(self, started, now):
        """Seconds left for a request head whose first byte came at `started`."""
        return started + self.head_s - now

    def body_left(self, started, received, now):
        """Seconds left for a body begun at `started` that has brought `received` bytes so far."""
        return started + self.head_s + received / self.min_rate - now

    def head_error(self):
        return SlowClient(f"request head too slow: the request line and headers must arrive within "
                          f"{self.head_s:g} s")

    def body_error(self):
        return SlowClient(f"upload too slow: the body must arrive at {self.min_rate / 1024:g} KB/s on average "
                          f"(after its first {self.head_s:g} s)")


def json_error_body(message):
    """The bytes of the app's error answer, {"error": message}."""
    return json.dumps(answers.error(message), ensure_ascii=False).encode("utf-8")


def json_error_headers(body):
    """Headers of a JSON error answer written by a server rather than the app: the same as the app's."""
    return [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *SECURITY_HEADERS.items()]


def raw_json_error(status, message, extra_headers=()):
    """A whole HTTP/1.1 error answer (then the connection closes), for a server to write on a socket:
    `status` like "408 Request Timeout"."""
    body = json_error_body(message)
    headers = [("Server", SERVER_NAME), *json_error_headers(body), *extra_headers, ("Connection", "close")]
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1") + body


def server_busy(limits):
    """The answer to a connection over the limit."""
    return raw_json_error("503 Service Unavailable", f"server busy: {limits.connections} connections are open, "
                          "try again shortly", [("Retry-After", str(RETRY_AFTER_S))])


def allow_open_files(limits):
    """Raise this process's open-file limit (soft, up to the hard one) to hold `limits.connections`
    sockets; the Limits that fit (fewer connections where the hard limit is lower)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = limits.connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < needed:
        return dataclasses.replace(limits, connections=max(1, soft - _SPARE_FILES))
    return limits


def listen(host, port, backlog=1024):
    """The server's listening socket, bound and listening before anything slow happens: a port in
    use raises OSError at once. No SO_REUSEADDR on Windows, where it would let two servers share a port."""
    return socket.create_server((host, port), family=select_address_family(host, port), backlog=backlog)


def lan_address(family=socket.AF_INET):
    """This computer's address on its network (what a phone on the same network opens), or None.
    A UDP connect sends nothing: it only picks the interface a packet would leave by."""
    probe = ("fd31:f903:5ab5:1::1", 9) if family == socket.AF_INET6 else ("10.253.155.219", 9)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect(probe)
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address in ("0.0.0.0", "::", "127.0.0.1", "::1") else address


def urls(sock, scheme="http"):
    """[(who, url)] a listening socket is reached at: this computer, and phones on the network
    when it listens on every interface (their page is /upload over http: browsers give the camera
    page the camera only over https)."""
    host, port = sock.getsockname()[:2]
    phone_page = "/" if scheme == "https" else "/upload"
    if host in ("0.0.0.0", "::"):
        out = [("this computer", f"{scheme}://localhost:{port}/")]
        lan = lan_address(sock.family)
        if lan is not None:
            out.append(("phones on this network", f"{scheme}://{f'[{lan}]' if ':' in lan else lan}:{port}{phone_page}"))
        return out
    if host in ("127.0.0.1", "::1"):
        return [("this computer", f"{scheme}://localhost:{port}/")]
    return [("this address", f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{phone_page}")]


# ------------------------------------------------------------------ the dev server
class _DeadlineReader(io.RawIOBase):
    """A connection's reads (the handler's rfile) under the Limits: each read waits at most the
    silence timeout and what is left of the head's or the body's deadline. After a timeout every read
    fails (the connection is done), as the socket's own file does."""

    def __init__(self, sock, limits, head_from_now=False):
        self.sock, self.limits = sock, limits
        self.error = None
        self.begin_head(time.monotonic() if head_from_now else None)

    def readable(self):
        return True

    def begin_head(self, started=None):
        """A request head: its deadline runs from `started`, or its first byte."""
        self.phase, self.started, self.received = "head", started, 0

    def begin_body(self):
        self.phase, self.started, self.received = "body", time.monotonic(), 0

    def _left(self, now):
        if self.started is None:
            return None
        if self.phase == "head":
            return self.limits.head_left(self.started, now)
        return self.limits.body_left(self.started, self.received, now)

    def readinto(self, buffer):
        if self.error is not None:
            raise self.error
        left = self._left(time.monotonic())
        if left is not None and left <= 0:
            self.error = self.limits.head_error() if self.phase == "head" else self.limits.body_error()
            raise self.error
        self.sock.settimeout(self.limits.idle_s if left is None else min(self.limits.idle_s, left))
        try:
            n = self.sock.recv_into(buffer)
        except TimeoutError as e:  # socket.timeout
            self.error = e
            if left is not None and left <= self.limits.idle_s:
                self.error = self.limits.head_error() if self.phase == "head" else self.limits.body_error()
            raise self.error from None
        finally:
            self.sock.settimeout(self.limits.idle_s)  # writes keep the silence timeout
        if n and self.started is None:
            self.started = time.monotonic()
        self.received += n
        return n


class DevRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with every read under the Limits (tools/serving/http._DeadlineReader): a
    silent, trickling or stalled client frees the thread (a slow head gets 408 JSON, a slow body the
    app's 408). The Server header names no versions."""

    limits = Limits()

    def setup(self):
        super().setup()
        self.rfile.close()  # the socket's own file: replaced by one under the deadlines
        # with https the handshake is part of the first head: it runs on the first read, in this thread
        self.reader = _DeadlineReader(self.connection, self.limits, head_from_now=isinstance(self.connection, ssl.SSLSocket))
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self):
        if self.reader.phase == "body":  # the next request on this connection
            self.reader.begin_head()
        super().handle_one_request()
        if self.reader.error is not None:
            self.close_connection = True
            if self.reader.phase == "head" and isinstance(self.reader.error, SlowClient):
                try:
                    self.wfile.write(raw_json_error("408 Request Timeout", str(self.reader.error)))
                except OSError:
                    pass

    def parse_request(self):
        ok = super().parse_request()
        self.reader.begin_body()
        return ok

    def version_string(self):
        return SERVER_NAME


class DevServer(ThreadedWSGIServer):
    """Werkzeug's threaded server, with at most `limits.connections` connection threads: a
    connection beyond them gets 503 JSON (https: is closed) from the accepting thread, and no thread."""

    def __init__(self, app, sock, limits, handler, ssl_context=None):
        host, port = sock.getsockname()[:2]
        super().__init__(host, port, app, handler, ssl_context=ssl_context, fd=sock.fileno())
        sock.close()  # Werkzeug works on its own duplicate of it
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            if not isinstance(request, ssl.SSLSocket):
                try:
                    request.setblocking(False)
                    request.send(server_busy(self.limits))
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _HandshakeInThreadContext(ssl.SSLContext):
    """Werkzeug wraps the listening socket, so every TLS handshake would run inside accept(), in the
    one thread that accepts all connections, with no timeout: one client that connects and sends
    nothing would stop the https server. Deferred, the handshake runs on the connection's first read,
    in its own thread, under the head deadline."""

    def wrap_socket(self, sock, *args, **kwargs):
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(sock, *args, **kwargs)


def make_dev_server(app, sock, limits=Limits(), cert=None, key=None):
    """Werkzeug's threaded server (python server.py) on the listening `sock`, under `limits`; https
    with cert/key."""
    ssl_context = None
    if cert:
        ssl_context = _HandshakeInThreadContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(cert, key)
    handler = type("RequestHandler", (DevRequestHandler,), {"limits": limits, "timeout": limits.idle_s})
    return DevServer(app, sock, limits, handler, ssl_context)


def make_server_for(app, sock, production=False, limits=Limits(), threads=THREADS, cert=None, key=None):
    """waitress with `production`, else the dev server (https with cert/key), on the listening `sock`."""
    if production:
        from tools.serving.production import make_production_server  # only --production needs waitress

        return make_production_server(app, sock, limits, threads)
    return make_dev_server(app, sock, limits, cert, key)


def stop(server, production=False):
    """Make serve_until_interrupted(server) return, from another thread (before or while it serves)."""
    if production:
        server.stop()
    else:
        server.shutdown()


def serve_until_interrupted(server, production=False):
    """Serve until Ctrl-C, then close the listening socket (`production`: a waitress server)."""
    try:
        if production:
            server.run()
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if production:
            server.close_all()
        else:
            server.server_close()

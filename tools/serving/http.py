"""The HTTP servers that carry the app, and what every response says about them.

Why a module of its own: the app (routes, model) is the same under both servers; how connections are
read, timed out and encrypted is not. The dev server (python server.py) is Werkzeug's threaded
server under a socket timeout, with https whose handshake runs in the connection's thread; the
production server (--production) is waitress, which reads each whole request before a worker sees
it. Both name no product versions, and every response carries the security headers.
"""

import ssl

from werkzeug.serving import WSGIRequestHandler, make_server

#: The Server header of both servers: no product versions.
SERVER_NAME = "garbage-classifier"
#: Seconds a connection may send nothing (while sending headers or body, or idle) before it is closed.
READ_TIMEOUT = 30
#: waitress's worker threads (--threads).
THREADS = 8
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


class DevRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler under a socket timeout: a read (request line, headers, body) or a write that
    makes no progress for `timeout` seconds fails and frees the thread (a stalled upload gets 408, an
    idle connection is closed). The Server header names no versions."""

    timeout = READ_TIMEOUT

    def version_string(self):
        return SERVER_NAME


class _HandshakeInThreadContext(ssl.SSLContext):
    """Werkzeug wraps the listening socket, so every TLS handshake would run inside accept(), in the
    one thread that accepts all connections, with no timeout: one client that connects and sends
    nothing would stop the https server. Deferred, the handshake runs on the connection's first read,
    in its own thread, under the handler's timeout."""

    def wrap_socket(self, sock, *args, **kwargs):
        kwargs["do_handshake_on_connect"] = False
        return super().wrap_socket(sock, *args, **kwargs)


def make_dev_server(app, host, port, timeout=READ_TIMEOUT, cert=None, key=None):
    """Werkzeug's threaded server (python server.py), with read timeouts; https with cert/key."""
    ssl_context = None
    if cert:
        ssl_context = _HandshakeInThreadContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(cert, key)
    handler = type("RequestHandler", (DevRequestHandler,), {"timeout": timeout})
    return make_server(host, port, app, threaded=True, request_handler=handler, ssl_context=ssl_context)


def make_production_server(app, host, port, threads=THREADS, timeout=READ_TIMEOUT):
    """waitress (python server.py --production). Its I/O loop reads each whole request, headers and
    body, before a worker thread sees it: clients that stall or trickle bytes hold a connection, never
    a worker. A connection silent for `timeout` seconds is closed."""
    import waitress  # only --production needs it

    body_limit = app.config["MAX_CONTENT_LENGTH"]
    return waitress.create_server(
        app, host=host, port=port, threads=threads, ident=SERVER_NAME,
        channel_timeout=timeout, cleanup_interval=max(1.0, timeout / 3),
        # a body over the limit is refused from its Content-Length, before it is read
        max_request_body_size=body_limit + 1,
        # bodies stay in memory (waitress spools those over 512 KB to a temporary file by default)
        inbuf_overflow=body_limit + 64 * 1024)


def make_server_for(app, host, port, production=False, threads=THREADS, timeout=READ_TIMEOUT, cert=None, key=None):
    """waitress with `production`, else the dev server (https with cert/key)."""
    if production:
        return make_production_server(app, host, port, threads, timeout)
    return make_dev_server(app, host, port, timeout, cert, key)


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
            server.close()
        else:
            server.server_close()

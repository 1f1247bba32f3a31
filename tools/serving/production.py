"""The production server (python server.py --production): waitress, under the same Limits as the dev server.

Why waitress, and why these subclasses: waitress's I/O loop reads each whole request, headers and
body, before a worker thread sees it, so clients that stall or trickle bytes hold a connection,
never a worker. But it closes only silent connections (channel_timeout): a header trickled one byte
every 3 s stayed open for good, and 100 such clients (its default connection_limit) took the server
off the air. Here each request's head must arrive within Limits.head_s of its first byte and its
body at Limits.min_rate on average (checked by the I/O loop's maintenance, twice a second; an
overdue client gets 408 JSON and is closed), up to Limits.connections sockets are held, through
poll() (select() takes no file descriptor above 1024), and waitress's own refusals (malformed
HTTP, a body over the limit, chunked or not) are the app's JSON errors, security headers included.
Imported only with --production.
"""

import select
import threading
import time

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from tools.serving.http import SERVER_NAME, THREADS, Limits, json_error_body, json_error_headers, raw_json_error
from tools.serving.uploads import body_too_large

#: Seconds between checks of the deadlines (and of silence): a slow client is closed this late at most.
CHECK_INTERVAL_S = 0.5
#: select() handles at most 512 sockets on Windows, where there is no poll().
_SELECT_SOCKETS = 500


class _TimedParser(HTTPRequestParser):
    """waitress's request parser, remembering when the request began (its first bytes arrived: the
    parser is made for them) and when its headers were complete."""

    def __init__(self, adj):
        super().__init__(adj)
        self.started = time.monotonic()
        self.body_started = None

    def received(self, data):
        consumed = super().received(data)
        if self.headers_finished and self.body_started is None:
            self.body_started = time.monotonic()
        return consumed

    def overdue(self, limits, now):
        """The SlowClient error when this request is past its deadline, else None."""
        if self.completed:
            return None
        if not self.headers_finished:
            return limits.head_error() if limits.head_left(self.started, now) <= 0 else None
        if limits.body_left(self.body_started, self.body_bytes_received, now) <= 0:
            return limits.body_error()
        return None


def _queue(channel, data):
    """Queue bytes for the I/O loop to send, as waitress's send_continue() does: from the I/O thread,
    where write_soon() could wait for the loop itself to flush."""
    with channel.outbuf_lock:
        channel.outbufs[-1].append(data)
        channel.current_outbuf_count += len(data)
        channel.total_outbufs_len += len(data)


class _JsonErrorTask(ErrorTask):
    """waitress's own error answers as the app's: {"error": ...} JSON with the security headers;
    a body over the limit says the limit as the app does."""

    def execute(self):
        e = self.request.error
        if e.code == 413:
            message = body_too_large(self.channel.server.adj.max_request_body_size - 1)
        else:
            message = f"{e.reason}: {e.body}"
        body = json_error_body(message)
        self.status = f"{e.code} {e.reason}"
        self.response_headers.extend(header for header in json_error_headers(body) if header[0] != "Content-Length")
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    parser_class = _TimedParser
    error_task_class = _JsonErrorTask


class GuardedServer(TcpWSGIServer):
    """waitress's TCP server whose maintenance also closes clients past the head or body deadline."""

    channel_class = _Channel

    def __init__(self, app, sock, adj, limits):
        self.limits = limits
        self._stopping = self._closed = False
        self._close_lock = threading.Lock()
        super().__init__(app, _sock=sock, adj=adj, bind_socket=False,
                         sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))

    def stop(self):
        """End run() from another thread: the loop's next readable() ends it as Ctrl-C would. The trigger
        that wakes it is pulled only while open: the loop may see the flag on its own poll timeout and
        close_all() first, and a pull then wrote to a closed (or reused) descriptor: EBADF."""
        with self._close_lock:
            self._stopping = True
            if not self._closed:
                self.pull_trigger()

    def readable(self):
        if self._stopping:
            raise SystemExit  # what run() takes for Ctrl-C: its workers are shut down, it returns
        return super().readable()

    def close_all(self):
        """Close the listening socket and every connection left (once run() has returned)."""
        with self._close_lock:
            self._closed = True
            wasyncore.close_all(self._map)

    def maintenance(self, now):
        super().maintenance(now)  # silence: channel_timeout
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            with channel.requests_lock:  # as the workers take it (then the output lock, as here)
                request = channel.request
                if request is None or channel.requests or channel.will_close or channel.close_when_flushed:
                    continue  # nothing half-read, or a worker is answering: its answer comes first
                error = request.overdue(self.limits, mono)
                if error is None:
                    continue
                channel.request = None
                _queue(channel, raw_json_error("408 Request Timeout", str(error)))
                channel.close_when_flushed = True


def make_production_server(app, sock, limits=Limits(), threads=THREADS):
    """waitress on the listening `sock`: whole requests read before a worker sees them, under `limits`."""
    body_limit = app.config["MAX_CONTENT_LENGTH"]
    connections = limits.connections if hasattr(select, "poll") else min(limits.connections, _SELECT_SOCKETS)
    adj = Adjustments(
        sockets=[sock], threads=threads, ident=SERVER_NAME, connection_limit=connections, asyncore_use_poll=True,
        # a body over the limit is refused from its Content-Length before it is read, a chunked one
        # as soon as it passes the limit
        max_request_body_size=body_limit + 1,
        # bodies stay in memory (waitress spools those over 512 KB to a temporary file by default)
        inbuf_overflow=body_limit + 64 * 1024)
    # set after parsing, which would round them to whole seconds (0.5 s to 0: a busy loop)
    adj.channel_timeout = limits.idle_s
    adj.cleanup_interval = adj.asyncore_loop_timeout = CHECK_INTERVAL_S
    return GuardedServer(app, sock, adj, limits)

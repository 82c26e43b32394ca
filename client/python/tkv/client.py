"""The blocking client and its pipeline.

One :class:`Client` is one TCP connection (opened lazily, and opened again
by the next command after it broke - a command is never re-sent, so a write
is never applied twice behind the caller's back). It is not thread-safe:
use one per thread, as libtkvclient's contexts.

Sending and receiving are interleaved (a selector watches both ways): tkvd
stops reading a connection once 1 MiB of its replies are unread (PROTOCOL.md
§7), so a client that wrote a long pipeline whole before reading would wait
for the server while the server waited for it.
"""

import selectors
import socket
import time

from . import commands as cmds
from . import protocol as p
from .errors import ConnectionError, ProtocolError, ServerError, TimeoutError, TkvError

DEFAULT_PORT = 7379


class Client(cmds.Commands):
    """A blocking connection to tkvd.

    ``timeout`` (seconds, None: wait for ever) bounds the connect and each
    wait for progress while a reply is due; a timeout drops the connection.
    ``secret`` is sent with AUTH on every (re)connection. ``max_frame`` is
    the largest request sent (set it to the server's --max-frame if that is
    lower than 8 MiB: the server closes the connection on a larger frame);
    ``max_reply`` the largest reply frame accepted. ``unix_socket`` (a
    path: tkvd --unix PATH) connects there instead of host and port.
    """

    def __init__(self, host="127.0.0.1", port=DEFAULT_PORT, secret=None, timeout=30.0,
                 max_frame=p.DEFAULT_MAX_FRAME, max_reply=p.DEFAULT_MAX_REPLY,
                 unix_socket=None):
        self.host = host
        self.port = port
        self.unix_socket = unix_socket
        self.secret = secret
        self.timeout = timeout
        self.max_frame = max_frame
        self.max_reply = max_reply
        self._sock = None
        self._reader = None
        self._sel = None

    # ---- the connection ---------------------------------------------------

    def connect(self):
        """Opens the connection now (commands do it when needed)."""
        if self._sock is not None:
            return
        try:
            sock = self._dial()
        except socket.timeout as e:
            raise TimeoutError(f"connect to {self._where()}: {e}") from None
        except OSError as e:
            raise ConnectionError(f"connect to {self._where()}: {e}") from None
        sock.setblocking(False)
        self._sock = sock
        self._reader = p.FrameReader(self.max_reply)
        # One selector for the connection's life, not one per command.
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ)
        if self.secret is not None:
            try:
                self._run(cmds.auth(self.secret))
            except BaseException:
                self.close()
                raise

    def _where(self):
        return self.unix_socket or f"{self.host}:{self.port}"

    def _dial(self):
        if self.unix_socket is None:
            sock = socket.create_connection((self.host, self.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_socket)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self):
        """Closes the connection; the next command opens a new one."""
        if self._sock is not None:
            self._sel.close()
            self._sock.close()
        self._sock = None
        self._reader = None
        self._sel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "connected" if self._sock is not None else "not connected"
        return f"<tkv.Client {self._where()} {state}>"

    def _ensure(self):
        """A usable socket: reconnects if the server closed this one while it
        was idle (restart, --timeout, or the close after a frame-level
        TOO_LARGE). Nothing is due on an idle connection, so anything to
        read - end-of-file, or a BUSY refusal before its close - means it
        is finished; nothing was sent on it, so nothing is lost."""
        if self._sock is not None and self._reader.pending():
            self.close()  # bytes no request asked for: out of step
        if self._sock is not None:
            try:
                self._sock.recv(1, socket.MSG_PEEK)
                self.close()
            except (BlockingIOError, InterruptedError):
                pass  # the normal case: nothing to read
            except OSError:
                self.close()
        self.connect()

    # ---- moving frames ----------------------------------------------------

    def _exchange(self, out, n):
        try:
            return self._exchange_frames(out, n)
        except BaseException:
            # Interrupted part-way (KeyboardInterrupt, a signal handler's
            # exception): the replies still due would answer the next
            # requests, so the connection goes.
            self.close()
            raise

    def _exchange_frames(self, out, n):
        """Sends the bytes `out` and reads n reply frames, interleaved.

        Returns n items, each a payload (bytes) or, for replies that never
        came, the ConnectionError that stopped them. The replies that did
        arrive are kept even when sending failed: the server may answer and
        close (PROTOCOL.md §1), and that answer is the one to report.
        """
        sock, reader, sel = self._sock, self._reader, self._sel
        frames, failure, sent = [], None, 0
        view = memoryview(out)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            # Most requests fit the socket's buffer: send before waiting.
            sent = self._send(view, 0) if out else 0
            if sent < len(out):
                sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while len(frames) < n:
                while len(frames) < n and (f := reader.frame()) is not None:
                    frames.append(f)
                if len(frames) == n:
                    break
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                events = sel.select(wait)
                if not events:
                    failure = TimeoutError(f"no reply within {self.timeout} s")
                    break
                mask = events[0][1]
                if mask & selectors.EVENT_WRITE:
                    sent = self._send(view, sent)
                    if sent >= len(out):
                        sel.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        data = sock.recv(262144)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        failure = ConnectionError(f"recv: {e}")
                        break
                    if not data:
                        failure = ConnectionError("the server closed the connection")
                        break
                    reader.feed(data)
                    if deadline is not None:
                        deadline = time.monotonic() + self.timeout
        except ProtocolError as e:
            failure = e
        except _SendFailed as e:
            failure = ConnectionError(f"send: {e.__cause__}")
            # Read what came all the same: the server may have answered and
            # closed (PROTOCOL.md §1), and that answer is the one to report.
            frames += self._drain(n - len(frames))
        if len(frames) < n:
            # The stream's position is lost: later replies cannot be matched.
            self.close()
            frames += [failure] * (n - len(frames))
        elif self._sock is not None and sent < len(out):
            self.close()  # answered in full before our request was sent
        elif n and p.is_too_large(frames[-1]):
            self._probe()
        return frames

    def _probe(self):
        """After a TOO_LARGE answer: was it for a whole frame, after which
        the server closes? A PING tells: the server answers it if the
        connection goes on, and otherwise drops it and sends end-of-file
        after that answer. Waiting for the close to show up by itself
        would race with the next command, which would then fail."""
        try:
            (reply,) = self._exchange_frames(p.PING_FRAME, 1)
        except TkvError:
            reply = None
        if not isinstance(reply, bytes):
            self.close()

    def _send(self, view, sent):
        """Sends what the socket takes now; returns the new count sent."""
        try:
            return sent + self._sock.send(view[sent:sent + 262144])
        except (BlockingIOError, InterruptedError):
            return sent
        except OSError as e:
            raise _SendFailed() from e

    def _drain(self, n):
        """After a failed send: up to n frames already received or still
        arriving, until end-of-file or the timeout."""
        frames, reader = [], self._reader
        self._sock.setblocking(True)
        self._sock.settimeout(self.timeout)
        try:
            while len(frames) < n:
                f = reader.frame()
                if f is not None:
                    frames.append(f)
                    continue
                data = self._sock.recv(262144)
                if not data:
                    break
                reader.feed(data)
        except (OSError, ProtocolError):
            pass
        return frames

    def _run(self, gen):
        """Drives one command: each request it yields is sent and answered
        before the next."""
        req = next(gen)  # argument errors surface before any I/O
        self._ensure()
        return self._drive(gen, req)

    def _drive(self, gen, req, reply=None):
        """Continues a command generator from `req` (or, given a reply,
        from that reply) until it returns."""
        while True:
            if reply is None:
                out = b"" if req is cmds.MORE else p.encode(req, self.max_frame)
                if self._sock is None:
                    self.connect()
                (reply,) = self._exchange(out, 1)
            try:
                if isinstance(reply, Exception):
                    raise reply
                req = gen.send(p.decode(reply))
            except StopIteration as stop:
                return stop.value
            except ServerError as e:
                gen.close()
                raise e from None
            except ProtocolError:
                # A server that sends malformed replies is not trusted with
                # the next request either.
                gen.close()
                self.close()
                raise
            reply = None

    def pipeline(self, raise_on_error=True):
        """A Pipeline on this connection: queue commands, then execute()."""
        return Pipeline(self, raise_on_error)

    # ---- iterators over many requests -------------------------------------

    def scan_iter(self, prefix=None, count=None):
        """Yields every key (bytes) starting with prefix, in byte order, a
        page (count keys, server default 100) per request. A key that
        exists throughout the scan is yielded exactly once."""
        cursor = None
        while True:
            page = self.scan(prefix, cursor, count)
            yield from page.keys
            if page.cursor is None:
                return
            cursor = page.cursor

    def range_iter(self, key, from_ts=None, to_ts=None, limit=None, reverse=False):
        """Yields the key's history lazily, one RANGE reply at a time."""
        while True:
            entries, truncated = self.range_page(key, from_ts, to_ts, limit, reverse)
            yield from entries
            step = cmds.next_range(entries, truncated, from_ts, to_ts, limit, reverse)
            if step is None:
                return
            from_ts, to_ts, limit = step

    def backup(self, out):
        """Streams a consistent backup of the whole store into out (a binary
        file object, or a callable taking each chunk) and checks its digest
        and checksum; returns the Digest it holds. On an error, what was
        written is not a backup."""
        write = out if callable(out) else out.write
        try:
            return self._run(cmds.backup(write))
        except BaseException:
            # A stream stopped part-way cannot be skipped: drop it.
            self.close()
            raise


class _SendFailed(Exception):
    """Internal: a send failed (its cause is the OSError)."""


class Pipeline(cmds.Commands):
    """Queues commands and sends them in one write; execute() reads the
    replies in order and returns the results, in order.

    With raise_on_error (the default) the first failed command's exception
    is raised after every reply has been read; otherwise each failure is
    returned in its place. Queuing methods return the pipeline, so calls
    chain: ``c.pipeline().put(k, v).get(k).execute()``. Commands run in
    order on the connection but are not a transaction: use MPUT for an
    atomic write. A Pipeline is also a context manager that discards what
    was not executed.
    """

    def __init__(self, client, raise_on_error=True):
        self.client = client
        self.raise_on_error = raise_on_error
        self._queue = []  # (generator, its first request)

    def _run(self, gen):
        req = next(gen)
        try:
            cmds.check_pipelinable(req)
        except TypeError:
            gen.close()
            raise
        self._queue.append((gen, req))
        return self

    def __len__(self):
        return len(self._queue)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reset()

    def reset(self):
        """Discards the queued commands."""
        for gen, _ in self._queue:
            gen.close()
        self._queue = []

    def execute(self, raise_on_error=None):
        """Sends every queued command and returns their results in order."""
        if raise_on_error is None:
            raise_on_error = self.raise_on_error
        queue, self._queue = self._queue, []
        if not queue:
            return []
        c = self.client
        # A request too large to send fails in its place; the others go.
        frames = []
        for gen, req in queue:
            try:
                frames.append(p.encode(req, c.max_frame))
            except TkvError as e:
                gen.close()
                frames.append(e)
        sent = [f for f in frames if not isinstance(f, TkvError)]
        c._ensure()
        replies = iter(c._exchange(b"".join(sent), len(sent)))
        results = []
        # Every reply is read before any follow-up request (an MGET the
        # server cut short asks again), so those cannot interleave.
        for (gen, req), frame in zip(queue, frames):
            if isinstance(frame, TkvError):
                results.append(frame)
                continue
            try:
                results.append(c._drive(gen, req, next(replies)))
            except TkvError as e:
                results.append(e)
        if raise_on_error:
            for r in results:
                if isinstance(r, TkvError):
                    raise r
        return results

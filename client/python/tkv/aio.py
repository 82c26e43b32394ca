"""The asyncio client: the same commands as ``Client``, awaited.

One :class:`AsyncClient` is one connection shared by any number of tasks:
each command holds the connection while its request and reply pass (a
lock), so replies cannot be matched to the wrong request. For many
commands in one round trip, use :meth:`AsyncClient.pipeline`.

The pipeline writes its requests into the transport whole and then reads:
asyncio's transport sends in the background as the socket drains, so the
reading goes on while the server is still receiving (tkvd stops reading a
connection once 1 MiB of its replies are unread, PROTOCOL.md §7).
"""

import asyncio

from . import commands as cmds
from . import protocol as p
from .client import DEFAULT_PORT
from .errors import ConnectionError, ProtocolError, ServerError, TimeoutError, TkvError


#: asyncio.timeout (Python 3.11) if there is one.
_timeout = getattr(asyncio, "timeout", None)


class AsyncClient(cmds.Commands):
    """An asyncio connection to tkvd; arguments as for ``Client``.

    Every command method is a coroutine function: ``await c.put(k, v)``.
    A client belongs to the event loop that first uses it. Cancelling a
    command closes the connection (its reply would answer the next one);
    the next command opens a new one.
    """

    def __init__(self, host="127.0.0.1", port=DEFAULT_PORT, secret=None, timeout=30.0,
                 max_frame=p.DEFAULT_MAX_FRAME, max_reply=p.DEFAULT_MAX_REPLY,
                 unix_socket=None):
        self.host = host
        self.port = port
        self.unix_socket = unix_socket  # a path: tkvd --unix, instead of host and port
        self.secret = secret
        self.timeout = timeout
        self.max_frame = max_frame
        self.max_reply = max_reply
        self._reader = None
        self._writer = None
        self._lock = asyncio.Lock()

    async def connect(self):
        """Opens the connection now (commands do it when needed)."""
        async with self._lock:
            await self._connect()

    async def _connect(self):
        if self._writer is not None:
            return
        where = self.unix_socket or f"{self.host}:{self.port}"
        opening = (asyncio.open_unix_connection(self.unix_socket) if self.unix_socket
                   else asyncio.open_connection(self.host, self.port))
        try:
            r, w = await asyncio.wait_for(opening, self.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"connect to {where}: timed out") from None
        except OSError as e:
            raise ConnectionError(f"connect to {where}: {e}") from None
        self._reader, self._writer = r, w
        if self.secret is not None:
            try:
                await self._drive(cmds.auth(self.secret))
            except BaseException:
                await self._close()
                raise

    async def close(self):
        """Closes the connection; the next command opens a new one."""
        await self._close()

    async def _close(self):
        w, self._reader, self._writer = self._writer, None, None
        if w is not None:
            w.close()
            try:
                await w.wait_closed()
            except OSError:
                pass  # a reset while closing: closed all the same

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _ensure(self):
        # The server closed this idle connection (restart, --timeout, or the
        # close after a frame-level TOO_LARGE): open another; nothing was
        # sent on it, so nothing is lost.
        if self._writer is not None and (self._reader.at_eof() or self._writer.is_closing()):
            await self._close()
        await self._connect()

    async def _read_frame(self):
        (n,) = p.HEADER.unpack(await self._read(p.HEADER.size))
        if n > self.max_reply:  # checked before a byte of it is read
            raise ProtocolError(
                f"reply frame of {n} bytes exceeds the client's limit ({self.max_reply})")
        return await self._read(n)

    async def _read(self, n):
        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise ConnectionError("the server closed the connection") from None
        except OSError as e:
            raise ConnectionError(f"recv: {e}") from None

    async def _read_frames(self, n, frames):
        """Appends n frames to frames, each within the timeout of the one
        before (a long pipeline may take longer as a whole)."""
        if self.timeout is None:
            for _ in range(n):
                frames.append(await self._read_frame())
        elif _timeout is not None:
            # One rescheduled deadline: wait_for would wrap every frame's
            # read in a task of its own, which costs more than the read.
            loop = asyncio.get_running_loop()
            async with _timeout(self.timeout) as cm:
                for _ in range(n):
                    frames.append(await self._read_frame())
                    cm.reschedule(loop.time() + self.timeout)
        else:
            for _ in range(n):
                frames.append(await asyncio.wait_for(self._read_frame(), self.timeout))

    async def _exchange(self, out, n):
        """Writes out and reads n frames; as Client._exchange, a reply that
        never came is the ConnectionError in its place, and the connection
        is then dropped."""
        frames = []
        try:
            if out:
                self._writer.write(out)
            await self._read_frames(n, frames)
            if out:
                await self._writer.drain()
        except asyncio.TimeoutError:
            failure = TimeoutError(f"no reply within {self.timeout} s")
        except ConnectionError as e:
            failure = e
        except OSError as e:
            failure = ConnectionError(f"send: {e}")
        except BaseException:
            await self._close()  # cancelled mid-reply: the stream is lost
            raise
        else:
            if n and p.is_too_large(frames[-1]):
                await self._probe()
            return frames
        await self._close()  # the stream is broken, even if every reply came
        return frames + [failure] * (n - len(frames))

    async def _probe(self):
        """As Client._probe: after TOO_LARGE, a PING finds out whether the
        server is closing the connection, so the next command does not
        race with that close."""
        try:
            self._writer.write(p.PING_FRAME)
            frames = []
            await self._read_frames(1, frames)
        except (asyncio.TimeoutError, TkvError, OSError):
            await self._close()

    async def _drive(self, gen, req=None, reply=None):
        if req is None:
            req = next(gen)
        while True:
            if reply is None:
                out = b"" if req is cmds.MORE else p.encode(req, self.max_frame)
                if self._writer is None:
                    await self._connect()
                (reply,) = await self._exchange(out, 1)
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
                gen.close()  # a server sending malformed replies: drop it
                await self._close()
                raise
            reply = None

    async def _run(self, gen):
        req = next(gen)  # argument errors surface before any I/O
        async with self._lock:
            await self._ensure()
            return await self._drive(gen, req)

    def pipeline(self, raise_on_error=True):
        """An AsyncPipeline on this connection."""
        return AsyncPipeline(self, raise_on_error)

    async def scan_iter(self, prefix=None, count=None):
        """Yields every key starting with prefix (``async for``)."""
        cursor = None
        while True:
            page = await self.scan(prefix, cursor, count)
            for k in page.keys:
                yield k
            if page.cursor is None:
                return
            cursor = page.cursor

    async def range_iter(self, key, from_ts=None, to_ts=None, limit=None, reverse=False):
        """Yields the key's history lazily, one RANGE reply at a time."""
        while True:
            entries, truncated = await self.range_page(key, from_ts, to_ts, limit, reverse)
            for e in entries:
                yield e
            step = cmds.next_range(entries, truncated, from_ts, to_ts, limit, reverse)
            if step is None:
                return
            from_ts, to_ts, limit = step

    async def backup(self, out):
        """As Client.backup; out is a binary file object or a callable."""
        write = out if callable(out) else out.write
        try:
            return await self._run(cmds.backup(write))
        except BaseException:
            await self._close()
            raise


class AsyncPipeline(cmds.Commands):
    """As ``Pipeline``, for AsyncClient: queue without awaiting, then
    ``await pipe.execute()``."""

    def __init__(self, client, raise_on_error=True):
        self.client = client
        self.raise_on_error = raise_on_error
        self._queue = []

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

    def reset(self):
        for gen, _ in self._queue:
            gen.close()
        self._queue = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.reset()

    async def execute(self, raise_on_error=None):
        if raise_on_error is None:
            raise_on_error = self.raise_on_error
        queue, self._queue = self._queue, []
        if not queue:
            return []
        c = self.client
        frames = []  # as Pipeline.execute: a request too large fails in place
        for gen, req in queue:
            try:
                frames.append(p.encode(req, c.max_frame))
            except TkvError as e:
                gen.close()
                frames.append(e)
        sent = [f for f in frames if not isinstance(f, TkvError)]
        results = []
        async with c._lock:
            await c._ensure()
            replies = iter(await c._exchange(b"".join(sent), len(sent)))
            for (gen, req), frame in zip(queue, frames):
                if isinstance(frame, TkvError):
                    results.append(frame)
                    continue
                try:
                    results.append(await c._drive(gen, req, next(replies)))
                except TkvError as e:
                    results.append(e)
        if raise_on_error:
            for r in results:
                if isinstance(r, TkvError):
                    raise r
        return results

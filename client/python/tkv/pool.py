"""A pool of blocking clients for threaded programs.

A ``Client`` is one connection and not thread-safe (a reply must reach the
thread that sent its request). A :class:`Pool` lends each thread a client
of its own for as long as it needs one, and keeps the connections open
between loans, as redis-py's ConnectionPool does:

    pool = tkv.Pool("127.0.0.1", 7379, max_connections=8)
    with pool.client() as c:        # in any thread
        c.put("k", "v")
"""

import contextlib
import threading

from .client import DEFAULT_PORT, Client


class Pool:
    """Lends Clients to threads; at most ``max_connections`` exist at once
    (None: no limit), and a borrower waits up to ``wait`` seconds (None:
    for ever) for one to come back before TimeoutError. Other keyword
    arguments go to each Client (secret, timeout, max_frame...)."""

    def __init__(self, host="127.0.0.1", port=DEFAULT_PORT, max_connections=None,
                 wait=None, **client_args):
        self.host, self.port, self.client_args = host, port, client_args
        self.wait = wait
        self._idle = []  # clients not lent, most recently returned last
        self._lock = threading.Lock()
        self._slots = None if max_connections is None else \
            threading.BoundedSemaphore(max_connections)

    @contextlib.contextmanager
    def client(self):
        """A Client for this thread alone until the with-block ends."""
        if self._slots is not None and not self._slots.acquire(timeout=self.wait):
            raise TimeoutError(f"no connection free within {self.wait} s")
        try:
            with self._lock:
                c = self._idle.pop() if self._idle else None
            if c is None:
                c = Client(self.host, self.port, **self.client_args)
            try:
                yield c
            finally:
                # Back to the pool even after an exception: a Client that
                # was interrupted mid-reply has closed its connection, and
                # one that raised TkvError is in step (or closed, and opens
                # a new connection on its next command).
                with self._lock:
                    self._idle.append(c)
        finally:
            if self._slots is not None:
                self._slots.release()

    def close(self):
        """Closes the connections that are not lent now. A lent one returns
        to the pool when its with-block ends; a later close() closes it."""
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

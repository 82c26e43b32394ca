"""The tkv wire protocol without I/O: frames, requests and replies.

This module implements PROTOCOL.md for the Python client the way hiredis's
reader does for C: nothing here touches a socket. :class:`FrameReader` is
fed bytes and hands out whole frame payloads; :func:`encode` turns a request
into a frame; each command is a generator (see ``commands.py``) that yields
requests and receives decoded replies. The blocking client, the pipeline
and the asyncio client are thin drivers around these, so the three cannot
disagree about the protocol.

Lengths from the server are never trusted: a frame header is checked
against the reader's limit before any of its payload is buffered, and the
payload is unpacked by msgpack with limits derived from its own size.
"""

import struct

import msgpack

from .errors import ProtocolError, TooLargeError, error_for

HEADER = struct.Struct(">I")

#: The server's default --max-frame: the largest request this client sends
#: unless told otherwise (the server closes the connection on a larger one).
DEFAULT_MAX_FRAME = 8 * 1024 * 1024
#: The largest reply frame accepted, as libtkvclient: far above any reply a
#: server sends (replies stay below its --max-frame, at most 4 GiB - 1),
#: low enough that a corrupt header cannot make us buffer without bound.
DEFAULT_MAX_REPLY = 1 << 30


def encode(request, max_frame=DEFAULT_MAX_FRAME):
    """One request frame: the 4-byte big-endian length, then the payload.

    Raises TooLargeError, before anything is sent, for a frame above
    max_frame: the server would refuse it and close the connection.
    """
    try:
        payload = msgpack.packb(request, use_bin_type=True)
    except (OverflowError, ValueError) as e:
        raise ValueError(f"cannot encode {request[0]}: {e}") from None
    if len(payload) > max_frame:
        raise TooLargeError(
            12,
            f"{request[0]} request of {len(payload)} bytes exceeds max_frame "
            f"({max_frame}); not sent",
        )
    return HEADER.pack(len(payload)) + payload


def decode(payload):
    """Unpacks one reply payload and raises the ServerError it carries.

    Returns the reply array for statuses OK and NOT_FOUND.
    """
    try:
        # msgpack's unpackb bounds every declared length by the payload's
        # own size, so a lying header cannot make it allocate more.
        reply = msgpack.unpackb(
            payload, raw=False, use_list=True, strict_map_key=False,
            unicode_errors="surrogateescape")
    except Exception as e:  # msgpack raises several unrelated types
        raise ProtocolError(f"reply is not one MessagePack value: {e}") from None
    if not isinstance(reply, list) or not reply or not _is_uint(reply[0]):
        raise ProtocolError(f"reply is not [status, ...]: {reply!r:.80}")
    status = reply[0]
    if status >= 10:
        message = reply[1] if len(reply) > 1 else ""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        if not isinstance(message, str):
            raise ProtocolError(f"error reply without a message: {reply!r:.80}")
        raise error_for(status, message)
    if status > 1:
        raise ProtocolError(f"reply with status {status}")
    return reply


#: ["PING"], framed: the probe sent after a TOO_LARGE answer.
PING_FRAME = HEADER.pack(6) + b"\x91\xa4PING"


def is_too_large(payload):
    """Whether a reply payload is a TOO_LARGE error. The server answers a
    whole frame above its limit with one and then closes the connection,
    but a key or value above its limit with the same status and keeps it
    open; the client cannot tell which from the reply alone."""
    if len(payload) > 4096:  # error replies are short; a value is not one
        return False
    try:
        reply = msgpack.unpackb(payload, raw=True)
    except Exception:
        return False
    return isinstance(reply, list) and len(reply) > 0 and reply[0] == 12


class FrameReader:
    """Splits a byte stream into frame payloads; does no I/O.

    ``feed(data)`` appends bytes; ``frame()`` returns the next whole payload
    or None if more bytes are needed. A header above ``max_frame`` raises
    ProtocolError at once, before its payload is read.
    """

    def __init__(self, max_frame=DEFAULT_MAX_REPLY):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0  # start of the unread bytes; compacted lazily

    def feed(self, data):
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    def frame(self):
        held = len(self._buf) - self._pos
        if held < HEADER.size:
            return None
        (n,) = HEADER.unpack_from(self._buf, self._pos)
        if n > self.max_frame:
            raise ProtocolError(
                f"reply frame of {n} bytes exceeds the client's limit ({self.max_frame})")
        if held - HEADER.size < n:
            return None
        start = self._pos + HEADER.size
        payload = bytes(self._buf[start:start + n])
        self._pos = start + n
        # Drop consumed bytes once they dominate, so a long pipeline costs
        # linear time rather than a copy per frame.
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        return payload

    def pending(self):
        """Bytes held that are not yet a whole frame."""
        return len(self._buf) - self._pos


def _is_uint(x):
    return type(x) is int and x >= 0


# ---- argument checks: refuse what would not encode, before sending -------

def as_bytes(x, what):
    """A key, value or secret as bytes (str is encoded as UTF-8)."""
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode("utf-8")
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be bytes or str, not {type(x).__name__}")


def opt_uint(x, what):
    """An optional unsigned 64-bit argument (None: absent)."""
    if x is None:
        return None
    if type(x) is not int:  # bool is an int, but never meant as a time
        raise TypeError(f"{what} must be an int or None, not {type(x).__name__}")
    if x > 2**64 - 1:
        raise ValueError(f"{what} must be below 2^64")
    # A negative value is sent as is: the server answers OUT_OF_RANGE, as
    # PROTOCOL.md specifies, and the connection stays usable.
    return x


def request(name, *args):
    """[NAME, args...] with trailing absent (None) arguments left out."""
    n = len(args)
    while n and args[n - 1] is None:
        n -= 1
    return [name, *args[:n]]


# ---- reply shapes ---------------------------------------------------------

def fields(reply, n, what):
    """The reply's first n elements; later ones are ignored (§4: later
    protocol versions may append fields)."""
    if len(reply) < n:
        raise ProtocolError(f"{what} reply has {len(reply)} elements, wants {n}")
    return reply[:n]


def uint(x, what):
    if not _is_uint(x):
        raise ProtocolError(f"{what}: expected an unsigned integer, got {x!r:.40}")
    return x


def opt_uint_field(x, what):
    return None if x is None else uint(x, what)


def bin_field(x, what):
    if not isinstance(x, bytes):
        raise ProtocolError(f"{what}: expected bytes, got {type(x).__name__}")
    return x


def bool_field(x, what):
    if not isinstance(x, bool):
        raise ProtocolError(f"{what}: expected a boolean, got {x!r:.40}")
    return x


def list_field(x, what):
    if not isinstance(x, list):
        raise ProtocolError(f"{what}: expected an array, got {type(x).__name__}")
    return x

"""The client against a server that lies: a fake server on loopback sends
what tkvd never would. A frame length above the client's limit is refused
before a byte of the payload is read; a payload that is not a reply, or a
reply of the wrong shape, is a ProtocolError and the connection is
dropped; the next command opens a new one."""

import asyncio
import socket
import struct
import threading

import pytest

import tkv


class FakeServer:
    """Serves one connection per list of replies given, in order: each
    request frame on it gets the next reply of its list."""

    def __init__(self, *connections):
        self.connections = [list(c) for c in connections]
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for replies in self.connections:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while replies:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                    while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                        buf = buf[4 + struct.unpack(">I", buf[:4])[0]:]
                        conn.sendall(replies.pop(0))
                while conn.recv(65536):  # until the client closes
                    pass

    def close(self):
        self.sock.close()


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


PONG = frame(bytes([0x92, 0x00, 0xA4]) + b"PONG")


@pytest.mark.parametrize("bad, what", [
    (struct.pack(">I", 0x7FFFFFFF), "exceeds the client's limit"),  # a lying length
    (frame(b"\xc1"), "not one MessagePack value"),  # 0xc1 is never valid
    (frame(b"\x95\x00\x01\x05\xc0\xc0"), "expected bytes"),  # a value that is an int
    (frame(b"\x91\x00"), "reply has 1 elements"),  # too short
    (frame(b"\xa2ok"), "not [status, ...]"),
    (frame(b"\x92\x05\x00"), "status 5"),
])
def test_bad_reply_drops_the_connection(bad, what):
    fake = FakeServer([bad], [PONG])
    try:
        with tkv.Client("127.0.0.1", fake.port, timeout=5) as c:
            with pytest.raises(tkv.ProtocolError) as e:
                c.get("k")
            assert what in str(e.value)
            assert c._sock is None
            assert c.ping() == b"PONG"  # a new connection
    finally:
        fake.close()


def test_async_bad_length():
    fake = FakeServer([struct.pack(">I", 0x7FFFFFFF)], [PONG])

    async def main():
        async with tkv.AsyncClient("127.0.0.1", fake.port, timeout=5) as c:
            with pytest.raises(tkv.ProtocolError):
                await c.get("k")
            return await c.ping()

    try:
        assert asyncio.run(main()) == b"PONG"
    finally:
        fake.close()


def test_unknown_later_fields_are_ignored():
    # PROTOCOL.md §4: clients ignore elements after the documented ones.
    found = frame(b"\x96\x00\xc4\x01v\x05\xc0\xc0\xa5extra")
    fake = FakeServer([found])
    try:
        with tkv.Client("127.0.0.1", fake.port, timeout=5) as c:
            assert c.get("k") == tkv.Version(b"v", 5, None, None)
    finally:
        fake.close()

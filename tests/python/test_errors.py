"""Errors and limits: each status raises its class with the server's
message and leaves the connection usable; a frame the server refuses ends
the connection and the next command opens another; the client refuses
what it must not send and never trusts a reply length; replies the server
cut at its frame limit are continued. The server runs with small limits so
that a few values reach them."""

import os
import signal

import pytest

import tkv

MAX_FRAME = 64 * 1024
MAX_VALUE = 16 * 1024
TKVD_ARGS = ("--max-frame", str(MAX_FRAME), "--max-value", str(MAX_VALUE))


def connections_total(c):
    return c.stats()["connections_total"]


def test_oversize_value_keeps_the_connection(client, key):
    client.ping()
    sock, opened = client._sock, connections_total(client)
    with pytest.raises(tkv.TooLargeError) as e:
        client.put(key(), b"x" * (MAX_VALUE + 1))
    assert e.value.status == tkv.Status.TOO_LARGE
    assert f"the limit is {MAX_VALUE}" in e.value.message
    assert isinstance(e.value, tkv.RequestError) and isinstance(e.value, tkv.ServerError)
    # The same connection answers the next request.
    assert client.put(key(), b"x" * MAX_VALUE, ts=1) == 1
    assert client._sock is sock and connections_total(client) == opened
    assert client.get(key()).value == b"x" * MAX_VALUE


def test_status_classes_and_messages(client, key):
    cases = [
        (lambda: client.put(b"", "v"), tkv.BadRequestError, 10, "key must not be empty"),
        (lambda: client.command("FLY"), tkv.UnknownCommandError, 11, "unknown command 'FLY'"),
        (lambda: client.get(b"k" * 2000), tkv.TooLargeError, 12, "key is 2000 bytes"),
        (lambda: client.put(key(), "v", ts=-1), tkv.OutOfRangeError, 13, "must not be negative"),
        (lambda: client.command("GET", key(), 5, 1), tkv.BadRequestError, 10, "not both"),
        (lambda: client.command("AUTH", "x"), tkv.BadRequestError, 10, ""),
    ]
    sock = None
    for call, cls, status, text in cases:
        with pytest.raises(cls) as e:
            call()
        assert e.value.status == status and text in e.value.message
        assert isinstance(e.value, tkv.RequestError)
        assert str(e.value).startswith(f"{cls.name} ({status}): ")
        sock = sock or client._sock
        assert client._sock is sock  # still the same connection
    assert client.ping() == b"PONG"


def test_unknown_statuses_map_to_their_family():
    from tkv.errors import error_for
    assert type(error_for(14, "m")) is tkv.RequestError
    assert type(error_for(29, "m")) is tkv.ServerStateError
    assert type(error_for(39, "m")) is tkv.AuthError
    assert type(error_for(99, "m")) is tkv.ServerError
    assert isinstance(error_for(20, "disk"), tkv.StorageError)
    assert isinstance(error_for(21, "full"), tkv.BusyError)


def test_frame_above_the_servers_limit_reconnects(client, key):
    # The client allows 8 MiB frames, the server 64 KiB: it answers
    # TOO_LARGE and closes; the answer is reported, then a new connection
    # serves the next command (nothing is re-sent).
    client.ping()
    opened = connections_total(client)
    with pytest.raises(tkv.TooLargeError) as e:
        client.put(key(), b"x" * (MAX_FRAME + 100))
    assert "exceeds the maximum" in e.value.message
    assert client.put(key(), "after", ts=1) == 1
    assert connections_total(client) == opened + 1  # one new connection
    assert client.get(key()).value == b"after"


def test_client_refuses_a_frame_above_its_max_frame(server, key):
    with tkv.Client("127.0.0.1", server.port, timeout=10, max_frame=MAX_FRAME) as c:
        c.ping()
        sock, opened = c._sock, connections_total(c)
        with pytest.raises(tkv.TooLargeError) as e:
            c.put(key(), b"x" * MAX_FRAME)
        assert "not sent" in e.value.message
        assert c._sock is sock and connections_total(c) == opened
        assert c.get(key()).reason == tkv.MissReason.NO_KEY  # nothing was written


def test_reply_length_is_checked_before_reading(server, key):
    with tkv.Client("127.0.0.1", server.port, timeout=10) as c:
        c.put(key(), b"v" * 4000, ts=1)
    with tkv.Client("127.0.0.1", server.port, timeout=10, max_reply=1024) as c:
        with pytest.raises(tkv.ProtocolError) as e:
            c.get(key())
        assert "exceeds the client's limit (1024)" in str(e.value)
        assert c._sock is None  # the stream is abandoned ...
        assert c.ping() == b"PONG"  # ... and the next command reconnects


def test_bad_arguments_raise_before_sending(client):
    with pytest.raises(TypeError):
        client.put(123, "v")
    with pytest.raises(TypeError):
        client.get("k", ts="yesterday")
    with pytest.raises(ValueError):
        client.get("k", ts=2**64)
    assert client.ping() == b"PONG"


def test_timeout_drops_the_connection(server):
    with tkv.Client("127.0.0.1", server.port, timeout=0.3) as c:
        c.ping()
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(tkv.TimeoutError):
                c.ping()
            assert c._sock is None
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        c.timeout = 10
        assert c.ping() == b"PONG"


def test_range_continues_after_a_cut_reply(client, key):
    k = key()
    values = {ts: bytes([65 + ts]) * 15000 for ts in range(1, 11)}  # ~150 KB > frame
    for ts, v in values.items():
        client.put(k, v, ts=ts)
    entries, truncated = client.range_page(k)
    assert truncated and 0 < len(entries) < 10
    assert [(e.ts, e.value) for e in client.range(k)] == sorted(values.items())
    assert [e.ts for e in client.range(k, reverse=True)] == list(range(10, 0, -1))
    assert [e.ts for e in client.range(k, limit=7)] == list(range(1, 8))
    assert [e.ts for e in client.range(k, from_ts=3, to_ts=9, reverse=True)] == \
        list(range(9, 2, -1))
    assert [e.ts for e in client.range_iter(k)] == list(range(1, 11))


def test_mget_continues_after_a_cut_reply(client, key):
    keys = [key(f"m{i}") for i in range(10)]
    for i, k in enumerate(keys):
        client.put(k, bytes([65 + i]) * 15000, ts=5)
    got = client.mget(keys + [key("none")])
    assert [v.value for v in got[:10]] == [bytes([65 + i]) * 15000 for i in range(10)]
    assert got[10].reason == tkv.MissReason.NO_KEY
    # In a pipeline too: the rest is asked for after the pipeline's replies.
    got = client.pipeline().mget(keys).ping().execute()
    assert len(got[0]) == 10 and got[0][9].value == bytes([74]) * 15000
    assert got[1] == b"PONG"


def test_async_timeout_drops_the_connection(server):
    import asyncio

    async def main():
        async with tkv.AsyncClient("127.0.0.1", server.port, timeout=0.3) as c:
            await c.ping()
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises(tkv.TimeoutError):
                    await c.ping()
                assert c._writer is None
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            c.timeout = 10
            return await c.ping()

    assert asyncio.run(main()) == b"PONG"


def test_pipeline_too_large_request_fails_in_place(server, key):
    with tkv.Client("127.0.0.1", server.port, timeout=10, max_frame=MAX_FRAME) as c:
        got = c.pipeline(raise_on_error=False).put(key(), "small", ts=1) \
            .put(key(), b"x" * MAX_FRAME, ts=2).get(key()).execute()
        assert got[0] == 1 and isinstance(got[1], tkv.TooLargeError)
        assert got[2] == tkv.Version(b"small", 1, None, None)


def test_async_frame_above_the_servers_limit_reconnects(server, key):
    import asyncio

    async def main():
        async with tkv.AsyncClient("127.0.0.1", server.port, timeout=10) as c:
            with pytest.raises(tkv.TooLargeError) as e:
                await c.put(key(), b"x" * (MAX_FRAME + 100))
            assert "exceeds the maximum" in e.value.message
            assert await c.put(key(), "after", ts=1) == 1
            with pytest.raises(tkv.TooLargeError):  # a value: the connection stays
                await c.put(key(), b"x" * (MAX_VALUE + 1))
            writer = c._writer
            assert await c.get(key()) == tkv.Version(b"after", 1, None, None)
            assert c._writer is writer

    asyncio.run(main())

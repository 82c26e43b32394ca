"""The asyncio client: the same commands and answers as the blocking one,
pipelines, many tasks sharing one connection, errors that leave the
connection usable."""

import asyncio
import io

import pytest

import tkv
from tkv import Entry, Miss, MissReason, Version


def run(coro_fn, server):
    async def main():
        async with tkv.AsyncClient("127.0.0.1", server.port, timeout=10) as c:
            return await coro_fn(c)
    return asyncio.run(main())


def test_commands(server, key):
    k, m = key(), key("m")

    async def body(c):
        assert await c.ping() == b"PONG"
        assert await c.put(k, "iPhone 16", ts=100) == 100
        assert await c.put(k, "iPhone 17", ts=101) == 101
        assert await c.get(k, ts=100) == Version(b"iPhone 16", 100, 101, None)
        assert await c.get(k, ts=99) == Miss(MissReason.BEFORE_FIRST, 100, None)
        assert await c.get_version(k, -1) == Version(b"iPhone 17", 101, None, None)
        assert await c.range(k) == [Entry(100, b"iPhone 16"), Entry(101, b"iPhone 17")]
        assert [e.ts async for e in c.range_iter(k, reverse=True)] == [101, 100]
        assert await c.count(k) == 2
        assert await c.delete_at(k, 150) == 150
        assert (await c.get(k)).reason == MissReason.DELETED
        assert await c.mput([(m, "x", 1), (m, "y", 2)]) == [1, 2]
        assert [v.value for v in await c.mget([m, k], ts=1)] == [b"x", None]
        assert await c.retain(m, versions=1) == tkv.Retention(1, 2, True)
        assert await c.policy(m) == tkv.Policy(1, None, True, 2)
        assert [x async for x in c.scan_iter(key(""), count=1)] == [k, m]
        assert (await c.scan(key(""))).keys == [k, m]
        assert (await c.stats())["cmd_put"] >= 2
        d = await c.digest(10**18)
        assert len(d.digest) == 32 and d.at == 10**18 and d.keys == 2
        buf = io.BytesIO()
        info = await c.backup(buf)
        assert info == await c.digest(info.at)
        assert buf.getvalue()[:8] == b"TKVBACKP"
        assert await c.delete(m) == 1
        assert await c.command("PING", "raw") == [0, b"raw"]

    run(body, server)


def test_pipeline(server, key):
    k = key()

    async def body(c):
        pipe = c.pipeline()
        for ts in range(1, 501):
            pipe.put(k, f"v{ts}", ts=ts)
        pipe.count(k).get(k, ts=250).put(b"", "bad")
        got = await pipe.execute(raise_on_error=False)
        assert got[:500] == list(range(1, 501))
        assert got[500] == 500 and got[501] == Version(b"v250", 250, 251, None)
        assert isinstance(got[502], tkv.BadRequestError)
        with pytest.raises(tkv.BadRequestError):
            await c.pipeline().put(b"", "bad").ping().execute()
        return await c.ping()

    assert run(body, server) == b"PONG"


def test_tasks_share_one_connection(server, key):
    async def body(c):
        async def one(i):
            await c.put(key(str(i)), f"value {i}", ts=i + 1)
            return await c.get(key(str(i)))
        got = await asyncio.gather(*(one(i) for i in range(200)))
        assert [v.value for v in got] == [f"value {i}".encode() for i in range(200)]
        assert [v.ts for v in got] == list(range(1, 201))
        return (await c.stats())["connections"]

    assert run(body, server) >= 1


def test_errors_keep_the_connection(server, key):
    async def body(c):
        with pytest.raises(tkv.TooLargeError):
            await c.put(key(), b"x" * (1024 * 1024 + 1))
        writer = c._writer
        with pytest.raises(tkv.OutOfRangeError):
            await c.put(key(), "v", ttl=0)
        with pytest.raises(tkv.UnknownCommandError):
            await c.command("FLY")
        assert c._writer is writer
        assert await c.put(key(), "fine", ts=3) == 3

    run(body, server)


def test_reconnects_after_close(server, key):
    async def body(c):
        await c.put(key(), "v", ts=1)
        await c.close()
        return await c.get(key())

    assert run(body, server).value == b"v"


def test_cancelled_command_does_not_shift_replies(server, key):
    # A command cancelled while its reply is due must not leave that reply
    # to answer the next command.
    async def body(c):
        await c.put(key("slow"), b"s" * 500000, ts=1)
        await c.put(key("fast"), "fast", ts=1)
        task = asyncio.ensure_future(c.get(key("slow")))
        await asyncio.sleep(0)  # let it send
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await c.get(key("fast"))

    assert run(body, server).value == b"fast"

"""What tkvd tells about itself: SLOWLOG through the blocking client, a
pipeline and asyncio, and the latency, memory and disk fields of STATS.
The server logs every request (--slowlog-slower-than 0) and keeps three."""

import asyncio
import time

import tkv

TKVD_ARGS = ("--slowlog-slower-than", "0", "--slowlog-max-len", "3")


def test_slowlog(client, key):
    client.slowlog_reset()
    assert client.slowlog_len() == 0, "SLOWLOG itself is not logged"
    start = int(time.time() * 1e6)
    a, b = key("a"), key("b" * 200)
    client.put(a, "v")
    client.get(b)
    client.count(a)
    client.delete(a)
    assert client.slowlog_len() == 3, "four requests into a log of three"
    got = client.slowlog_get()
    assert [e.command for e in got] == ["DEL", "COUNT", "GET"]
    assert [e.id for e in got] == [got[0].id, got[0].id - 1, got[0].id - 2]
    assert got[0].key == a and not got[0].truncated
    assert got[2].key == b[:128] and got[2].key_len == len(b) and got[2].truncated
    for e in got:
        assert start <= e.time < start + 60_000_000
        assert e.client.startswith("127.0.0.1:")
        assert isinstance(e, tkv.SlowlogEntry)
    assert [e.command for e in client.slowlog_get(1)] == ["DEL"]
    assert client.slowlog_reset() == 3
    assert client.slowlog_get() == []


def test_slowlog_in_a_pipeline_and_asyncio(client, server, key):
    client.slowlog_reset()
    with client.pipeline() as p:
        p.put(key(), "v")
        p.slowlog_len()
        p.slowlog_get(5)
        put_ts, n, entries = p.execute()
    assert n == 1 and [e.command for e in entries] == ["PUT"]

    async def body():
        async with tkv.AsyncClient("127.0.0.1", server.port, timeout=10) as c:
            await c.ping()
            return await c.slowlog_len(), await c.slowlog_get(), await c.slowlog_reset()
    n, entries, removed = asyncio.run(body())
    assert n == 2 and [e.command for e in entries] == ["PING", "PUT"] and removed == 2


def test_latency_memory_and_disk_in_stats(client, key):
    before = client.stats().get("latency_put_count", 0)
    for i in range(10):
        client.put(key(str(i)), "v")
    st = client.stats()
    assert st["latency_put_count"] == before + 10
    assert st["latency_put_p50_us"] <= st["latency_put_p99_us"] <= st["latency_put_p999_us"] \
        <= st["latency_put_max_us"]
    assert st["rss_bytes"] > 0
    assert "disk_bytes" in st

"""Pipelines: queued commands go out in one write and their replies come
back in order; a failed command's error takes its place (or is raised once
every reply is read); a pipeline far bigger than the server's 1 MiB of
unread replies completes (reads and writes interleave)."""

import pytest

import tkv
from tkv import Miss, MissReason, Version


def test_results_in_order(client, key):
    k = key()
    pipe = client.pipeline()
    assert pipe.put(k, "a", ts=1) is pipe  # queuing chains
    pipe.put(k, "b", ts=2).get(k, ts=1).get(k).get(key("none")).count(k)
    pipe.range(k).mput([(key("m"), "x", 3)]).mget([k, key("m")], ts=2).ping()
    assert len(pipe) == 10
    assert pipe.execute() == [
        1, 2, Version(b"a", 1, 2, None), Version(b"b", 2, None, None),
        Miss(MissReason.NO_KEY, None, None), 2,
        [tkv.Entry(1, b"a"), tkv.Entry(2, b"b")], [3],
        [Version(b"b", 2, None, None), Miss(MissReason.BEFORE_FIRST, 3, None)], b"PONG"]
    assert len(pipe) == 0 and pipe.execute() == []


def test_one_write_for_the_whole_pipeline(client, key):
    calls = []
    real = client._exchange

    def spy(out, n):
        calls.append(n)
        return real(out, n)

    client._exchange = spy
    pipe = client.pipeline()
    for ts in range(100):
        pipe.put(key(), f"v{ts}", ts=ts)
    assert pipe.execute() == list(range(100))
    assert calls == [100]  # one exchange of 100 requests, not 100 round trips
    assert client.count(key()) == 100


def test_errors_in_place(client, key):
    k = key()
    pipe = client.pipeline(raise_on_error=False)
    pipe.put(k, "ok", ts=1).put(k, "bad", ts=2, ttl=0).command("FLY").get(k)
    ok, bad, fly, got = pipe.execute()
    assert ok == 1 and got == Version(b"ok", 1, None, None)
    assert isinstance(bad, tkv.OutOfRangeError) and "ttl" in bad.message
    assert isinstance(fly, tkv.UnknownCommandError)


def test_raise_after_every_reply(client, key):
    k = key()
    pipe = client.pipeline()
    pipe.put(k, "first", ts=1).put(b"", "bad").put(k, "after", ts=2)
    with pytest.raises(tkv.BadRequestError):
        pipe.execute()
    # The commands after the failed one ran, and the stream is still in step.
    assert [e.value for e in client.range(k)] == [b"first", b"after"]
    assert client.ping() == b"PONG"


def test_big_pipeline_does_not_deadlock(client, key):
    # 20000 GETs of a 1 KiB value under a 1000-byte key: 20 MiB of
    # requests and 40 MiB of replies, far above the 1 MiB after which tkvd
    # stops reading a client that does not read, and above what the socket
    # buffers hold: writing the whole pipeline before reading would hang.
    k = key().ljust(1000, b".")
    client.put(k, b"v" * 1024, ts=1)
    pipe = client.pipeline()
    for _ in range(20000):
        pipe.get(k)
    got = pipe.execute()
    assert len(got) == 20000 and all(v.value == b"v" * 1024 for v in got)
    assert client.ping() == b"PONG"


def test_context_manager_discards(client, key):
    with client.pipeline() as pipe:
        pipe.put(key(), "never sent", ts=1)
    assert len(pipe) == 0
    assert client.get(key()).reason == MissReason.NO_KEY


def test_streamed_command_refused(client):
    pipe = client.pipeline()
    with pytest.raises(TypeError):
        pipe._run(tkv.commands.backup(lambda b: None))
    with pytest.raises(TypeError):
        pipe.command("backup")
    assert len(pipe) == 0


def test_pool_lends_each_thread_its_own_connection(server, key):
    import threading

    pool = tkv.Pool("127.0.0.1", server.port, max_connections=3, timeout=10)
    with pool.client() as c:
        opened = c.stats()["connections_total"]
    errors = []

    def work(t):
        try:
            for i in range(200):
                with pool.client() as c:
                    assert c.put(key(f"t{t}"), f"{i}", ts=i + 1) == i + 1
                    assert c.get(key(f"t{t}")).value == f"{i}".encode()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with pool.client() as c:
        assert [c.count(key(f"t{t}")) for t in range(8)] == [200] * 8
        # Connections are reused: at most three exist, one was open already.
        assert c.stats()["connections_total"] - opened <= 2
    pool.close()

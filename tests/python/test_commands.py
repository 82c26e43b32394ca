"""Every command of the blocking client against a real tkvd, with the
answers PROTOCOL.md §6 specifies: versions as of a time, the five miss
reasons, tombstones, expiry, retention, batches, scans, digests, backups."""

import io
import time

import pytest

import tkv
from tkv import Entry, Miss, MissReason, Version
from tkvd import Tkvd

NOW_SLACK = 600 * 10**6  # µs: "the server's clock" within ten minutes of ours


def now_us():
    return time.time_ns() // 1000


def test_ping(client):
    assert client.ping() == b"PONG"
    assert client.ping("hello") == b"hello"
    assert client.ping(b"\x00\xff") == b"\x00\xff"


def test_put_get_as_of(client, key):
    k = key()
    assert client.put(k, "iPhone 16", ts=100) == 100
    assert client.put(k, b"iPhone 17", ts=101) == 101
    assert client.get(k, ts=100) == Version(b"iPhone 16", 100, next=101, expires=None)
    assert client.get(k, ts=100000) == Version(b"iPhone 17", 101, None, None)
    assert client.get(k) == client.get(k, ts=tkv.LATEST)
    # A version at an existing ts replaces it.
    assert client.put(k, "iPhone 16e", ts=100) == 100
    assert client.get(k, ts=100).value == b"iPhone 16e"


def test_put_at_server_clock(client, key):
    k = key()
    before = now_us()
    t1 = client.put(k, "a")
    t2 = client.put(k, "b")
    assert abs(t1 - before) < NOW_SLACK
    assert t2 > t1  # strictly after the newest version
    assert client.get(k) == Version(b"b", t2, None, None)
    client.put(k, "last", ts=tkv.LATEST)
    with pytest.raises(tkv.OutOfRangeError):  # no later timestamp exists
        client.put(k, "c")


def test_binary_safe_and_empty_value(client):
    k = b"\x00bin\xffkey"
    value = bytes(range(256))
    client.put(k, value, ts=1)
    client.put(k, b"", ts=2)
    assert client.get(k, ts=1).value == value
    empty = client.get(k, ts=2)
    assert empty.value == b"" and empty  # an empty value is found, truthy
    assert [e.value for e in client.range(k)] == [value, b""]


def test_miss_reasons(client, key):
    k = key()
    miss = client.get(key("nosuch"))
    assert miss == Miss(MissReason.NO_KEY, None, None)
    assert not miss and miss.value is None and not miss.found

    client.put(k, "v100", ts=100)
    client.put(k, "v200", ts=200)
    assert client.get(k, ts=99) == Miss(MissReason.BEFORE_FIRST, next=100, at=None)

    assert client.delete_at(k, 250) == 250
    assert client.get(k, ts=260) == Miss(MissReason.DELETED, next=None, at=250)
    assert client.get(k) == Miss(MissReason.DELETED, None, 250)
    assert client.get(k, ts=249).value == b"v200"  # earlier versions still answer

    assert client.get_version(k, 5) == Miss(MissReason.NO_SUCH_VERSION, None, None)

    client.put(k, "v300", ts=300)
    r = client.retain(k, versions=1)  # keeps v300 only: horizon 300
    assert (r.removable, r.horizon, r.complete) == (3, 300, True)
    assert client.get(k, ts=150) == Miss(MissReason.BELOW_HORIZON, next=300, at=300)
    assert client.get(k, ts=300).value == b"v300"


def test_get_version(client, key):
    k = key()
    for ts in (10, 20, 30):
        client.put(k, f"v{ts}", ts=ts)
    assert client.get_version(k, 1) == Version(b"v10", 10, 20, None)
    assert client.get_version(k, 2).value == b"v20"
    assert client.get_version(k, -1) == Version(b"v30", 30, None, None)
    assert client.get_version(k, -3).ts == 10
    with pytest.raises(tkv.OutOfRangeError):
        client.get_version(k, 0)
    # A key with no versions answers NO_KEY for every n, not NO_SUCH_VERSION.
    assert client.get_version(key("none"), 1).reason == MissReason.NO_KEY


def test_ttl_and_expiry(client, key):
    k = key()
    before = now_us()
    client.put(k, "short-lived", ttl=60 * 10**6)
    v = client.get(k)
    assert v.value == b"short-lived"
    assert before + 60 * 10**6 - NOW_SLACK < v.expires < before + 60 * 10**6 + NOW_SLACK
    (e,) = client.range(k)
    assert e.expires == v.expires

    # An expired version disappears: the one before it answers again.
    k2 = key("gone")
    client.put(k2, "old", ts=1)
    client.put(k2, "new", ttl=1)  # expires one microsecond from now
    assert client.get(k2) == Version(b"old", 1, None, None)
    assert client.count(k2) == 1
    with pytest.raises(tkv.OutOfRangeError):
        client.put(k2, "x", ttl=0)


def test_range(client, key):
    k = key()
    for ts in (100, 200, 300, 400):
        client.put(k, f"v{ts}", ts=ts)
    client.delete_at(k, 500)
    everything = client.range(k)
    assert everything == [Entry(100, b"v100"), Entry(200, b"v200"), Entry(300, b"v300"),
                          Entry(400, b"v400"), Entry(500, None)]
    assert everything[-1].tombstone and not everything[0].tombstone
    assert [e.ts for e in client.range(k, from_ts=200, to_ts=400)] == [200, 300, 400]
    assert [e.ts for e in client.range(k, reverse=True, limit=2)] == [500, 400]
    assert [e.ts for e in client.range(k, 150, 450, 10, True)] == [400, 300, 200]
    assert client.range(k, limit=0) == []
    assert client.range(k, from_ts=300, to_ts=200) == []
    assert client.range(key("none")) == []
    assert client.range_page(k, limit=2) == ([Entry(100, b"v100"), Entry(200, b"v200")], False)
    assert [e.ts for e in client.range_iter(k, from_ts=300)] == [300, 400, 500]


def test_count(client, key):
    k = key()
    for ts in (1, 2, 3):
        client.put(k, "x", ts=ts)
    client.delete_at(k, 4)
    assert client.count(k) == 4  # tombstones count
    assert client.count(k, from_ts=2) == 3
    assert client.count(k, to_ts=2) == 2
    assert client.count(k, 2, 3) == 2
    assert client.count(key("none")) == 0


def test_delete(client, key):
    k = key()
    client.put(k, "a", ts=1)
    client.put(k, "b", ts=2)
    assert client.delete(k) == 2
    assert client.get(k).reason == MissReason.NO_KEY
    assert client.range(k) == []
    assert client.delete(k) == 0


def test_delete_at_server_clock(client, key):
    k = key()
    t = client.put(k, "v")
    d = client.delete_at(k)
    assert d > t
    assert client.get(k) == Miss(MissReason.DELETED, None, d)
    assert client.get(k, ts=t).value == b"v"


def test_retain_and_policy(client, key):
    k = key()
    for ts in (10, 20, 30, 40):
        client.put(k, "x", ts=ts)
    assert client.policy(k) == tkv.Policy(None, None, False, None)
    dry = client.retain(k, versions=2, dry_run=True)
    assert dry == tkv.Retention(removable=2, horizon=30, complete=True)
    assert client.count(k) == 4  # a dry run changes nothing
    assert client.retain(k, versions=2) == dry
    assert client.count(k) == 2
    assert client.policy(k) == tkv.Policy(versions=2, age=None, own=True, horizon=30)
    # Every version is older than an hour: the one current an hour ago (40)
    # is kept and becomes the horizon.
    assert client.retain(k, age=3600 * 10**6) == tkv.Retention(1, 40, True)
    assert client.policy(k) == tkv.Policy(None, 3600 * 10**6, True, 40)
    assert [e.ts for e in client.range(k)] == [40]
    client.retain(k)  # both None: back to the server's default
    assert client.policy(k) == tkv.Policy(None, None, False, 40)
    with pytest.raises(tkv.OutOfRangeError):
        client.retain(k, versions=0)
    with pytest.raises(tkv.OutOfRangeError):  # below the horizon
        client.put(k, "x", ts=5)


def test_mput(client, key):
    a, b, c = key("a"), key("b"), key("c")
    stamps = client.mput([(a, "x", 1), [b, b"y", 2], {"key": c, "value": "z"}])
    assert stamps[:2] == [1, 2] and stamps[2] > 2
    assert client.get(a).value == b"x" and client.get(c).ts == stamps[2]
    client.mput([(a, "ttl", 5, 60 * 10**6)])
    assert client.get(a).expires is not None

    # All or nothing, with PUT's own error prefixed by the item's index.
    d = key("d")
    with pytest.raises(tkv.OutOfRangeError) as e:
        client.mput([(d, "fine", 1), (d, "bad", 2, 0)])
    assert e.value.message.startswith("MPUT item 1: ")
    assert client.get(d).reason == MissReason.NO_KEY
    with pytest.raises(tkv.BadRequestError):
        client.mput([])
    with pytest.raises(TypeError):
        client.mput([("only-a-key",)])


def test_mget(client, key):
    a, b = key("a"), key("b")
    client.put(a, "a1", ts=1)
    client.put(a, "a9", ts=9)
    client.put(b, "b7", ts=7)
    got = client.mget([a, b, key("none")], ts=5)
    assert got == [Version(b"a1", 1, 9, None), Miss(MissReason.BEFORE_FIRST, 7, None),
                   Miss(MissReason.NO_KEY, None, None)]
    assert [v.value for v in client.mget([b, a])] == [b"b7", b"a9"]
    with pytest.raises(tkv.BadRequestError):
        client.mget([])


def test_scan(client, key):
    prefix = key("scan/")
    keys = [prefix + bytes([c]) for c in b"edcba"]
    for k in keys:
        client.put(k, "v", ts=1)
    page = client.scan(prefix, count=2)
    assert page.keys == [prefix + b"a", prefix + b"b"] and page.cursor == prefix + b"b"
    page = client.scan(prefix, cursor=page.cursor, count=10)
    assert page == tkv.ScanPage([prefix + b"c", prefix + b"d", prefix + b"e"], None)
    assert list(client.scan_iter(prefix, count=2)) == sorted(keys)
    assert prefix + b"c" in list(client.scan_iter())  # every key, default pages
    with pytest.raises(tkv.OutOfRangeError):
        client.scan(count=0)


def test_digest(client, key):
    at = now_us() + 10**6
    d1 = client.digest(at)
    assert len(d1.digest) == 32 and d1.at == at
    assert client.digest(at) == d1  # the same state hashes the same
    client.put(key(), "change", ts=1)
    d2 = client.digest(at)
    assert d2.digest != d1.digest
    assert (d2.keys, d2.versions) == (d1.keys + 1, d1.versions + 1)
    assert abs(client.digest().at - now_us()) < NOW_SLACK


def test_stats(client, server):
    before = client.stats()["cmd_put"]
    client.put(b"stats-key", "v", ts=1)
    st = client.stats()
    assert st["cmd_put"] == before + 1
    assert st["pid"] == server.proc.pid
    assert isinstance(st["version"], str) and st["fsync"] == "always"
    assert st["connections"] >= 1


def test_backup_and_restore(client, key):
    client.put(key(), "in the backup", ts=7)
    buf = io.BytesIO()
    info = client.backup(buf)
    data = buf.getvalue()
    assert data[:8] == b"TKVBACKP"
    assert info == client.digest(info.at)  # the trailer holds the live digest
    chunks = []  # a callable takes the chunks as well as a file
    again = client.backup(chunks.append)
    assert b"".join(chunks)[:8] == b"TKVBACKP" and again.keys == info.keys

    # Its records (between the 24-byte header and the 85-byte trailer),
    # restored into an empty server, give the same digest there.
    other = Tkvd().start()
    try:
        with tkv.Client("127.0.0.1", other.port, timeout=10) as c2:
            r = c2.restore_records(data[24:-85])
            assert (r.written, r.skipped) == (info.versions, 0)
            assert c2.digest(info.at) == info
            assert c2.get(key(), ts=7).value == b"in the backup"
            with pytest.raises(tkv.BadRequestError):  # without merge: keys exist
                c2.restore_records(data[24:-85])
            assert c2.restore_records(data[24:-85], merge=True).skipped == info.versions
    finally:
        other.cleanup()


def test_raw_command(client):
    assert client.command("PING") == [0, "PONG"]
    with pytest.raises(tkv.UnknownCommandError) as e:
        client.command("FLY")
    assert e.value.message == "unknown command 'FLY'" and e.value.status == 11
    assert client.ping() == b"PONG"


def test_restore_a_whole_backup(client, key):
    # 2500 versions of one key and a few small keys: three requests, the
    # big key cut across them (each piece repeats its key and continues).
    big = key("big")
    client.mput([(big, f"v{ts}", ts) for ts in range(1, 2501)])
    client.retain(key("policy-only"), versions=3)
    buf = io.BytesIO()
    info = client.backup(buf)
    data = buf.getvalue()
    from tkv import backup as bk
    digest, records = bk.check(data)
    assert digest == info
    assert [cont for _, cont in bk.batches(records)] == [False, True, True]

    other = Tkvd().start()
    try:
        with tkv.Client("127.0.0.1", other.port, timeout=10) as c2:
            with pytest.raises(tkv.InvalidBackupError):
                c2.restore(data[:-1])  # truncated: nothing is sent
            with pytest.raises(tkv.InvalidBackupError):
                c2.restore(data[:100] + bytes([data[100] ^ 1]) + data[101:])
            assert c2.digest(info.at).keys == 0
            assert c2.restore(data) == tkv.Restored(info.versions, 0)
            assert c2.digest(info.at) == info
            assert c2.count(big) == 2500
            assert c2.policy(key("policy-only")).versions == 3
            assert c2.restore(data, merge=True) == tkv.Restored(0, info.versions)
    finally:
        other.cleanup()

"""Every tkv command, once, for all three clients.

Each command is a generator: it yields a request (a list for
``protocol.encode``) and is sent back the decoded reply - status OK or
NOT_FOUND; error statuses are raised by the driver before the generator
sees them - and its return value is the command's result. A command that
needs several round trips (MGET and RANGE continuing after a reply the
server cut at its frame limit) simply yields again. A driver decides how
the bytes move: ``Client`` sends and waits, ``Pipeline`` queues the first
requests and sends them in one write, ``AsyncClient`` awaits.

:class:`Commands` turns the generators into methods; each driver supplies
``_run(gen)``. The method names follow libtkvclient (client/include/tkv/
client.h) in Python spelling: ``delete`` for DEL, ``delete_at`` for a
tombstone.
"""

import hashlib

from . import protocol as p
from .errors import ProtocolError
from .types import (LATEST, Digest, Entry, Miss, MissReason, Policy, Restored,
                    Retention, ScanPage, SlotRange, SlowlogEntry, Version)

#: Yielded instead of a request: read one more frame of the same reply
#: (BACKUP's stream) without sending anything.
MORE = object()

#: Commands whose reply is a stream of frames: a pipeline cannot carry
#: them, since it reads exactly one frame per request.
STREAMED = frozenset({"BACKUP"})


def check_pipelinable(req):
    name = req[0]
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("latin-1")
    if isinstance(name, str) and name.upper() in STREAMED:
        raise TypeError(f"{name} streams its reply: use backup(), not a pipeline or "
                        "command()")


def _version(reply, what="GET"):
    """A GET answer: [0, value, ts, next, expires] or [1, reason, next, at]."""
    if reply[0] == 0:
        _, value, ts, nxt, expires = p.fields(reply, 5, what)
        return Version(p.bin_field(value, what), p.uint(ts, what),
                       p.opt_uint_field(nxt, what), p.opt_uint_field(expires, what))
    _, reason, nxt, at = p.fields(reply, 4, what)
    reason = p.uint(reason, what)
    try:
        reason = MissReason(reason)
    except ValueError:
        pass  # a reason from a later server: keep the number
    return Miss(reason, p.opt_uint_field(nxt, what), p.opt_uint_field(at, what))


def _ok(reply, what):
    if reply[0] != 0:
        raise ProtocolError(f"{what} answered NOT_FOUND")
    return reply


def raw(args):
    """Any request, for commands this client does not know yet: the reply
    array as unpacked (after the status check)."""
    if not args:
        raise TypeError("command() needs a command name")
    check_pipelinable(args)  # one reply frame per request, here too
    return (yield list(args))


def ping(message=None):
    msg = None if message is None else p.as_bytes(message, "message")
    reply = _ok((yield p.request("PING", msg)), "PING")
    (_, text) = p.fields(reply, 2, "PING")
    if isinstance(text, str):
        return text.encode()
    return p.bin_field(text, "PING")


def auth(secret):
    _ok((yield ["AUTH", p.as_bytes(secret, "secret")]), "AUTH")
    return True


def put(key, value, ts=None, ttl=None):
    req = p.request("PUT", p.as_bytes(key, "key"), p.as_bytes(value, "value"),
                    p.opt_uint(ts, "ts"), p.opt_uint(ttl, "ttl"))
    reply = _ok((yield req), "PUT")
    return p.uint(p.fields(reply, 2, "PUT")[1], "PUT ts")


def get(key, ts=None):
    return _version((yield p.request("GET", p.as_bytes(key, "key"), p.opt_uint(ts, "ts"))))


def get_version(key, n):
    if type(n) is not int:
        raise TypeError("n must be an int")
    return _version((yield ["GET", p.as_bytes(key, "key"), None, n]))


def _entries(items):
    out = []
    for it in p.list_field(items, "RANGE"):
        it = p.list_field(it, "RANGE version")
        if len(it) < 2:
            raise ProtocolError("RANGE version with fewer than 2 elements")
        value = None if it[1] is None else p.bin_field(it[1], "RANGE value")
        expires = p.opt_uint_field(it[2], "RANGE expires") if len(it) > 2 else None
        out.append(Entry(p.uint(it[0], "RANGE ts"), value, expires))
    return out


def range_page(key, from_ts=None, to_ts=None, limit=None, reverse=False):
    """One RANGE request: (entries, truncated)."""
    req = p.request("RANGE", p.as_bytes(key, "key"), p.opt_uint(from_ts, "from_ts"),
                    p.opt_uint(to_ts, "to_ts"), p.opt_uint(limit, "limit"),
                    True if reverse else None)
    reply = _ok((yield req), "RANGE")
    _, items, truncated = p.fields(reply, 3, "RANGE")
    return _entries(items), p.bool_field(truncated, "RANGE truncated")


def next_range(entries, truncated, from_ts, to_ts, limit, reverse):
    """The arguments of the RANGE that continues a cut one, or None when the
    history is complete. Raises ProtocolError for a cut reply with nothing
    in it, which would otherwise loop for ever."""
    if not truncated:
        return None
    if not entries:
        raise ProtocolError("RANGE reply cut short with no versions")
    last = entries[-1].ts
    if limit is not None:
        limit -= len(entries)
        if limit <= 0:
            return None
    if reverse:
        if last == 0:
            return None
        return from_ts, last - 1, limit
    if last == LATEST:
        return None
    return last + 1, to_ts, limit


def range_(key, from_ts=None, to_ts=None, limit=None, reverse=False):
    """The versions of key in [from_ts, to_ts], oldest first (newest first
    with reverse), at most limit; continues after replies the server cut
    at its frame limit (each reply is then a snapshot of its own)."""
    out = []
    while True:
        entries, truncated = yield from range_page(key, from_ts, to_ts, limit, reverse)
        out += entries
        step = next_range(entries, truncated, from_ts, to_ts, limit, reverse)
        if step is None:
            return out
        from_ts, to_ts, limit = step


def count(key, from_ts=None, to_ts=None):
    req = p.request("COUNT", p.as_bytes(key, "key"), p.opt_uint(from_ts, "from_ts"),
                    p.opt_uint(to_ts, "to_ts"))
    reply = _ok((yield req), "COUNT")
    return p.uint(p.fields(reply, 2, "COUNT")[1], "COUNT")


def delete(key):
    reply = _ok((yield ["DEL", p.as_bytes(key, "key")]), "DEL")
    return p.uint(p.fields(reply, 2, "DEL")[1], "DEL")


def delete_at(key, ts=None):
    at = True if ts is None else p.opt_uint(ts, "ts")
    reply = _ok((yield ["DEL", p.as_bytes(key, "key"), at]), "DEL")
    return p.uint(p.fields(reply, 2, "DEL")[1], "DEL ts")


def retain(key, versions=None, age=None, dry_run=False):
    req = p.request("RETAIN", p.as_bytes(key, "key"), p.opt_uint(versions, "versions"),
                    p.opt_uint(age, "age"), True if dry_run else None)
    reply = _ok((yield req), "RETAIN")
    _, removable, horizon, complete = p.fields(reply, 4, "RETAIN")
    return Retention(p.uint(removable, "RETAIN"), p.opt_uint_field(horizon, "RETAIN"),
                     p.bool_field(complete, "RETAIN"))


def policy(key):
    reply = _ok((yield ["POLICY", p.as_bytes(key, "key")]), "POLICY")
    _, versions, age, own, horizon = p.fields(reply, 5, "POLICY")
    return Policy(p.opt_uint_field(versions, "POLICY"), p.opt_uint_field(age, "POLICY"),
                  p.bool_field(own, "POLICY"), p.opt_uint_field(horizon, "POLICY"))


def _item(it):
    """An MPUT item: (key, value[, ts[, ttl]]) or a dict with those names."""
    if isinstance(it, dict):
        it = (it["key"], it["value"], it.get("ts"), it.get("ttl"))
    if not isinstance(it, (tuple, list)) or not 2 <= len(it) <= 4:
        raise TypeError("an MPUT item is (key, value[, ts[, ttl]])")
    key, value, ts, ttl = (*it, None, None)[:4]
    return p.request(p.as_bytes(key, "key"), p.as_bytes(value, "value"),
                     p.opt_uint(ts, "ts"), p.opt_uint(ttl, "ttl"))


def mput(items):
    """Writes every item in one storage batch, all or nothing; returns the
    timestamps stored, one per item."""
    req = ["MPUT", [_item(it) for it in items]]
    reply = _ok((yield req), "MPUT")
    stamps = p.list_field(p.fields(reply, 2, "MPUT")[1], "MPUT")
    if len(stamps) != len(req[1]):
        raise ProtocolError(f"MPUT of {len(req[1])} items answered {len(stamps)} stamps")
    return [p.uint(t, "MPUT ts") for t in stamps]


def mget(keys, ts=None):
    """Reads keys as of ts, one Version or Miss per key, in order. One
    snapshot when the answers fit one reply frame; otherwise the server
    answers the first keys and this asks again for the rest at the same ts
    (each reply a snapshot of its own), as libtkvclient's tkv_mget does."""
    keys = [p.as_bytes(k, "key") for k in keys]
    ts = p.opt_uint(ts, "ts")
    out = []
    while True:
        reply = _ok((yield ["MGET", ts, keys[len(out):]]), "MGET")
        _, answers, truncated = p.fields(reply, 3, "MGET")
        answers = p.list_field(answers, "MGET")
        left = len(keys) - len(out)
        if not answers or len(answers) > left:
            raise ProtocolError(f"MGET of {left} keys answered {len(answers)}")
        for a in answers:
            a = p.list_field(a, "MGET answer")
            if not a or a[0] not in (0, 1):
                raise ProtocolError(f"MGET answer {a!r:.40}")
            out.append(_version(a, "MGET"))
        if len(out) == len(keys):
            return out
        if not p.bool_field(truncated, "MGET truncated"):
            raise ProtocolError("MGET answered fewer keys without saying so")


def scan(prefix=None, cursor=None, count=None):
    req = p.request("SCAN", None if prefix is None else p.as_bytes(prefix, "prefix"),
                    None if cursor is None else p.as_bytes(cursor, "cursor"),
                    p.opt_uint(count, "count"))
    reply = _ok((yield req), "SCAN")
    _, keys, nxt = p.fields(reply, 3, "SCAN")
    keys = [p.bin_field(k, "SCAN key") for k in p.list_field(keys, "SCAN")]
    return ScanPage(keys, None if nxt is None else p.bin_field(nxt, "SCAN cursor"))


def digest(at=None):
    reply = _ok((yield p.request("DIGEST", p.opt_uint(at, "at"))), "DIGEST")
    _, d, at, keys, versions = p.fields(reply, 5, "DIGEST")
    d = p.bin_field(d, "DIGEST")
    if len(d) != 32:
        raise ProtocolError(f"DIGEST of {len(d)} bytes")
    return Digest(d, p.uint(at, "DIGEST"), p.uint(keys, "DIGEST"),
                  p.uint(versions, "DIGEST"))


def stats():
    reply = _ok((yield ["STATS"]), "STATS")
    fields = p.fields(reply, 2, "STATS")[1]
    if not isinstance(fields, dict):
        raise ProtocolError("STATS reply without a map")
    return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
            for k, v in fields.items()}


def replicaof(host=None, port=None):
    """REPLICAOF host port, or REPLICAOF NO ONE when host is None."""
    args = ["REPLICAOF", "NO", "ONE"] if host is None else ["REPLICAOF", host, int(port)]
    _ok((yield args), "REPLICAOF")
    return None


def role():
    """ROLE: the replication role and state, a dict as STATS gives."""
    reply = _ok((yield ["ROLE"]), "ROLE")
    fields = p.fields(reply, 2, "ROLE")[1]
    if not isinstance(fields, dict):
        raise ProtocolError("ROLE reply without a map")
    return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v
            for k, v in fields.items()}


def wait(replicas, timeout_ms):
    """WAIT: how many replicas acknowledged this connection's writes."""
    reply = _ok((yield ["WAIT", int(replicas), int(timeout_ms)]), "WAIT")
    return p.uint(p.fields(reply, 2, "WAIT")[1], "WAIT")


def _addr(x, what):
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, str):
        return x
    raise ProtocolError(f"{what}: expected an address, got {x!r:.40}")


def asking():
    """ASKING: the next request on this connection may use a slot the node
    imports (PROTOCOL.md §6, "Moving slots")."""
    _ok((yield ["ASKING"]), "ASKING")
    return True


def cluster_shards():
    """The cluster's map as the node holds it (PROTOCOL.md §6, "Clusters"):
    (revision, [SlotRange...]) in slot order. BadRequestError from a server
    that is not a cluster node."""
    reply = _ok((yield ["CLUSTER", "SHARDS"]), "CLUSTER")
    _, rev, ranges = p.fields(reply, 3, "CLUSTER")
    if not isinstance(ranges, list):
        raise ProtocolError("CLUSTER SHARDS reply without a list of ranges")
    out = []
    for r in ranges:
        if not isinstance(r, list) or len(r) < 4 or not isinstance(r[3], list):
            raise ProtocolError(f"CLUSTER SHARDS range {r!r:.60}")
        out.append(SlotRange(p.uint(r[0], "CLUSTER"), p.uint(r[1], "CLUSTER"),
                             _addr(r[2], "CLUSTER"),
                             tuple(_addr(a, "CLUSTER") for a in r[3])))
    return p.uint(rev, "CLUSTER"), out


def _slow_entry(e):
    what = "SLOWLOG GET"
    if not isinstance(e, list) or len(e) < 7:
        raise ProtocolError(f"{what} entry {e!r:.60}")
    key = p.bin_field(e[4], what)
    return SlowlogEntry(p.uint(e[0], what), p.uint(e[1], what), p.uint(e[2], what),
                        _addr(e[3], what), key, p.uint(e[5], what), _addr(e[6], what))


def slowlog_get(n=None):
    """SLOWLOG GET [n]: the newest n entries (the server's default 10 when
    None), newest first, as SlowlogEntry."""
    req = ["SLOWLOG", "GET"] if n is None else ["SLOWLOG", "GET", int(n)]
    reply = _ok((yield req), "SLOWLOG")
    _, _length, entries = p.fields(reply, 3, "SLOWLOG GET")
    return [_slow_entry(e) for e in p.list_field(entries, "SLOWLOG GET")]


def slowlog_len():
    """SLOWLOG LEN: how many entries the slow log holds."""
    reply = _ok((yield ["SLOWLOG", "LEN"]), "SLOWLOG")
    return p.uint(p.fields(reply, 2, "SLOWLOG LEN")[1], "SLOWLOG LEN")


def slowlog_reset():
    """SLOWLOG RESET: empties the slow log; how many entries it held."""
    reply = _ok((yield ["SLOWLOG", "RESET"]), "SLOWLOG")
    return p.uint(p.fields(reply, 2, "SLOWLOG RESET")[1], "SLOWLOG RESET")


def restore_records(records, merge=False, cont=False):
    """One RESTORE request: whole backup records (PROTOCOL.md §9), no header
    or trailer. All or nothing."""
    req = p.request("RESTORE", p.as_bytes(records, "records"), True if merge else None,
                    True if cont else None)
    reply = _ok((yield req), "RESTORE")
    _, written, skipped = p.fields(reply, 3, "RESTORE")
    return Restored(p.uint(written, "RESTORE"), p.uint(skipped, "RESTORE"))


def restore(data, merge=False):
    """A whole backup (bytes as BACKUP produced them) into the server, in
    RESTORE requests of at most a thousand versions and 1 MiB each, each
    all or nothing. The backup is checked whole first: a damaged one raises
    InvalidBackupError and sends nothing. Returns the total Restored."""
    from . import backup as bk

    _, records = bk.check(data)
    written = skipped = 0
    for recs, cont in bk.batches(records):
        r = yield from restore_records(recs, merge, cont)
        written += r.written
        skipped += r.skipped
    return Restored(written, skipped)


def backup(write):
    """Streams a backup to write(chunk) and checks it as it goes: the
    trailer's digest and checksum (SHA-256, §9). Returns the Digest the
    backup holds. Cannot be pipelined: its reply is a stream of frames."""
    check = _BackupCheck()
    req = ["BACKUP"]
    while True:
        reply = _ok((yield req), "BACKUP")
        _, chunk, last = p.fields(reply, 3, "BACKUP")
        chunk = p.bin_field(chunk, "BACKUP chunk")
        check.feed(chunk)
        write(chunk)
        if p.bool_field(last, "BACKUP last"):
            return check.finish()
        req = MORE


class _BackupCheck:
    """Checks a backup stream without holding it: the checksum covers every
    byte but its own 32, the digest the records between the 24-byte header
    and the 85-byte trailer record; so the hashes run 85 bytes behind the
    stream, which is all that is kept."""

    TAIL = 85

    def __init__(self):
        self.header = b""
        self.held = b""
        self.total = 0
        self.checksum = hashlib.sha256()
        self.records = hashlib.sha256()

    def feed(self, chunk):
        if len(self.header) < 24:
            self.header += chunk[:24 - len(self.header)]
        self.held += chunk
        self.total += len(chunk)
        if len(self.held) > self.TAIL:
            out, self.held = self.held[:-self.TAIL], self.held[-self.TAIL:]
            self.checksum.update(out)
            start = max(0, 24 - (self.total - len(self.held) - len(out)))
            self.records.update(out[start:])

    def finish(self):
        if self.total < 24 + self.TAIL or self.held[0:5] != b"E\x00\x00\x00\x50":
            raise ProtocolError("backup stream without a trailer")
        self.checksum.update(self.held[:-32])
        body = self.held[5:]
        keys, versions = int.from_bytes(body[0:8], "big"), int.from_bytes(body[8:16], "big")
        if self.records.digest() != body[16:48]:
            raise ProtocolError("backup digest does not match its records")
        if self.checksum.digest() != body[48:80]:
            raise ProtocolError("backup checksum does not match")
        if self.header[:8] != b"TKVBACKP" or self.header[8:12] != b"\x00\x00\x00\x01":
            raise ProtocolError("backup stream without a version 1 header")
        return Digest(body[16:48], int.from_bytes(self.header[16:24], "big"), keys, versions)


class Commands:
    """The command methods; a driver provides ``_run(gen)``.

    Timestamps are ints (µs since the epoch by convention); keys and values
    are bytes, or str sent as UTF-8; values come back as bytes.
    """

    def _run(self, gen):
        raise NotImplementedError

    def command(self, *args):
        """Sends [args...] as is and returns the reply array unpacked, for
        commands this client has no method for. Error statuses raise as
        usual; [1, ...] (a miss) is returned."""
        return self._run(raw(args))

    def ping(self, message=None):
        """b"PONG", or the message echoed back as bytes."""
        return self._run(ping(message))

    def auth(self, secret):
        """Presents the server's secret; AuthFailedError if wrong."""
        return self._run(auth(secret))

    def put(self, key, value, ts=None, ttl=None):
        """Stores a version at ts (None: the server's clock, after the key's
        newest version), expiring ttl µs from now if given; returns the
        timestamp stored."""
        return self._run(put(key, value, ts, ttl))

    def get(self, key, ts=None):
        """The version current at ts (None: the newest): a Version, or a Miss
        saying why there is none."""
        return self._run(get(key, ts))

    def get_version(self, key, n):
        """The n-th version: 1 the oldest, -1 the newest."""
        return self._run(get_version(key, n))

    def range(self, key, from_ts=None, to_ts=None, limit=None, reverse=False):
        """The key's history: a list of Entry with from_ts <= ts <= to_ts
        (both inclusive), oldest first unless reverse, at most limit."""
        return self._run(range_(key, from_ts, to_ts, limit, reverse))

    def range_page(self, key, from_ts=None, to_ts=None, limit=None, reverse=False):
        """One RANGE request: (entries, truncated) as the server sent it."""
        return self._run(range_page(key, from_ts, to_ts, limit, reverse))

    def count(self, key, from_ts=None, to_ts=None):
        """Visible versions with from_ts <= ts <= to_ts (tombstones count)."""
        return self._run(count(key, from_ts, to_ts))

    def delete(self, key):
        """Removes every version of key and its policy; returns how many
        visible versions it had."""
        return self._run(delete(key))

    def delete_at(self, key, ts=None):
        """Writes a tombstone at ts (None: the server's clock); returns its
        timestamp. Earlier versions still answer reads as of earlier times."""
        return self._run(delete_at(key, ts))

    def retain(self, key, versions=None, age=None, dry_run=False):
        """Sets the key's retention (both None: back to the server's
        default), or with dry_run only reports; returns a Retention."""
        return self._run(retain(key, versions, age, dry_run))

    def policy(self, key):
        """The retention in effect for key, as a Policy."""
        return self._run(policy(key))

    def mput(self, items):
        """Writes items - (key, value[, ts[, ttl]]) each - atomically;
        returns their timestamps."""
        return self._run(mput(items))

    def mget(self, keys, ts=None):
        """Reads keys as of ts: a list of Version or Miss, in key order."""
        return self._run(mget(keys, ts))

    def scan(self, prefix=None, cursor=None, count=None):
        """One page of keys (a ScanPage): those starting with prefix, after
        cursor, at most count (server default 100)."""
        return self._run(scan(prefix, cursor, count))

    def digest(self, at=None):
        """A hash of the whole visible state, as a Digest."""
        return self._run(digest(at))

    def stats(self):
        """The server's statistics, a dict of str to int or str."""
        return self._run(stats())

    def replicaof(self, host=None, port=None):
        """Makes the server a replica of host:port, or a primary again
        (host None: REPLICAOF NO ONE)."""
        return self._run(replicaof(host, port))

    def role(self):
        """The replication role and state (ROLE): a dict with "role",
        "replid", "offset", and a primary's replicas or a replica's link."""
        return self._run(role())

    def wait(self, replicas, timeout_ms):
        """WAIT: blocks until `replicas` replicas have acknowledged every
        write this connection made, or timeout_ms (0: no limit); returns
        how many had. Raise the client's timeout for a long wait."""
        return self._run(wait(replicas, timeout_ms))

    def cluster_shards(self):
        """A cluster node's map: (revision, [SlotRange...]) in slot order.
        Keys of slots another node serves raise MovedError (its slot and
        addr say where); keys of several slots in one mput or mget raise
        CrossSlotError."""
        return self._run(cluster_shards())

    def slowlog_get(self, n=None):
        """The newest n entries of the slow log (server default 10), newest
        first: [SlowlogEntry...]. The server logs requests that took at
        least its --slowlog-slower-than µs (SLOWLOG itself never)."""
        return self._run(slowlog_get(n))

    def slowlog_len(self):
        """How many entries the slow log holds."""
        return self._run(slowlog_len())

    def slowlog_reset(self):
        """Empties the slow log; returns how many entries it held."""
        return self._run(slowlog_reset())

    def asking(self):
        """Lets the next request (only that one) use a slot this node
        imports: after an AskError, send asking() and the request to the
        node it names."""
        return self._run(asking())

    def restore(self, data, merge=False):
        """Restores a whole backup (checked first); returns a Restored.
        Without merge a key the server already has fails the request that
        carries it (BadRequestError): the keys before it stay restored, and
        a run with merge=True completes it."""
        return self._run(restore(data, merge))

    def restore_records(self, records, merge=False, cont=False):
        """One RESTORE request of backup records; returns a Restored."""
        return self._run(restore_records(records, merge, cont))

#!/usr/bin/env python3
"""Writes the seed corpora of the tkv fuzz targets into tests/fuzz/corpus/.

The request frames are the byte-for-byte examples of PROTOCOL.md; the input
layouts are described at the top of each fuzz_<target>.c. Run it again after
changing a layout; the output is deterministic.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


# Request payloads from PROTOCOL.md (section 6), without their length prefix.
REQ = {
    "ping": h("91 a4 50 49 4e 47"),
    "put_ts": h("94 a3 50 55 54 c4 05 69 74 65 6d 31 c4 09 69 50 68 6f 6e 65 20 31 36 64"),
    "put_nots": h("93 a3 50 55 54 c4 01 6b c4 01 76"),
    "get_100": h("93 a3 47 45 54 c4 05 69 74 65 6d 31 64"),
    "get_99": h("93 a3 47 45 54 c4 05 69 74 65 6d 31 63"),
    "get_nosuch": h("92 a3 47 45 54 c4 06 6e 6f 73 75 63 68"),
    "range": h("96 a5 52 41 4e 47 45 c4 05 69 74 65 6d 31 64 cc c8 0a c3"),
    "del": h("92 a3 44 45 4c c4 05 69 74 65 6d 31"),
    "fly": h("91 a3 46 4c 59"),
    "stats": h("91 a5 53 54 41 54 53"),
    "put_ttl": h("95 a3 50 55 54 c4 01 73 c4 03 74 6f 6b cd 01 2c ce 03 93 87 00"),
    "get_260": h("93 a3 47 45 54 c4 01 6b cd 01 04"),
    "get_newest_version": h("94 a3 47 45 54 c4 01 6b c0 ff"),
    "range_k": h("92 a5 52 41 4e 47 45 c4 01 6b"),
    "count_k": h("92 a5 43 4f 55 4e 54 c4 01 6b"),
    "del_at_250": h("93 a3 44 45 4c c4 01 6b cc fa"),
    "retain_dry": h("95 a6 52 45 54 41 49 4e c4 01 6b 01 c0 c3"),
    "policy_k": h("92 a6 50 4f 4c 49 43 59 c4 01 6b"),
    "mput": h("92 a4 4d 50 55 54 92 93 c4 01 61 c4 01 78 01 93 c4 01 62 c4 01 79 02"),
    "mget": h("93 a4 4d 47 45 54 05 92 c4 01 61 c4 02 7a 7a"),
    "scan_a": h("94 a4 53 43 41 4e c4 01 61 c0 0a"),
    "auth": h("92 a4 41 55 54 48 a5 73 33 63 72 33"),
    # PUT item1 "iPhone 17" at 101, for the README's history.
    "put_101": h("94 a3 50 55 54 c4 05 69 74 65 6d 31 c4 09 69 50 68 6f 6e 65 20 31 37 65"),
}

# Reply payloads from PROTOCOL.md.
REPLY = [
    h("92 0b b5 75 6e 6b 6e 6f 77 6e 20 63 6f 6d 6d 61 6e 64 20 27 46 4c 59 27"),
    h("92 00 a4 50 4f 4e 47"),
    h("92 00 64"),
    h("92 00 cf 00 06 60 d3 ee 92 09 8e"),
    h("94 00 c4 09 69 50 68 6f 6e 65 20 31 36 64 65"),
    h("93 01 01 64"),
    h("93 01 00 c0"),
    h("93 00 dd 00 00 00 02 92 65 c4 09 69 50 68 6f 6e 65 20 31 37"
      " 92 64 c4 09 69 50 68 6f 6e 65 20 31 36 c2"),
    h("92 00 02"),
]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame_seeds():
    # [cfg: max_frame index | (reps - 1) << 4][schedule length][schedule][stream]
    reqs = b"".join(frame(p) for p in REQ.values())
    replies = b"".join(frame(p) for p in REPLY)
    write("fuzz_frame", "requests_one_feed", bytes([0x0f, 0]) + reqs)
    write("fuzz_frame", "requests_byte_at_a_time", bytes([0x0f, 1, 0x00]) + reqs)
    # space()/commit() with chunk sizes 3, 7, 64 and drain budgets 1, 3, all.
    write("fuzz_frame", "replies_socket_path", bytes([0x0e, 3, 0xa9, 0xd2, 0x15]) + replies)
    # A header one byte above max_frame (8 MiB): ETOOBIG.
    write("fuzz_frame", "too_big", bytes([0x0f, 0]) + frame(REQ["ping"]) +
          struct.pack(">I", (8 << 20) + 1) + b"\x91")
    # The array32 claiming four billion elements, an empty frame, a map,
    # ext and floats for the msgpack-c comparison.
    write("fuzz_frame", "lying_counts", bytes([0x0f, 0]) + frame(h("dd ff ff ff ff 01")) +
          frame(b"") + frame(h("82 a1 61 cb 3f f0 00 00 00 00 00 00 c7 02 05 ab cd"
                               " ca 40 49 0f db d4 01 ff")))
    # 40 nested one-element arrays: valid, deeper than msgpack-c's stack.
    write("fuzz_frame", "deep_nesting", bytes([0x0f, 0]) + frame(b"\x91" * 40 + b"\xc0"))
    # Empty frames with max_frame 0, repeated 16 times (67 KB), fed 4 KB at
    # a time without serving: the buffer passes its cap (feeds may).
    write("fuzz_frame", "backlog_at_cap", bytes([0xf0, 1, 0x98]) + b"\0" * 4200)
    # A frame split across feeds of 4 and 2 bytes, then a shrink.
    write("fuzz_frame", "split_and_shrink", bytes([0x0f, 2, 0x0c, 0x07]) +
          frame(REQ["range"]) + frame(REQ["get_99"]))


def request_seeds():
    def raw(mode, *names):
        out = bytes([0x80 | mode])
        for n in names:
            out += struct.pack(">H", len(REQ[n])) + REQ[n]
        return out

    write("fuzz_request", "raw_protocol_examples",
          raw(0, "ping", "put_ts", "put_101", "put_nots", "get_100", "get_99", "get_nosuch",
              "range", "stats", "del", "fly"))
    write("fuzz_request", "raw_versioned_examples",
          raw(0, "put_ttl", "put_nots", "get_260", "get_newest_version", "range_k", "count_k",
              "del_at_250", "get_260", "retain_dry", "policy_k", "mput", "mget", "scan_a"))
    write("fuzz_request", "raw_auth_session", raw(0x0c, "put_nots", "auth", "put_nots"))
    write("fuzz_request", "raw_range_small_reply", raw(3, "put_ts", "put_101", "range"))

    # Structured: op bytes as read by run_structured() and request_gen.c
    # (op, enc, flags, opt, then the command's own bytes).
    PUT, GET, RANGE, DEL, COUNT, MPUT, MGET, SCAN, RETAIN, POLICY, PING, STATS, AUTH = (
        0, 4, 7, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19)
    COMMIT, SETCLOCK, CLOCK_UP, SWEEP, REOPEN = 20, 21, 22, 23, 24
    FAULT, ADVANCE, TICK = 28, 29, 30

    def op(o, *rest):
        return bytes([o, 0, 0]) + bytes(rest)

    def put(key, ts=None, val=0x04, ttl=None):
        opt = (ts is not None) | (ttl is not None) << 1
        out = op(PUT, opt, key, val)
        out += bytes([ts]) if ts is not None else b""
        return out + (bytes([ttl]) if ttl is not None else b"")

    def get(key, ts=None, version=None):
        if version is not None:
            return op(GET, 2, key, version)
        return op(GET, 1, key, ts) if ts is not None else op(GET, 0, key)

    def rng(key, frm=None, to=None, limit=None, reverse=None):
        opt = (frm is not None) | (to is not None) << 1 | (limit is not None) << 2
        if reverse is not None:
            opt |= 8 | (16 if reverse else 0)
        return op(RANGE, opt, key) + bytes(v for v in (frm, to, limit) if v is not None)

    def tomb(key, ts=None):
        return op(DEL, 1, key, ts) if ts is not None else op(DEL, 2, key)

    def delete(key):
        return op(DEL, 0, key)

    def count(key):
        return op(COUNT, 0, key)

    def retain(key, versions, dry=False):
        return op(RETAIN, 2 | (4 if dry else 0), key, versions)

    def sweep(full=True):
        return bytes([SWEEP, 1 if full else 0])

    C = bytes([COMMIT])
    # Six versions of "a", committed: only three stay in memory, so reads
    # and writes below the watermark go to LevelDB.
    history = b"".join(put(0, ts) for ts in (1, 3, 5, 7, 9, 11)) + C
    write("fuzz_request", "evicted_history",
          b"\x00" + history + get(0, 2) + get(0, 6) + get(0, 0) + get(0) + rng(0) +
          rng(0, 2, 8, reverse=True) + put(0, 4) + get(0, 4) + rng(0, 0, 9) + C +
          rng(0, 1, 11, 3) + count(0) + get(0, version=1) + get(0, version=4))
    write("fuzz_request", "reopen_and_fill",
          b"\x00" + history + put(1, 2) + bytes([REOPEN, 0]) + get(0, 4) + rng(0) +
          put(0, 0) + delete(0) + get(0))
    write("fuzz_request", "tiny_budget_evictions",
          b"\x00" + bytes([REOPEN, 2]) + b"".join(put(k, ts, 0x81) for k in (0, 1, 2, 3)
                                                 for ts in (1, 2)) + C +
          get(0, 1) + get(3) + rng(1) + C + put(2, 0) + C + rng(2, reverse=True))
    # PUT without ts after a version in the future and at UINT64_MAX
    # (ts bytes 0x8e, 0x82: special_ts[14] = 1000, [2] = UINT64_MAX).
    write("fuzz_request", "auto_ts",
          b"\x00" + put(2, 0x8e) + put(2) + put(2) + put(2, 0x82) + put(2) + get(2))
    write("fuzz_request", "injected_errors",
          b"\x00" + bytes([PUT, 0x03, 0x0e, 1, 0, 4, 1, 2]) +
          bytes([GET, 0x51, 0x0f, 0, 1, 5]) + bytes([PING, 0, 0x0e, 1, 3, 0x61, 0x62]) +
          bytes([STATS, 0, 0, 0]) + bytes([RETAIN, 0, 0x0e, 0, 0, 7, 7]))
    write("fuzz_request", "small_reply_truncation",
          b"\x03" + b"".join(put(0, ts, 0x87) for ts in (1, 2, 3, 4)) + rng(0) +
          rng(0, reverse=True))
    # A session on a server with a secret: refused, wrong secret, secret.
    write("fuzz_request", "auth_session",
          b"\x0c" + put(0, 1) + op(AUTH, 2) + get(0) + op(AUTH, 0) + put(0, 1) + get(0) +
          op(STATS, 0))
    # Tombstones: DEL at a time, DEL true (at the clock), versions by number.
    write("fuzz_request", "tombstones",
          b"\x00" + put(0, 1) + tomb(0, 3) + get(0, 2) + get(0, 4) + get(0) + rng(0) +
          count(0) + get(0, version=3) + put(0, 5) + tomb(0) + get(0) + C + get(0, 3))
    # TTL: expiring versions disappear as the clock moves; the sweep
    # removes them without changing an answer (ttl byte 1: 5 us).
    write("fuzz_request", "ttl_expiry",
          b"\x00" + put(0, 1, ttl=1) + put(0, 2) + put(0, 3, ttl=2) + get(0) + C +
          bytes([CLOCK_UP, 1]) + get(0) + rng(0) + count(0) + sweep() + get(0) + rng(0) +
          op(SCAN, 1, 0x01) + delete(0))
    # Retention: keep 2 versions; reads before the horizon are refused, so
    # are writes; a dry run; the policy; then a sweep.
    write("fuzz_request", "retention",
          b"\x00" + b"".join(put(1, ts) for ts in (1, 2, 3, 4, 5, 6)) +
          retain(1, 2, dry=True) + retain(1, 2) + C + op(POLICY, 0, 1) + get(1, 1) +
          get(1, 5) + rng(1) + put(1, 2) + put(1, 7) + count(1) + C + op(POLICY, 0, 1))
    # MPUT, MGET, SCAN with a prefix and a cursor.
    write("fuzz_request", "batches_and_scan",
          b"\x00" + op(MPUT, 2, 0, 0, 4, 1, 1, 4, 3, 0, 0x10, 4) + op(MGET, 3, 0, 1, 0x10, 2) +
          C + op(SCAN, 1, 0x02) + op(SCAN, 5, 1, 0) + op(SCAN, 6, 0, 0) + op(MGET, 8, 1, 0))
    # MPUT of the same key twice: checked one by one it is fine, staged in
    # order the second write has no later timestamp: the batch must fail.
    write("fuzz_request", "mput_dependent_items",
          b"\x00" + put(3, 1) + op(MPUT, 1, 1, 0, 4, 0x82, 0, 0, 4) + get(0) + C + get(3))
    # Storage faults: a log write fails (FAULT 0x07), the commit is rolled
    # back, a restart loses nothing committed.
    hist5 = b"".join(put(0, ts) for ts in (1, 3, 5, 7, 9)) + C
    write("fuzz_request", "write_fault_rollback",
          b"\x00" + hist5 + bytes([FAULT, 7]) + put(1, 2) + put(0, 4) + C + get(1) +
          get(0, 4) + rng(0) + bytes([REOPEN, 0]) + get(1) + put(1, 2) + C + get(1))
    # The write fails, then LevelDB's reopen in the recovery fails too
    # (FAULT 0x04): the store stays closed, reads that need LevelDB get
    # STORAGE, a TICK after the probe interval brings it back.
    write("fuzz_request", "store_stays_closed",
          b"\x00" + hist5 + bytes([FAULT, 4]) + put(1, 2) + C + bytes([ADVANCE]) +
          put(1, 3) + C + get(0, 2) + rng(0) + get(0) + bytes([ADVANCE, TICK]) + get(0, 2) +
          rng(0) + put(1, 4) + C + get(1))


def frame_regressions():
    d = os.path.join(HERE, "regressions", "fuzz_frame")
    os.makedirs(d, exist_ok=True)
    # Empty frames with max_frame 0, repeated 16 times (67 KB), read through
    # space() (want 4 KB) without serving any: once the buffer holds
    # max_frame + 4 + 64 KiB, space() grows it by one byte per call instead
    # of offering 0 bytes.
    with open(os.path.join(d, "space-grows-past-cap"), "wb") as f:
        f.write(bytes([0xf0, 1, 0x9a]) + b"\0" * 4200)


def request_regressions():
    """Reproducers of reported findings (tests/fuzz/regressions/), in the
    structured layout: they fail until the code under test is fixed."""
    def reg(name, data):
        d = os.path.join(HERE, "regressions", "fuzz_request")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    def put(key, ts):
        return bytes([0, 0, 0, 1, key, 4, ts])

    def get(key, ts=None):
        return bytes([4, 0, 0, 1, key, ts]) if ts is not None else bytes([4, 0, 0, 0, key])

    C, FAULT_SYNC, SYNC, ADVANCE = b"\x14", b"\x1c\x00", b"\x1f\x00", b"\x1d"
    REOPEN_EVERYSEC = b"\x18\x04"
    # The commit's sync fails: STORAGE, rolled back; a restart brings the
    # batch back from LevelDB's log.
    reg("sync-failure-resurrected-on-reopen", b"\x00" + FAULT_SYNC + put(0, 1) + C + get(0))
    # A failed sync; the next commit recovers the store and reloads the
    # counters from disk, losing its own staged deltas.
    # (everysec: the second commit within the second leaves a write unsynced
    # for SYNC to sync.)
    reg("recovery-loses-counter-deltas",
        b"\x00" + REOPEN_EVERYSEC + put(0, 1) + C + put(0, 2) + C + FAULT_SYNC + SYNC +
        ADVANCE + put(1, 5) + C + get(0))
    # ["SCAN"]: no prefix, no cursor: memcpy from NULL (UBSan).
    reg("scan-without-prefix-memcpy-null", b"\x80\x00\x06\x91\xa4SCAN")
    # RETAIN keeps 1 version; a newer PUT; the sweep moves the horizon and
    # the older version disappears from reads: the sweep changed an answer.
    reg("sweep-moves-retention-horizon",
        b"\x00" + b"".join(put(1, ts) for ts in (1, 2, 3)) +
        bytes([15, 0, 0, 0, 1, 1]) + C + put(1, 4) + C + b"\x17\x01" + get(1, 3))
    # An expired version below the watermark: the sweep deletes it (staged)
    # and raises the key's earliest expiry at once, so until the commit
    # reads take it from LevelDB as if it had never expired.
    reg("sweep-uncommitted-expired-version-reappears",
        b"\x00" + bytes([0, 0, 0, 3, 0, 4, 1, 1]) + put(0, 2) + put(0, 3) + put(0, 4) + C +
        b"\x16\x01\x17\x01")
    # The sweep deletes a non-resident key's expired version (staged) and
    # counts it; a DEL in the same batch loads the key from LevelDB, where
    # the version still is, and counts it again: versions = 2^64 - 1.
    reg("sweep-then-del-counts-twice",
        b"\x00" + bytes([0, 0, 0, 3, 0, 4, 1, 1]) + put(0, 2) + C + b"\x18\x00\x16\x01\x17\x16" +
        bytes([9, 0, 0, 0, 0]) + C)
    # A partial sweep deletes four expired versions and stops inside the
    # key; its commit fails (a log write) and is rolled back. The next pass
    # resumes inside the key, past the versions it had deleted, finds no
    # expiring version left and clears the key's earliest expiry: the four
    # expired versions, still stored, read as live again.
    reg("sweep-resume-after-rollback-unhides-expired",
        b"\x00" + put(0, 0) + b"".join(bytes([0, 0, 0, 3, 0, 4, t, 1]) for t in range(1, 7)) +
        C + b"\x16\x01\x1c\x07\x17\x04" + ADVANCE + put(1, 1) + b"\x17\x01" +
        bytes([7, 0, 0, 0, 0]))
    # POLICY and SCAN replies that show uncommitted changes are not dirty.
    reg("policy-reply-not-dirty", b"\x00" + put(1, 1) + bytes([15, 0, 0, 0, 1, 1, 16, 0, 0, 0, 1]))
    reg("scan-reply-not-dirty", b"\x00" + put(0, 1) + bytes([14, 0, 0, 1, 0x02]))


def reply_seeds():
    # [cfg: first command | max_frame index << 4][stream of reply frames]
    cmds = ["PING", "PUT", "GET", "RANGE", "DEL", "STATS", "AUTH", "COUNT", "MPUT", "MGET",
            "SCAN", "RETAIN", "POLICY"]
    c = {name: i for i, name in enumerate(cmds)}
    # Each PROTOCOL.md reply as an answer to every command in turn.
    write("fuzz_reply", "protocol_examples", bytes([0]) + b"".join(frame(p) for p in REPLY))
    # One reply of each shape, in command order, as tkvd writes them.
    shapes = [
        h("92 00 c4 02 68 69"),                                   # PING echo
        h("92 00 cd 01 2c"),                                      # PUT
        h("95 00 c4 01 76 64 65 ce 05 f5 e1 00"),                 # GET found
        h("93 00 dd 00 00 00 02 92 01 c0 93 02 c4 01 61 05 c3"),  # RANGE, a tombstone
        h("92 00 03"),                                            # DEL
        h("92 00 82 a4 6b 65 79 73 05 a7 76 65 72 73 69 6f 6e a5 30 2e 31 2e 30"),  # STATS
        h("91 00"),                                               # AUTH
        h("92 00 00"),                                            # COUNT
        h("92 00 92 01 02"),                                      # MPUT
        h("93 00 dd 00 00 00 02 95 00 c4 00 01 c0 c0 94 01 02 c0 05 c2"),  # MGET
        h("93 00 dd 00 00 00 02 c4 01 61 c4 01 62 c4 01 62"),     # SCAN with a cursor
        h("94 00 02 cc c8 c3"),                                   # RETAIN
        h("95 00 03 c0 c2 c0"),                                   # POLICY
    ]
    write("fuzz_reply", "every_shape", bytes([0]) + b"".join(frame(p) for p in shapes))
    # SLOWLOG GET (a cut key among its entries), then LEN; check_frame
    # decodes every frame as a reply to every command, SLOWLOG included.
    entry = (lambda i, cmd, key, key_len, client:
             bytes([0x97, i]) + h("cf 00 06 28 34 2b e5 52 40 cd 3b 7e") +
             bytes([0xa0 | len(cmd)]) + cmd + bytes([0xc4, len(key)]) + key +
             h("cd") + struct.pack(">H", key_len) + bytes([0xa0 | len(client)]) + client)
    write("fuzz_reply", "slowlog", bytes([0]) +
          frame(h("93 00 02 92") + entry(7, b"MGET", b"user:1", 6, b"127.0.0.1:51234") +
                entry(6, b"GET", b"k" * 128, 300, b"[::1]:7001")) +
          frame(h("92 00 05")))
    write("fuzz_reply", "get_miss_small_frames", bytes([c["GET"] | 0x20]) +
          frame(h("94 01 02 c0 cd 01 2c")) + frame(h("94 01 03 05 cc 64")))
    # Lies: counts beyond the bytes, a deep nest, a header above max_frame.
    write("fuzz_reply", "lying_counts", bytes([c["RANGE"]]) +
          frame(h("93 00 dd ff ff ff ff c2")) + frame(h("92 00 df 00 01 00 00")) +
          frame(b"\x91" * 40 + b"\xc0") + frame(h("92 28 a3 62 61 64")))
    write("fuzz_reply", "too_big", bytes([c["MGET"] | 0x10]) + frame(h("91 00")) +
          struct.pack(">I", 65) + b"\0" * 65)


def keycodec_seeds():
    # [mode: klen | 0x20 same key | ts mode << 6][key][ts]
    write("fuzz_keycodec", "plain", bytes([0x45]) + b"item1" + b"\x64" +
          bytes([0x65]) + b"\x65" + bytes([0x05]) + b"item2" + b"\0" * 7 + b"\x01")
    write("fuzz_keycodec", "zeros_and_ff", bytes([0x43]) + b"a\0b" + b"\x01" +
          bytes([0x42]) + b"a\0" + b"\x02" + bytes([0x41]) + b"a" + b"\x03" +
          bytes([0x42]) + b"a\xff" + b"\x04" + bytes([0x81]) + b"\0" + b"\x00")
    write("fuzz_keycodec", "extreme_ts", bytes([0x01]) + b"k" + b"\xff" * 8 +
          bytes([0x21]) + b"\0" * 8 + bytes([0xa0]) + b"\x00" + bytes([0x40]) + b"\x00")
    write("fuzz_keycodec", "encoded_version", b"vitem1\x00\x01" + b"\xff" * 7 + b"\x9b")


def bk_rec(t, body):
    return t + struct.pack(">I", len(body)) + body


def bk_key(key, own=False, versions=0, age=0, horizon=0):
    return bk_rec(b"K", struct.pack(">BIQQ", 1 if own else 0, versions, age, horizon) + key)


def bk_ver(ts, value=b"", tombstone=False, expires=0):
    return bk_rec(b"V", struct.pack(">QBQ", ts, 1 if tombstone else 0, expires) + value)


def bk_file(at, recs, keys, versions):
    import hashlib
    head = b"TKVBACKP" + struct.pack(">IIQ", 1, 0, at)
    body = b"".join(recs)
    trailer = b"E" + struct.pack(">IQQ", 80, keys, versions) + hashlib.sha256(body).digest()
    return head + body + trailer + hashlib.sha256(head + body + trailer).digest()


def backup_seeds():
    # [cfg: bit 0 bare records | max_value index << 1 | chunk size - 1 << 3][bytes]
    # PROTOCOL.md's example, fed whole-ish and a byte at a time.
    example = bk_file(1000, [bk_key(b"k"), bk_ver(5, b"v")], 1, 1)
    write("fuzz_backup", "protocol_example", bytes([0xf8]) + example)
    write("fuzz_backup", "protocol_example_bytewise", bytes([0x00]) + example)
    # Policies, horizons, tombstones, expiry, an empty store.
    write("fuzz_backup", "every_field", bytes([0x10]) + bk_file(
        77, [bk_key(b"a\0b", True, 3, 7, 50), bk_ver(60, b"xy", expires=999),
             bk_ver(50, tombstone=True), bk_key(b"z", horizon=9)], 2, 2))
    write("fuzz_backup", "empty_store", bytes([0x08]) + bk_file(0, [], 0, 0))
    # RESTORE's payload: bare records, two keys.
    write("fuzz_backup", "bare_records", bytes([0x01]) + bk_key(b"kkk") + bk_ver(7, b"v") +
          bk_ver(3, tombstone=True) + bk_key(b"kkl", horizon=2) + bk_ver(2, b"w"))


def repl_seeds():
    # Replication frame payloads (protocol/repl.h), as msgpack by hand.
    def b(x):
        return bytes([0xc4, len(x)]) + x
    batch = (bytes([0x93, 0xa1]) + b"B" + bytes([0xcd, 0x01, 0x00]) +
             bytes([0xdd, 0, 0, 0, 2]) + bytes([0x92]) + b(b"vk\x00\x01" + bytes(8)) + b(b"\x00v") +
             bytes([0x91]) + b(b"vj\x00\x01" + bytes(8)))
    write("fuzz_repl", "batch", batch)
    snap = (bytes([0x92, 0xa1]) + b"S" + bytes([0xdd, 0, 0, 0, 1]) + bytes([0x92]) + b(b"mcounters") +
            b(bytes(24)))
    write("fuzz_repl", "snapshot", snap)
    write("fuzz_repl", "full", bytes([0x93, 0xa1]) + b"F" + bytes([0xd9, 40]) + b"0" * 40 + bytes([7]))
    write("fuzz_repl", "ping", bytes([0x92, 0xa1]) + b"P" + bytes([0xcc, 200]))


# fuzz_watch: [filter byte][prefix][T] then a "B" frame's payload (or a push).
def wbin(x):
    return bytes([0xc4, len(x)]) + x


def w_ver(key, ts):
    return (b"v" + key.replace(b"\0", b"\0\xff") + b"\0\1" +
            struct.pack(">Q", ~ts & 0xffffffffffffffff))


def w_batch(off, recs):
    out = bytes([0x93, 0xa1, ord("B"), 0xcd]) + struct.pack(">H", off)
    out += bytes([0xdd]) + struct.pack(">I", len(recs))
    for r in recs:
        out += bytes([0x90 | len(r)]) + b"".join(wbin(x) for x in r)
    return out


def watch_seeds():
    meta = bytes([1, 1]) + struct.pack(">QQIQ", 50, 2**64 - 1, 3, 0)
    write("fuzz_watch", "prefix_a", bytes([2]) + b"a" + bytes([0]) + w_batch(300, [
        (w_ver(b"a1", 10), b"\0hello"), (w_ver(b"b", 11), b"\0x"), (w_ver(b"a2", 12), b"\1"),
        (w_ver(b"a3", 13), b"\2" + struct.pack(">Q", 99) + b"v")]))
    write("fuzz_watch", "asof_k", bytes([3]) + b"k" + bytes([100]) + w_batch(500, [
        (w_ver(b"k", 50), b"\0old"), (w_ver(b"k", 150), b"\0new"), (w_ver(b"k", 40),),
        (b"vk\0\0", meta), (b"vk\0\0",)]))
    write("fuzz_watch", "all_state", bytes([0, 0]) + w_batch(1000, [
        (b"mstate", b"x"), (b"sidx",), (w_ver(b"a\0b", 7), b"\0z")]))
    write("fuzz_watch", "push", bytes([0, 0]) +
          h("97 a1 57 4b 00 c4 02 61 31 0a c4 05 68 65 6c 6c 6f c0"))


def main():
    frame_seeds()
    request_seeds()
    frame_regressions()
    request_regressions()
    keycodec_seeds()
    reply_seeds()
    backup_seeds()
    repl_seeds()
    watch_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())

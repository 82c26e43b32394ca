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
    def raw(*names):
        out = b"\x80"
        for n in names:
            out += struct.pack(">H", len(REQ[n])) + REQ[n]
        return out

    write("fuzz_request", "raw_protocol_examples",
          raw("ping", "put_ts", "put_101", "put_nots", "get_100", "get_99", "get_nosuch",
              "range", "stats", "del", "fly"))
    write("fuzz_request", "raw_put_get", raw("put_ts", "get_100", "get_99"))
    write("fuzz_request", "raw_range_small_reply",
          b"\x82" + raw("put_ts", "put_101", "range")[1:])

    # Structured: op bytes as read by run_structured() and request_gen.c.
    PUT, GET, RANGE, DEL, PING, STATS, AUTH = 0, 4, 7, 9, 10, 11, 12

    def put(key, ts=None, val=0x04):
        opt = 1 if ts is not None else 0
        out = bytes([PUT, 0, 0, opt, key, val])
        return out + (bytes([ts]) if ts is not None else b"")

    def get(key, ts=None):
        opt = 1 if ts is not None else 0
        return bytes([GET, 0, 0, opt, key]) + (bytes([ts]) if ts is not None else b"")

    def rng(key, frm=None, to=None, limit=None, reverse=None):
        opt = (frm is not None) | (to is not None) << 1 | (limit is not None) << 2
        if reverse is not None:
            opt |= 8 | (16 if reverse else 0)
        out = bytes([RANGE, 0, 0, opt, key])
        for v in (frm, to, limit):
            if v is not None:
                out += bytes([v])
        return out

    def auth(which):  # 0: the secret, 2: wrong case
        return bytes([AUTH, 0, 0, which])

    COMMIT = b"\x0d"
    REOPEN = b"\x0f\x00"            # with the default memory budget
    REOPEN_TINY = b"\x0f\x10"       # 4 KiB budget: keys get evicted
    # Six versions of "a", committed: only three stay in memory, so reads
    # and writes below the watermark go to LevelDB.
    history = b"".join(put(0, ts) for ts in (1, 3, 5, 7, 9, 11)) + COMMIT
    write("fuzz_request", "evicted_history",
          b"\x00" + history + get(0, 2) + get(0, 6) + get(0, 0) + get(0) +
          rng(0) + rng(0, 2, 8, reverse=True) + put(0, 4) + get(0, 4) + rng(0, 0, 9) +
          COMMIT + rng(0, 1, 11, 3))
    write("fuzz_request", "reopen_and_fill",
          b"\x00" + history + put(1, 2) + REOPEN + get(0, 4) + rng(0) + put(0, 0) +
          bytes([DEL, 0, 0, 0, 0]) + get(0))
    write("fuzz_request", "tiny_budget_evictions",
          b"\x00" + REOPEN_TINY + b"".join(put(k, ts, 0x81) for k in (0, 1, 2, 3)
                                          for ts in (1, 2)) + COMMIT +
          get(0, 1) + get(3) + rng(1) + COMMIT + put(2, 0) + COMMIT + rng(2, reverse=True))
    # PUT without ts while the clock is behind, and after UINT64_MAX (ts
    # byte 0x82 is special_ts[2]).
    write("fuzz_request", "auto_ts",
          b"\x00" + b"\x0e\x02" + put(2) + put(2) + put(2, 0x82) + put(2) + get(2))
    write("fuzz_request", "injected_errors",
          b"\x00" + bytes([PUT, 0x03, 0x0e, 1, 0, 4, 1, 2]) +
          bytes([GET, 0x51, 0x0f, 0, 1, 5]) + bytes([PING, 0, 0x0e, 1, 3, 0x61, 0x62]) +
          bytes([STATS, 0, 0]))
    write("fuzz_request", "small_reply_truncation",
          b"\x01" + b"".join(put(0, ts, 0x87) for ts in (1, 2, 3, 4)) + rng(0) +
          rng(0, reverse=True))
    # Storage faults (run_special: 0x0f then 0x?4 = FAULT, 0x05 = ADVANCE,
    # 0x06 = TICK). A log write fails: the commit is rolled back, reads see
    # the committed state, a restart loses nothing committed.
    FAULT_WRITE, FAULT_REOPEN = b"\x0f\x34", b"\x0f\x24"
    ADVANCE, TICK = b"\x0f\x05", b"\x0f\x06"
    hist5 = b"".join(put(0, ts) for ts in (1, 3, 5, 7, 9)) + COMMIT
    write("fuzz_request", "write_fault_rollback",
          b"\x00" + hist5 + FAULT_WRITE + put(1, 2) + put(0, 4) + COMMIT + get(1) + get(0, 4) +
          rng(0) + REOPEN + get(1) + put(1, 2) + COMMIT + get(1))
    # The write fails, then LevelDB's reopen in the recovery fails too: the
    # store stays closed and reads that need LevelDB get STORAGE.
    write("fuzz_request", "store_stays_closed",
          b"\x00" + hist5 + FAULT_REOPEN + put(1, 2) + COMMIT + ADVANCE + put(1, 3) + COMMIT +
          get(0, 2) + rng(0) + get(0) + ADVANCE + TICK + get(0, 2) + rng(0) + put(1, 4) +
          COMMIT + get(1))
    # A session on a server with a secret: refused, wrong secret, secret.
    write("fuzz_request", "auth_session",
          b"\x0c" + put(0, 1) + auth(2) + get(0) + auth(0) + put(0, 1) + get(0) +
          bytes([STATS, 0, 0]))


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


def main():
    frame_seeds()
    request_seeds()
    keycodec_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())

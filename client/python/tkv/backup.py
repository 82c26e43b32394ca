"""Backup files (PROTOCOL.md §9): checking one whole, and cutting its
records into RESTORE requests, as libtkvclient's tkv_restore() does
(client/restore.c).

A backup is checked whole before anything is sent - its trailer is the
only place damage shows - so a damaged or truncated one restores nothing.
Every length is checked against the bytes that are there before it is
used.
"""

import hashlib
import struct

from .errors import TkvError
from .types import Digest

HEADER_LEN = 24
TRAILER_LEN = 85  # type, length, 80-byte body
MAGIC = b"TKVBACKP"
#: What one RESTORE request carries at most (more only for a single larger
#: version, which then goes alone with its key), as tkv_restore().
REQ_VERSIONS = 1000
REQ_BYTES = 1024 * 1024

_REC = struct.Struct(">cI")
_KEY = struct.Struct(">BIQQ")  # flags, policy versions, policy age, horizon
_VER = struct.Struct(">QBQ")  # ts, kind, expires


class InvalidBackupError(TkvError, ValueError):
    """The bytes are not a whole, intact backup; nothing was sent."""


def check(data):
    """Checks a whole backup; returns (Digest, records), records being a
    list of (type, record bytes) with type b"K" or b"V", in order."""
    data = memoryview(data).cast("B")
    n = len(data)
    if n < HEADER_LEN + TRAILER_LEN or bytes(data[:8]) != MAGIC:
        raise InvalidBackupError("not a tkv backup (no header)")
    if int.from_bytes(data[8:12], "big") != 1:
        raise InvalidBackupError("backup format version is not 1")
    at = int.from_bytes(data[16:24], "big")
    records, pos, last_key, last_ts, keys, versions = [], HEADER_LEN, None, None, 0, 0
    while True:
        if n - pos < _REC.size:
            raise InvalidBackupError("it ends early (truncated)")
        kind, length = _REC.unpack_from(data, pos)
        if length > n - pos - _REC.size:
            raise InvalidBackupError("it ends early (truncated)")
        body = data[pos + _REC.size:pos + _REC.size + length]
        if kind == b"E":
            break
        if kind == b"K":
            if not _KEY.size < length <= _KEY.size + 65535:
                raise InvalidBackupError(f"a key record of {length} bytes")
            key = bytes(body[_KEY.size:])
            if last_key is not None and key <= last_key:
                raise InvalidBackupError("its keys are not in byte order, each once")
            last_key, last_ts, keys = key, None, keys + 1
        elif kind == b"V":
            if last_key is None or length < _VER.size:
                raise InvalidBackupError("a version record without its key, or too short")
            ts, vkind, expires = _VER.unpack_from(body)
            if vkind > 1 or (vkind == 1 and (expires or length > _VER.size)):
                raise InvalidBackupError("a malformed version record")
            if last_ts is not None and ts >= last_ts:
                raise InvalidBackupError("a key's versions are not newest first")
            last_ts, versions = ts, versions + 1
        else:
            raise InvalidBackupError(f"a record of unknown type {kind!r}")
        records.append((kind, data[pos:pos + _REC.size + length]))
        pos += _REC.size + length
    if length != 80 or pos + TRAILER_LEN != n:
        raise InvalidBackupError("the trailer is malformed, or data follows it")
    body = data[pos + _REC.size:]
    if (int.from_bytes(body[0:8], "big"), int.from_bytes(body[8:16], "big")) != (keys, versions):
        raise InvalidBackupError("the trailer's counts do not match its records")
    digest = hashlib.sha256(data[HEADER_LEN:pos]).digest()
    if digest != bytes(body[16:48]):
        raise InvalidBackupError("its digest does not match its records")
    if hashlib.sha256(data[:n - 32]).digest() != bytes(body[48:80]):
        raise InvalidBackupError("its checksum does not match")
    return Digest(digest, at, keys, versions), records


def batches(records):
    """Yields (records bytes, continues) per RESTORE request: at most
    REQ_VERSIONS versions and REQ_BYTES bytes each; a key cut between two
    requests is repeated at the start of the next, which says it continues
    the previous one's key."""
    req, nver, cont, krec = [], 0, False, None
    size = 0
    for kind, rec in records:
        if kind == b"K":
            krec = rec
            if size + len(rec) > REQ_BYTES and req:
                yield b"".join(req), cont
                req, nver, size = [], 0, 0
            if not req:
                cont = False
        elif nver == REQ_VERSIONS or (size + len(rec) > REQ_BYTES and nver > 0):
            yield b"".join(req), cont
            req, nver, size, cont = [krec], 0, len(krec), True
        if kind == b"V":
            nver += 1
        req.append(rec)
        size += len(rec)
    if req:
        yield b"".join(req), cont

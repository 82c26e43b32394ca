"""The typed results of tkv commands.

They are frozen dataclasses: plain values a caller may keep, compare and
hash. A GET answers either a :class:`Version` (truthy) or a :class:`Miss`
(falsy, with the reason), so ``if v := c.get(k): use(v.value)`` reads well
and the reason is still at hand when there is no value.
"""

import enum
from dataclasses import dataclass
from typing import Optional, Union

#: The largest timestamp: GET as of LATEST is the newest version.
LATEST = 2**64 - 1


class Status(enum.IntEnum):
    """Reply statuses (PROTOCOL.md §4)."""

    OK = 0
    NOT_FOUND = 1
    BAD_REQUEST = 10
    UNKNOWN_COMMAND = 11
    TOO_LARGE = 12
    OUT_OF_RANGE = 13
    STORAGE = 20
    BUSY = 21
    READONLY = 22
    MOVED = 23
    CROSSSLOT = 24
    AUTH_REQUIRED = 30
    AUTH_FAILED = 31
    INTERNAL = 40


class MissReason(enum.IntEnum):
    """Why a GET found nothing (PROTOCOL.md §6, GET)."""

    NO_KEY = 0  #: the key has no visible versions at all
    BEFORE_FIRST = 1  #: every visible version is newer than the time asked
    DELETED = 2  #: a tombstone is current then (``Miss.at``: its ts)
    BELOW_HORIZON = 3  #: retention removed it (``Miss.at``: the horizon)
    NO_SUCH_VERSION = 4  #: GET by number: the key has fewer versions


@dataclass(frozen=True)
class Version:
    """A version found by GET or MGET.

    The answer is the same for every time in ``[ts, next)``; ``next`` is
    None while no newer version exists. ``expires`` is the expiry time
    (µs since the epoch) or None.
    """

    value: bytes
    ts: int
    next: Optional[int] = None
    expires: Optional[int] = None

    found = True

    def __bool__(self):
        return True


@dataclass(frozen=True)
class Miss:
    """A GET that found nothing, and why.

    ``reason`` is a :class:`MissReason` (a plain int for a reason this
    client does not know); ``next`` is the first visible version after the
    time asked, if any; ``at`` is the tombstone's timestamp (DELETED) or the
    horizon (BELOW_HORIZON), else None.
    """

    reason: Union[MissReason, int]
    next: Optional[int] = None
    at: Optional[int] = None

    found = False
    value = None

    def __bool__(self):
        return False


@dataclass(frozen=True)
class Entry:
    """One version in a key's history (RANGE). ``value`` is None for a
    tombstone."""

    ts: int
    value: Optional[bytes]
    expires: Optional[int] = None

    @property
    def tombstone(self):
        return self.value is None


@dataclass(frozen=True)
class ScanPage:
    """One SCAN answer: keys in byte order, and the cursor to pass next
    (None when the scan is complete)."""

    keys: list
    cursor: Optional[bytes]


@dataclass(frozen=True)
class Retention:
    """What RETAIN did (or would do, in a dry run)."""

    removable: int  #: versions the policy removes
    horizon: Optional[int]  #: the horizon it sets; None if it removes none
    complete: bool  #: False if a dry run stopped counting early


@dataclass(frozen=True)
class Policy:
    """The retention in effect for a key (POLICY)."""

    versions: Optional[int]  #: keep at most this many; None: no limit
    age: Optional[int]  #: keep none older (µs); None: no limit
    own: bool  #: True: set on the key; False: the server's default
    horizon: Optional[int]  #: answers before it are gone; None: none


@dataclass(frozen=True)
class Digest:
    """A hash of the whole visible state (DIGEST), or what a backup holds."""

    digest: bytes  #: SHA-256, 32 bytes
    at: int  #: the time expiry was judged by
    keys: int
    versions: int


@dataclass(frozen=True)
class Restored:
    """What RESTORE did."""

    written: int  #: versions written
    skipped: int  #: versions the server kept instead (merge)


@dataclass(frozen=True)
class SlotRange:
    """One range of a cluster's map (CLUSTER SHARDS): slots from..to
    (inclusive) and the "host:port" of the node serving them and of its
    replicas."""

    start: int
    end: int
    primary: str
    replicas: tuple


@dataclass(frozen=True)
class SlowlogEntry:
    """One entry of the server's slow log (SLOWLOG GET)."""

    id: int  #: increasing from 1 since the server started
    time: int  #: when the request was answered, µs since the epoch
    duration_us: int  #: how long it took
    command: str  #: "GET"
    key: bytes  #: its first key, at most 128 bytes of it (b"" if none)
    key_len: int  #: the whole key's length
    client: str  #: "host:port"

    @property
    def truncated(self):
        """True if the server kept only the key's first bytes."""
        return self.key_len > len(self.key)

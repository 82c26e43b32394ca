"""Replication from Python: REPLICAOF, ROLE, WAIT and READONLY against two
real tkvd (a primary and a replica made one at run time)."""
import time

import pytest

import tkv
from tkvd import Tkvd


@pytest.fixture
def pair():
    p, r = Tkvd(), Tkvd()
    try:
        p.start()
        r.start()
        yield p, r
    finally:
        r.cleanup()
        p.cleanup()


def until(cond, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # a poll interval, not a guess


def test_replicaof_role_wait_and_readonly(pair):
    p, r = pair
    with tkv.Client("127.0.0.1", p.port, timeout=10) as cp, \
            tkv.Client("127.0.0.1", r.port, timeout=10) as cr:
        assert cp.role()["role"] == "primary"
        assert cp.wait(1, 50) == 0  # no replica yet: the timeout answers
        cr.replicaof("127.0.0.1", p.port)
        until(lambda: cr.role().get("link") == "online", "the replica never came online")
        role = cr.role()
        assert role["role"] == "replica"
        assert role["primary"] == f"127.0.0.1:{p.port}"
        ts = cp.put(b"k", b"v")
        assert cp.wait(1, 0) == 1  # no limit: it returns once the replica has it
        assert cr.get(b"k").ts == ts
        with pytest.raises(tkv.ReadOnlyError) as e:
            cr.put(b"k", b"w")
        assert f"127.0.0.1:{p.port}" in str(e.value)
        assert cp.role()["replicas"] == 1
        cr.replicaof()  # NO ONE: a primary again, it takes writes
        assert cr.role()["role"] == "primary"
        cr.put(b"k", b"w")

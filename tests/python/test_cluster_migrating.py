"""A cluster node whose map (tkvd --cluster-map) has slots on the move:
n1 is the source of slot 866 ("hello"), migrating to n2, and the target
of slot 12182 ("foo"), migrating from n2 (PROTOCOL.md §6, "Moving
slots"). A key the source does not hold raises AskError naming the
target; the target raises MovedError unless asking() came just before,
and asking() holds for one request."""

import os
import tempfile

import pytest

import tkv

_MAP = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tkv-map-", delete=False)
_MAP.write('{"slots": [[0, 8191, "s1"], [8192, 16383, "s2"]],'
           ' "shards": {"s1": {"primary": "n1"}, "s2": {"primary": "n2"}},'
           ' "nodes": {"n1": "127.0.0.1:7001", "n2": "127.0.0.1:7002"},'
           ' "migrating": [{"slot": 866, "from": "s1", "to": "s2"},'
           '               {"slot": 12182, "from": "s2", "to": "s1"}]}')
_MAP.close()
TKVD_ARGS = ("--cluster-map", _MAP.name, "--node-id", "n1")


@pytest.fixture(scope="module", autouse=True)
def _remove_map():
    yield
    os.unlink(_MAP.name)


def test_a_key_not_at_the_source_is_asked_at_the_target(client):
    with pytest.raises(tkv.AskError) as e:
        client.get("hello")
    assert (e.value.slot, e.value.addr) == (866, "127.0.0.1:7002")
    with pytest.raises(tkv.AskError):
        client.put("hello", "v")
    assert client.ping() == b"PONG"  # the connection goes on


def test_the_target_serves_after_asking_once(client):
    with pytest.raises(tkv.MovedError) as e:
        client.get("foo")
    assert (e.value.slot, e.value.addr) == (12182, "127.0.0.1:7002")
    assert client.asking() is True
    assert client.put("foo", "v", ts=1) == 1
    with pytest.raises(tkv.MovedError):  # one request only
        client.get("foo")
    client.asking()
    assert client.get("foo").value == b"v"
    client.asking()
    client.asking()  # twice: still for the next request
    assert client.get("foo").value == b"v"

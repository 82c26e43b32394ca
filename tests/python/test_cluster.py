"""A cluster node (tkvd --cluster-map): CLUSTER SHARDS answers its map, a
key of another node's slot raises MovedError naming where it lives, and an
MPUT or MGET over several slots raises CrossSlotError. The map gives this
node, n1, slots 0-8191 and n2 (an address nobody needs to serve: nothing
is sent there) the rest."""

import os
import tempfile

import pytest

import tkv

_MAP = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tkv-map-", delete=False)
_MAP.write('{"slots": [[0, 8191, "s1"], [8192, 16383, "s2"]],'
           ' "shards": {"s1": {"primary": "n1"}, "s2": {"primary": "n2", "replicas": ["n1"]}},'
           ' "nodes": {"n1": "127.0.0.1:7001", "n2": "127.0.0.1:7002"}}')
_MAP.close()
TKVD_ARGS = ("--cluster-map", _MAP.name, "--node-id", "n1")


@pytest.fixture(scope="module", autouse=True)
def _remove_map():
    yield
    os.unlink(_MAP.name)


def test_cluster_shards(client):
    rev, ranges = client.cluster_shards()
    assert rev == 0
    assert ranges == [tkv.SlotRange(0, 8191, "127.0.0.1:7001", ()),
                      tkv.SlotRange(8192, 16383, "127.0.0.1:7002", ("127.0.0.1:7001",))]


def test_keys_of_other_slots_are_moved(client):
    # "hello" is slot 866 (here), "foo" slot 12182 (n2's).
    assert client.put("hello", "v", ts=1) == 1
    assert client.get("hello").value == b"v"
    with pytest.raises(tkv.MovedError) as e:
        client.put("foo", "v")
    assert (e.value.slot, e.value.addr) == (12182, "127.0.0.1:7002")
    assert client.ping() == b"PONG"  # the connection goes on


def test_several_slots_in_one_request_are_crossslot(client):
    with pytest.raises(tkv.CrossSlotError):
        client.mput([("hello", "1"), ("bar", "2")])  # slots 866 and 5061
    with pytest.raises(tkv.CrossSlotError):
        client.mget(["hello", "bar"])
    # One hash tag: one slot ({t}'s is 15891: n2's, so MOVED, not CROSSSLOT).
    with pytest.raises(tkv.MovedError):
        client.mput([("{t}a", "1"), ("{t}b", "2")])

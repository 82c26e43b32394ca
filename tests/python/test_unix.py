"""The Python client over tkvd's Unix socket (--unix): Client(unix_socket=)
and AsyncClient(unix_socket=), and a missing socket's error."""

import asyncio
import os
import stat
import tempfile

import pytest

import tkv
from tkvd import Tkvd


@pytest.fixture(scope="module")
def unix_server():
    sockdir = tempfile.mkdtemp(prefix="tkv-py-sock-")
    path = os.path.join(sockdir, "tkv.sock")
    d = Tkvd("--unix", path)
    try:
        d.start()
        d.unix_path = path
        yield d
    finally:
        d.cleanup()
        os.rmdir(sockdir)  # fails if tkvd left its socket file behind


def test_client_over_the_unix_socket(unix_server):
    assert stat.S_IMODE(os.stat(unix_server.unix_path).st_mode) == 0o700
    with tkv.Client(unix_socket=unix_server.unix_path, timeout=10) as c:
        assert c.put("unix:k", "v", ts=7) == 7
        assert c.get("unix:k").value == b"v"
        assert unix_server.unix_path in repr(c)


def test_async_client_over_the_unix_socket(unix_server):
    async def go():
        c = tkv.AsyncClient(unix_socket=unix_server.unix_path, timeout=10)
        try:
            await c.put("unix:a", "w", ts=3)
            return (await c.get("unix:a", ts=3)).value
        finally:
            await c.close()

    assert asyncio.run(go()) == b"w"


def test_a_missing_socket_is_a_connection_error(tmp_path):
    path = str(tmp_path / "none.sock")
    with pytest.raises(tkv.ConnectionError, match="none.sock"):
        tkv.Client(unix_socket=path, timeout=2).ping()

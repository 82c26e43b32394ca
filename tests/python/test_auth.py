"""AUTH against a server with a secret: before AUTH only PING is served;
a wrong secret is AuthFailedError; Client(secret=...) authenticates every
connection it opens, including one reopened after the server closed the
last."""

import pytest

import tkv

SECRET = "s3cr3t-for-tests"
TKVD_ARGS = ("--requirepass", SECRET)


def connect(server, **kw):
    return tkv.Client("127.0.0.1", server.port, timeout=10, **kw)


def test_auth_required_then_granted(server, key):
    with connect(server) as c:
        assert c.ping() == b"PONG"  # served before AUTH
        with pytest.raises(tkv.AuthRequiredError) as e:
            c.put(key(), "v", ts=1)
        assert e.value.status == 30 and isinstance(e.value, tkv.AuthError)
        with pytest.raises(tkv.AuthFailedError) as e:
            c.auth("wrong")
        assert e.value.status == 31 and e.value.message
        assert c.auth(SECRET) is True
        assert c.put(key(), "v", ts=1) == 1


def test_secret_on_every_connection(server, key):
    with connect(server, secret=SECRET) as c:
        assert c.put(key(), "v", ts=1) == 1
        c.close()  # the next command opens and authenticates anew
        assert c.get(key()).value == b"v"
    with pytest.raises(tkv.AuthFailedError):
        connect(server, secret="wrong").connect()


def test_async_secret(server, key):
    import asyncio

    async def main():
        async with tkv.AsyncClient("127.0.0.1", server.port, secret=SECRET, timeout=10) as c:
            assert await c.put(key(), "async", ts=2) == 2
            return await c.get(key())

    assert asyncio.run(main()).value == b"async"

"""Fixtures for the Python client's tests: one real tkvd per test module
(a module may set TKVD_ARGS for the flags it needs), a client per test, and
keys unique to each test so tests sharing a server cannot see each other's
data.

Run by meson (`meson test -C build python`), which sets TKVD; by hand:
    TKVD=build/server/tkvd python3 -m pytest tests/python
"""

import os
import re
import sys

import pytest

# The package under test is the source tree's (test_install checks that
# the pip-installed copy works too).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "client", "python"))

import tkv  # noqa: E402
from tkvd import Tkvd  # noqa: E402


@pytest.fixture(scope="module")
def server(request):
    d = Tkvd(*getattr(request.module, "TKVD_ARGS", ()))
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def client(server):
    with tkv.Client("127.0.0.1", server.port, secret=getattr(server, "secret", None),
                    timeout=10) as c:
        yield c


@pytest.fixture
def key(request):
    """key("x") -> a key (bytes) no other test uses."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)
    return lambda suffix="k": f"{base}:{suffix}".encode()

"""The Python client over tkvd's Unix socket (--unix): Client(unix_socket=)
and AsyncClient(unix_socket=), and a missing socket's error."""

import asyncio
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time

import msgpack

import pytest

import tkv
from tkvd import Tkvd, tkvd_path


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


# ---- the socket file's life: who may remove it, and when -------------------

NOBODY = 65534


def _sockdir():
    """A directory anyone may write (no sticky bit), so that a second server
    running as another user could remove the first one's socket."""
    d = tempfile.mkdtemp(prefix="tkv-py-sock-")
    os.chmod(d, 0o777)
    return d


def _run_second(path, *wrap, timeout=20):
    """A second tkvd on the same --unix path; returns (exit code, output).
    It must give up by itself: a hang is a failure, not a wait."""
    data = tempfile.mkdtemp(prefix="tkv-py-")
    os.chmod(data, 0o777)
    try:
        cmd = [*wrap, tkvd_path(), "--data-dir", os.path.join(data, "d"), "--bind", "127.0.0.1",
               "--port", "0", "--unix", path]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _answers(path):
    with tkv.Client(unix_socket=path, timeout=10) as c:
        c.ping()
    return True


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run a server as nobody")
def test_another_users_live_socket_is_not_removed():
    # The probe's connect fails with EACCES (mode 0700, owned by root): that
    # says nothing about whether a server listens, so the start is refused.
    sockdir = _sockdir()
    path = os.path.join(sockdir, "tkv.sock")
    d = Tkvd("--unix", path)
    try:
        d.start()
        rc, out = _run_second(path, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                              "--clear-groups")
        assert rc != 0, out
        assert "Permission denied" in out, out
        assert _answers(path)
    finally:
        d.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_a_server_with_a_full_backlog_is_not_waited_on():
    # A stopped server accepts nothing: once its backlog is full a blocking
    # connect would wait for ever; the probe reads EAGAIN as "in use".
    sockdir = _sockdir()
    path = os.path.join(sockdir, "tkv.sock")
    d = Tkvd("--unix", path)
    held = []
    try:
        d.start()
        os.kill(d.proc.pid, signal.SIGSTOP)
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            held.append(s)
            try:
                s.connect(path)
            except BlockingIOError:
                break
        rc, out = _run_second(path)
        assert rc != 0, out
        assert "a server is listening there" in out, out
    finally:
        for s in held:
            s.close()
        if d.proc is not None:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def _stall_shutdown(d):
    """A client that asks for much and reads nothing: its unread replies
    hold the server in its shutdown grace period (5 s) after SIGTERM."""
    with tkv.Client(port=d.port, timeout=10) as c:
        c.put("big", b"x" * (512 * 1024))
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small window: the kernel must not absorb the replies for us.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", d.port))
    req = msgpack.packb(["GET", b"big"], use_bin_type=True)
    s.sendall((struct.pack(">I", len(req)) + req) * 64)
    s.recv(4)  # replies are flowing: the requests were read, and queued
    return s


def _wait_for(cond, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)  # a poll interval, not a guess
    return cond()


def test_a_stopping_server_frees_the_path_and_spares_its_successor():
    sockdir = _sockdir()
    path = os.path.join(sockdir, "tkv.sock")
    a = Tkvd("--unix", path)
    b = Tkvd("--unix", path)
    stall = None
    try:
        a.start()
        stall = _stall_shutdown(a)
        os.kill(a.proc.pid, signal.SIGTERM)
        # Removed when the listener closes, not after the grace period.
        assert _wait_for(lambda: not os.path.exists(path)), a.log()
        assert a.proc.poll() is None, "the stalled client did not hold tkvd in its grace"
        b.start()
        assert _answers(path)
        stall.close()
        stall = None
        a.stop()
        # a's exit left b's socket alone.
        assert os.path.exists(path)
        assert _answers(path)
    finally:
        if stall:
            stall.close()
        a.cleanup()
        b.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_the_mode_is_exact_whatever_the_umask():
    sockdir = _sockdir()
    path = os.path.join(sockdir, "tkv.sock")
    old = os.umask(0o027)  # takes bits --unix-perm grants
    try:
        d = Tkvd("--unix", path, "--unix-perm", "0777")
        d.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o777
    finally:
        d.cleanup()
        shutil.rmtree(sockdir, ignore_errors=True)

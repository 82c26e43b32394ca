"""Starts the real tkvd for the Python client's tests, as
tests/integration/harness.c does for the C ones: a fresh temporary data
directory, port 0 with --port-file (the kernel picks a free loopback port,
so parallel suites cannot collide), the log kept for failure messages. It
is ready once the port file names a port and a connection answers PING;
nothing sleeps a fixed time. Stopped by its pid with SIGTERM, and a clean
exit 0 is asserted.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

START_TIMEOUT = 20.0
PING = struct.pack(">I", 6) + bytes([0x91, 0xA4]) + b"PING"


def tkvd_path():
    # TKVD_OVERRIDE swaps in another build of the server under the same
    # tests, as for the C suite.
    path = os.environ.get("TKVD_OVERRIDE") or os.environ.get("TKVD")
    if not path:
        raise RuntimeError("TKVD must name the tkvd binary (meson test sets it)")
    return path


class Tkvd:
    def __init__(self, *args):
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix="tkv-py-")
        self.portfile = os.path.join(self.dir, "port")
        self.logfile = os.path.join(self.dir, "tkvd.log")
        self.proc = None
        self.port = None

    def start(self):
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [tkvd_path(), "--data-dir", os.path.join(self.dir, "data"), "--bind",
                 "127.0.0.1", "--port", "0", "--port-file", self.portfile,
                 "--log-level", "debug", *self.args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tkvd exited during start-up ({self.proc.returncode}):\n"
                                   + self.log())
            if self.port is None:
                self.port = self._read_port()
            if self.port is not None and self._answers_ping():
                return
            time.sleep(0.005)  # a poll interval, not a guess at readiness
        self.stop(check=False)
        raise RuntimeError("tkvd did not become ready:\n" + self.log())

    def _read_port(self):
        try:
            with open(self.portfile) as f:
                port = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return port or None

    def _answers_ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(PING)
                return s.recv(64)[:4] == struct.pack(">I", 7)
        except OSError:
            return False

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, check=True):
        """SIGTERM by pid; with check, asserts a clean exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("tkvd did not stop within 60 s of SIGTERM")
        rc, self.proc = self.proc.returncode, None
        if check and rc != 0:
            raise AssertionError(f"tkvd exited with {rc}:\n" + self.log())

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

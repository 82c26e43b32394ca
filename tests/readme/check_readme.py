#!/usr/bin/env python3
"""Runs README.md's tkvctl sessions verbatim against a fresh tkvd and checks
that each command prints what the README shows, so the README cannot drift
from what the commands do.

Every ```console block in README.md is a session; all of them run in order
against one fresh server (started here on 127.0.0.1, on a free port, in a
temporary directory, and stopped by its pid). A line starting with "$ " is a
command, run with bash in a scratch directory on a pseudo-terminal, as a
person would run it; the lines after it, up to the next command, are what
it prints (stdout and stderr together, in the order a terminal shows them).
In those lines:
  - the README shows times taken from the clock when a command ran ("now")
    as microseconds of 2026-11-22T02:06:57Z, 1795313217xxxxxx: such a
    number stands for any 16-digit number, and an ISO-8601 time on that day
    (2026-11-22T02:06:57.177998Z) for any such time. Every other number and
    time must match exactly, so a wrongly parsed --ts still fails;
  - a line "..." stands for any number of lines.
A "# exit status N" comment on a command checks its exit status too; other
commands must exit 0.

Usage: check_readme.py README.md TKVD TKVCTL
"""
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

NOW_US = re.compile(r"\b1795313217\d{6}\b")
NOW_ISO = re.compile(r"\b2026-11-22T\d\d:\d\d:\d\d\.\d{6}Z")


def sessions(readme):
    """Yields (line number, command, expected lines) for every command."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    i, in_block = 0, False
    cmd = None
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            if in_block and cmd:
                yield cmd
                cmd = None
            in_block = line.strip() == "```console" if not in_block else False
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            if cmd:
                yield cmd
            cmd = (n, line[2:], [])
        elif cmd:
            cmd[2].append(line)


def line_matches(want, got):
    pattern = re.escape(want)
    pattern = NOW_US.sub(lambda m: r"\d{16}", pattern)
    pattern = NOW_ISO.sub(lambda m: r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", pattern)
    return re.fullmatch(pattern, got) is not None


def output_matches(want, got):
    """Matches lines, with "..." standing for any run of lines."""
    if not want:
        return not got
    if want[0] == "...":
        return any(output_matches(want[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and line_matches(want[0], got[0]) and output_matches(want[1:], got[1:])


def run_on_terminal(cmd, cwd, env, timeout=60):
    """Runs cmd with stdout and stderr on a new pseudo-terminal; returns the
    exit status and the lines it printed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    try:
        rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    lines = out.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return rc, lines


def start_server(tkvd, workdir):
    portfile = os.path.join(workdir, "port")
    log = open(os.path.join(workdir, "tkvd.log"), "w")
    proc = subprocess.Popen([tkvd, "--bind", "127.0.0.1", "--port", "0", "--port-file", portfile,
                             "--data-dir", os.path.join(workdir, "data")],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("tkvd exited during start-up:\n" + open(log.name).read())
        try:
            port = open(portfile).read().strip()
            if port:
                return proc, port
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    proc.kill()
    sys.exit("tkvd did not start within 30 s")


def main():
    readme, tkvd, tkvctl = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="tkv-readme-")
    proc = None
    try:
        proc, port = start_server(tkvd, work)
        scratch = os.path.join(work, "cwd")
        os.mkdir(scratch)
        # What the README's examples read from the current directory.
        with open(os.path.join(scratch, "photo.jpg"), "wb") as f:
            f.write(bytes(range(256)))
        bindir = os.path.join(work, "bin")
        os.mkdir(bindir)
        os.symlink(os.path.abspath(tkvctl), os.path.join(bindir, "tkvctl"))
        env = dict(os.environ, TKV_PORT=port, TKV_HOST="127.0.0.1",
                   PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        env.pop("TKV_AUTH", None)
        failed = passed = 0
        for n, cmd, want in sessions(readme):
            m = re.search(r"#.*exit status (\d+)", cmd)
            want_rc = int(m.group(1)) if m else 0
            rc, got = run_on_terminal(cmd, scratch, env)
            while want and want[-1] == "":
                want.pop()
            if rc != want_rc or not output_matches(want, got):
                failed += 1
                print(f"README.md:{n}: $ {cmd}")
                print(f"  exit status {rc}, expected {want_rc}")
                print("  README shows:\n" + "".join(f"    |{w}\n" for w in want), end="")
                print("  the command printed:\n" + "".join(f"    |{g}\n" for g in got), end="")
            else:
                passed += 1
        if passed == 0:
            print("no console session found in " + readme)
            failed += 1
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

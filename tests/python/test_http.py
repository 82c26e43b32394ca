"""tkvd's HTTP face (--http-port), through a real HTTP client (http.client
and urllib): the JSON API's round trips and miss reasons, binary keys and
values, /metrics as Prometheus text, /healthz, /openapi.json, the bearer
secret, protected mode, and bad requests that get a 4xx while the server
goes on serving."""

import base64
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest

from tkvd import Tkvd, tkvd_path

SECRET = "http-s3cret"


def start_http_server(*args):
    d = Tkvd(*args)
    d.http_port_file = os.path.join(d.dir, "http-port")
    d.args += ["--http-port", "0", "--http-port-file", d.http_port_file]
    d.start()
    # tkvd writes the HTTP port file before the main one, which start()
    # waited for.
    with open(d.http_port_file) as f:
        d.http_port = int(f.read())
    return d


@pytest.fixture(scope="module")
def srv():
    d = start_http_server("--max-value", "64kb")
    try:
        yield d
    finally:
        d.cleanup()  # asserts a clean exit 0 after SIGTERM


def request(d, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one request on a new connection."""
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def call(d, method, path, body=None, headers=None, expect=200):
    status, hdrs, data = request(d, method, path, body, headers)
    assert status == expect, (status, data)
    if hdrs.get("Content-Type") == "application/json":
        return json.loads(data)
    return data


def kpath(key, suffix=""):
    if isinstance(key, str):
        key = key.encode()
    return "/v1/kv/" + urllib.parse.quote(key, safe="") + suffix


def test_put_get_as_of_history_delete(srv, key):
    k = key()
    assert call(srv, "PUT", kpath(k) + "?ts=100", b"one") == {"key": k.decode(), "ts": 100}
    assert call(srv, "PUT", kpath(k) + "?ts=200", b"two")["ts"] == 200
    got = call(srv, "GET", kpath(k) + "?at=150")
    assert got == {"key": k.decode(), "value": "one", "ts": 100, "next": 200, "expires": None}
    assert call(srv, "GET", kpath(k))["value"] == "two"
    h = call(srv, "GET", kpath(k, "/history"))
    assert h["versions"] == [{"ts": 100, "value": "one"}, {"ts": 200, "value": "two"}]
    assert h["truncated"] is False
    h = call(srv, "GET", kpath(k, "/history") + "?from=150&to=300&limit=5")
    assert [v["ts"] for v in h["versions"]] == [200]
    assert len(call(srv, "GET", kpath(k, "/history") + "?limit=1")["versions"]) == 1
    # A tombstone at 300: reads as of 300 and later miss, older ones answer.
    assert call(srv, "DELETE", kpath(k) + "?at=300") == {"key": k.decode(), "ts": 300}
    assert call(srv, "GET", kpath(k) + "?at=250")["value"] == "two"
    h = call(srv, "GET", kpath(k, "/history"))
    assert h["versions"][-1] == {"ts": 300, "deleted": True}
    # Without at: the whole history goes.
    assert call(srv, "DELETE", kpath(k)) == {"key": k.decode(), "removed": 3}
    assert call(srv, "GET", kpath(k), expect=404)["reason"] == "no_key"


def test_put_without_ts_and_ttl(srv, key):
    k = key()
    before = time.time() * 1e6
    ts = call(srv, "PUT", kpath(k), b"v")["ts"]
    assert ts >= before - 5e6
    assert call(srv, "PUT", kpath(k) + "?ts=now", b"w")["ts"] > ts
    put = call(srv, "PUT", kpath(k) + "?ttl=1h", b"x")
    got = call(srv, "GET", kpath(k))
    assert got["ts"] == put["ts"] and got["value"] == "x"
    assert got["expires"] is not None and got["expires"] - put["ts"] > 3500e6
    assert call(srv, "DELETE", kpath(k) + "?at=now")["ts"] > put["ts"]


def test_miss_reasons(srv, key):
    k = key()
    miss = call(srv, "GET", kpath(k), expect=404)
    assert miss["reason"] == "no_key" and miss["code"] == 404
    assert miss["error"] == "no such key"
    call(srv, "PUT", kpath(k) + "?ts=1000", b"v")
    miss = call(srv, "GET", kpath(k) + "?at=999", expect=404)
    assert miss["reason"] == "before_first" and miss["next"] == 1000
    assert miss["error"] == "no version at or before 999"
    call(srv, "DELETE", kpath(k) + "?at=2000")
    miss = call(srv, "GET", kpath(k) + "?at=2500", expect=404)
    assert miss["reason"] == "deleted" and miss["at"] == 2000
    assert miss["error"] == "deleted at 2000"


def test_binary_key_and_value(srv, key):
    k = key().replace(b":", b"\x00/") + b"\xff%?#"
    value = bytes(range(256))
    assert call(srv, "PUT", kpath(k) + "?ts=7", value)["key_b64"] == base64.b64encode(
        k).decode()
    got = call(srv, "GET", kpath(k))
    assert base64.b64decode(got["value_b64"]) == value and "value" not in got
    assert base64.b64decode(got["key_b64"]) == k
    # ?raw=1: the bytes themselves, the rest in headers.
    status, hdrs, body = request(srv, "GET", kpath(k) + "?raw=1")
    assert status == 200 and body == value
    assert hdrs["Content-Type"] == "application/octet-stream" and hdrs["X-Tkv-Ts"] == "7"
    # An empty value, and UTF-8 text that is not ASCII.
    call(srv, "PUT", kpath(k) + "?ts=8", b"")
    assert call(srv, "GET", kpath(k))["value"] == ""
    call(srv, "PUT", kpath(k) + "?ts=9", "Grüße, 世界".encode())
    assert call(srv, "GET", kpath(k))["value"] == "Grüße, 世界"


METRIC_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? -?[0-9.e+]+$')


def metrics(d):
    text = call(d, "GET", "/metrics").decode()
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, "one TYPE line per metric: " + name
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        assert METRIC_LINE.match(line), "not Prometheus text: " + repr(line)
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values, types


def test_metrics_is_prometheus_text_and_moves(srv, key):
    status, hdrs, _ = request(srv, "GET", "/metrics")
    assert status == 200 and hdrs["Content-Type"].startswith("text/plain; version=0.0.4")
    before, types = metrics(srv)
    assert types["tkv_cmd_put_total"] == "counter" and types["tkv_keys"] == "gauge"
    assert any(n.startswith("tkv_info{") and 'role="primary"' in n for n in before)
    for i in range(3):
        call(srv, "PUT", kpath(key()) + f"?ts={i + 1}", b"v")
    after, _ = metrics(srv)
    assert after["tkv_cmd_put_total"] == before["tkv_cmd_put_total"] + 3
    assert after["tkv_commits_total"] > before["tkv_commits_total"]
    assert after["tkv_bytes_in_total"] > before["tkv_bytes_in_total"]


def test_healthz_and_openapi(srv):
    assert request(srv, "GET", "/healthz")[::2] == (200, b"ok\n")
    doc = call(srv, "GET", "/openapi.json")
    assert doc["openapi"].startswith("3.0")
    assert set(doc["paths"]) == {"/v1/kv/{key}", "/v1/kv/{key}/history", "/metrics", "/healthz",
                                 "/openapi.json"}
    assert set(doc["paths"]["/v1/kv/{key}"]) >= {"get", "put", "delete"}


def test_bad_requests_get_4xx_and_server_goes_on(srv, key):
    k = kpath(key())
    bad = [("GET", k + "?at=yesterday", None, 400),
           ("GET", k + "?at=1700000000", None, 400),  # ambiguous: seconds?
           ("PUT", k + "?ts=-", b"v", 400),
           ("PUT", k + "?ttl=soon", b"v", 400),
           ("PUT", k + "?ttl=0", b"v", 400),
           ("GET", k + "/history?limit=many", None, 400),
           ("GET", "/v1/kv/%zz", None, 400),
           ("GET", "/v1/kv/", None, 400),
           ("GET", "/v1/kv/" + "a" * 1100, None, 400),  # above --max-key
           ("GET", k + "/versions", None, 404),
           ("GET", "/nothing", None, 404),
           ("POST", k, b"v", 405),
           ("PUT", k, b"x" * (64 * 1024 + 1), 413)]
    for method, path, body, code in bad:
        status, hdrs, data = request(srv, method, path, body)
        assert status == code, (method, path, status, data)
        err = json.loads(data)
        assert err["code"] == code and err["error"], err
    # Oversize without a Content-Length: chunked, cut off as it arrives.
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=30)
    c.request("PUT", k, body=(b"y" * 16384 for _ in range(8)), encode_chunked=True)
    r = c.getresponse()
    assert r.status == 413, r.read()
    c.close()
    # The server's own errors map to fitting statuses: OUT_OF_RANGE.
    err = call(srv, "PUT", k + "?ts=9223372036854775808", b"v", expect=400)
    assert "below 2^63" in err["error"]
    assert request(srv, "GET", "/healthz")[0] == 200
    assert call(srv, "PUT", k + "?ts=5", b"fine")["ts"] == 5
    assert call(srv, "GET", k)["value"] == "fine"


def test_concurrent_clients(srv, key):
    """More clients than HTTP threads and channels: each request gets its
    own answer."""
    errors = []

    def worker(n):
        try:
            for i in range(10):
                k = kpath(key(f"c{n}"))
                call(srv, "PUT", k + f"?ts={i + 1}", f"{n}-{i}".encode())
                assert call(srv, "GET", k)["value"] == f"{n}-{i}"
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_secret_needs_bearer_but_not_for_healthz():
    d = start_http_server("--requirepass", SECRET)
    try:
        path = kpath(b"secret-key") + "?ts=1"
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": SECRET}):
            status, _, data = request(d, "PUT", path, b"v", headers)
            assert status == 401 and b"Bearer" in data
        assert request(d, "GET", "/metrics")[0] == 401
        assert request(d, "GET", "/healthz")[::2] == (200, b"ok\n")
        auth = {"Authorization": "Bearer " + SECRET}
        assert call(d, "PUT", path, b"v", auth)["ts"] == 1
        assert call(d, "GET", kpath(b"secret-key"), headers=auth)["value"] == "v"
        assert "tkv_cmd_put_total" in metrics_with(d, auth)
    finally:
        d.cleanup()


def metrics_with(d, headers):
    return call(d, "GET", "/metrics", headers=headers).decode()


def test_protected_mode_refuses_open_http_bind():
    with tempfile.TemporaryDirectory(prefix="tkv-py-") as tmp:
        p = subprocess.run(
            [tkvd_path(), "--data-dir", os.path.join(tmp, "data"), "--bind", "127.0.0.1",
             "--port", "0", "--http-port", "0", "--http-bind", "0.0.0.0"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert p.returncode == 1, p.stderr
        assert "refusing to listen (HTTP) on 0.0.0.0" in p.stderr
        assert "--requirepass" in p.stderr


def until(cond, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # a poll interval, not a guess


def test_cluster_node_answers_421_with_the_owner():
    # n1 serves slots 0-8191 ("hello" is 866), n2 the rest ("foo" is 12182).
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="tkv-map-") as m:
        m.write('{"slots": [[0, 8191, "s1"], [8192, 16383, "s2"]],'
                ' "shards": {"s1": {"primary": "n1"}, "s2": {"primary": "n2"}},'
                ' "nodes": {"n1": "127.0.0.1:7001", "n2": "127.0.0.1:7002"}}')
        m.flush()
        d = start_http_server("--cluster-map", m.name, "--node-id", "n1")
        try:
            assert call(d, "PUT", "/v1/kv/hello?ts=1", b"v")["ts"] == 1
            status, hdrs, data = request(d, "GET", "/v1/kv/foo")
            assert status == 421 and hdrs["X-Tkv-Moved"] == "127.0.0.1:7002"
            assert json.loads(data)["status"] == "MOVED"
            assert request(d, "GET", "/healthz")[::2] == (200, b"ok\n")
        finally:
            d.cleanup()


def test_replica_is_healthy_once_copied_and_refuses_writes():
    p = start_http_server()
    r = None
    try:
        assert call(p, "PUT", "/v1/kv/rk?ts=5", b"from-primary")["ts"] == 5
        r = start_http_server("--replica-of", f"127.0.0.1:{p.port}")
        until(lambda: request(r, "GET", "/healthz")[0] == 200, "the replica never got healthy")
        until(lambda: request(r, "GET", "/v1/kv/rk")[0] == 200, "the write never arrived")
        assert call(r, "GET", "/v1/kv/rk")["value"] == "from-primary"
        err = call(r, "PUT", "/v1/kv/rk?ts=6", b"w", expect=503)
        assert err["status"] == "READONLY" and f"127.0.0.1:{p.port}" in err["error"]
    finally:
        if r:
            r.cleanup()
        p.cleanup()


def test_oversize_frame_is_refused_and_the_next_request_is_served():
    """A key near --max-key plus a value near --max-value make a frame above
    --max-frame: 413, and the channel it would have gone on serves the next
    request (the loop stops reading a connection after refusing a frame)."""
    d = start_http_server("--max-frame", "1mb", "--max-value", "1048000")
    try:
        status, _, data = request(d, "PUT", "/v1/kv/" + "k" * 1000, b"v" * 1048000)
        assert status == 413, data
        for _ in range(3):  # whichever channel the next requests borrow
            assert request(d, "GET", "/v1/kv/x1")[0] == 404
        assert "--max-frame" in json.loads(data)["error"]
        assert call(d, "PUT", "/v1/kv/x1?ts=1", b"fine")["ts"] == 1
        assert call(d, "GET", "/v1/kv/x1")["value"] == "fine"
    finally:
        d.cleanup()


def test_head_is_get_without_a_body(srv, key):
    k = key()
    call(srv, "PUT", kpath(k) + "?ts=3", b"value")
    status, hdrs, body = request(srv, "HEAD", kpath(k))
    assert (status, body) == (200, b"") and hdrs["Content-Type"] == "application/json"
    status, hdrs, body = request(srv, "HEAD", kpath(k) + "?raw=1")
    assert (status, body, hdrs["X-Tkv-Ts"]) == (200, b"", "3")
    assert request(srv, "HEAD", kpath(k, "/history"))[::2] == (200, b"")
    assert request(srv, "HEAD", kpath(key("missing")))[0] == 404
    assert request(srv, "HEAD", "/healthz")[::2] == (200, b"")


def test_405_names_the_allowed_methods(srv, key):
    k = kpath(key())
    for method, path, allow in [("POST", "/healthz", "GET, HEAD"),
                                ("PUT", "/metrics", "GET, HEAD"),
                                ("DELETE", "/openapi.json", "GET, HEAD"),
                                ("POST", k, "GET, HEAD, PUT, DELETE"),
                                ("PUT", k + "/history", "GET, HEAD")]:
        status, hdrs, data = request(srv, method, path, b"body")
        assert status == 405, (method, path, status, data)
        assert hdrs.get("Allow") == allow, (method, path, hdrs)
        assert json.loads(data)["code"] == 405


def test_raw_takes_exactly_1_true_0_false(srv, key):
    k = kpath(key())
    call(srv, "PUT", k + "?ts=1", b"bytes")
    for v in ("1", "true"):
        assert call(srv, "GET", k + "?raw=" + v) == b"bytes"
    for v in ("0", "false"):
        assert call(srv, "GET", k + "?raw=" + v)["value"] == "bytes"
    for v in ("", "yes", "2", "truetrue", "%00"):
        err = call(srv, "GET", k + "?raw=" + v, expect=400)
        assert "raw" in err["error"], v


def raw_request(port, head, timeout=10):
    """Sends head (bytes) on a new connection; returns the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(head)
    return s


def read_status(s):
    """The status code of the first response on s ("" if it was closed)."""
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_refused_before_the_body_is_read():
    """Requests that will be refused are answered from their headers alone:
    the server never waits for (or holds) a body an unauthenticated client
    announces - not even on /healthz, which needs no secret."""
    d = start_http_server("--requirepass", SECRET)
    try:
        for method, path, code in [("PUT", "/healthz", 405), ("POST", "/metrics", 405),
                                   ("PUT", "/v1/kv/k", 401), ("PUT", "/openapi.json", 405)]:
            s = raw_request(d.http_port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 1000000\r\n\r\n".encode())
            try:
                # No body is sent: an answer proves none was waited for.
                assert read_status(s).startswith(f"HTTP/1.1 {code} "), (method, path)
            finally:
                s.close()
        assert request(d, "GET", "/healthz")[0] == 200
    finally:
        d.cleanup()


def test_401_says_bearer_and_the_scheme_is_case_insensitive():
    d = start_http_server("--requirepass", SECRET)
    try:
        status, hdrs, _ = request(d, "GET", "/metrics")
        assert status == 401 and hdrs.get("WWW-Authenticate") == "Bearer"
        for scheme in ("bearer", "BEARER", "Bearer"):
            auth = {"Authorization": f"{scheme} {SECRET}"}
            assert call(d, "PUT", "/v1/kv/ci?ts=1", b"v", auth)["ts"] == 1
        # The secret itself is not case-insensitive.
        status, _, _ = request(d, "GET", "/v1/kv/ci", headers={
            "Authorization": "Bearer " + SECRET.upper()})
        assert status == 401
    finally:
        d.cleanup()


def test_sigterm_with_http_requests_in_flight():
    """SIGTERM while HTTP requests are in flight - uploads half sent, and
    clients looping on requests: each gets an answer or a closed connection,
    and tkvd exits 0 (cleanup asserts it) promptly."""
    d = start_http_server()
    stop = threading.Event()
    done = [0] * 4
    errors = []

    def looper(n):
        try:
            while not stop.is_set():
                try:
                    status, _, _ = request(d, "PUT", f"/v1/kv/loop{n}", b"v" * 1000)
                except (ConnectionError, http.client.HTTPException, OSError):
                    return  # the server closed it: an allowed end
                assert status in (200, 503), status
                done[n] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    slow = []
    try:
        threads = [threading.Thread(target=looper, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        # Half-sent uploads: "100 Continue" proves the server took the
        # request in (its first callback ran) and now waits for the body.
        for i in range(3):
            s = raw_request(d.http_port, f"PUT /v1/kv/slow{i} HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n".encode())
            slow.append(s)
            assert "100" in read_status(s)
            s.sendall(b"x" * 50000)
        until(lambda: all(done), "the looping clients never got an answer")
        t0 = time.monotonic()
        d.stop()  # SIGTERM; asserts exit 0
        assert time.monotonic() - t0 < 30, "tkvd took too long to stop"
        stop.set()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
        assert not errors, errors
        for s in slow:
            s.settimeout(30)
            try:
                rest = s.recv(65536)
            except ConnectionResetError:
                rest = b""
            # Closed, or an answer: never left hanging.
            assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest
    finally:
        stop.set()
        for s in slow:
            s.close()
        d.cleanup()

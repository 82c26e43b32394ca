#!/usr/bin/env bash
# smoke.sh TKVD TKV_BENCH - the bench-smoke test: starts tkvd on a free
# port in a temporary directory, runs a one-second mixed load with preload
# against it, checks the JSON report (a line per operation, no errors,
# non-zero throughput), writes an --hdr-out file and checks it, runs one
# second paced with --rate and checks its report has the rate fields, then
# stops tkvd with SIGTERM and checks it exited 0. Last, a tkvd with a secret: tkv-bench authenticates with
# $TKV_AUTH, and a wrong --auth fails the run with status 2.
set -euo pipefail

tkvd=${1:?usage: smoke.sh TKVD TKV_BENCH}
bench=${2:?usage: smoke.sh TKVD TKV_BENCH}
# The servers started here have no secret unless given one below.
unset TKV_AUTH

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "bench-smoke: $*" >&2
    echo "--- tkvd log" >&2
    cat "$dir/tkvd.log" >&2 || true
    exit 1
}

# start_tkvd DATA-DIR [ARG]...: sets pid and port.
start_tkvd() {
    local data=$1
    shift
    rm -f "$dir/port"
    "$tkvd" --port 0 --port-file "$dir/port" --data-dir "$data" --fsync never "$@" \
        2>>"$dir/tkvd.log" &
    pid=$!
    # Poll for the port file: tkvd writes it once it accepts connections.
    for _ in $(seq 1 1000); do
        [ -s "$dir/port" ] && break
        kill -0 "$pid" 2>/dev/null || fail "tkvd exited before listening"
        sleep 0.01
    done
    [ -s "$dir/port" ] || fail "tkvd wrote no port file within 10 s"
    port=$(cat "$dir/port")
}

stop_tkvd() {
    kill -TERM "$pid"
    local rc=0
    wait "$pid" || rc=$?
    pid=
    [ "$rc" -eq 0 ] || fail "tkvd exited with status $rc after SIGTERM"
}

start_tkvd "$dir/data"

status=0
"$bench" -p "$port" -d 1 -c 4 -P 8 --keys 1000 --versions 3 --preload \
    --mix put=1,get=1,range=1 --json --quiet >"$dir/out.json" || status=$?
cat "$dir/out.json"
[ "$status" -eq 0 ] || fail "tkv-bench exited with status $status"

python3 - "$dir/out.json" <<'PY' || fail "unexpected tkv-bench report"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ops = {l["op"]: l for l in lines}
for op in ("preload", "put", "get", "range"):
    assert op in ops, "no line for " + op
    l = ops[op]
    for field in ("requests", "ops_per_sec", "p50_us", "p90_us", "p99_us", "p999_us",
                  "max_us", "errors", "misses"):
        assert field in l, op + " lacks " + field
    assert l["errors"] == 0, op + " had errors"
    assert l["requests"] > 0 and l["ops_per_sec"] > 0, op + " made no progress"
    assert "target_rate" not in l, op + ": rate fields without --rate"
assert ops["preload"]["requests"] == 3000, "preload stored %d versions" % ops["preload"]["requests"]
assert ops["get"]["misses"] == 0, "GETs of preloaded keys missed"
PY

# --hdr-out: HdrHistogram's percentile distribution, one row per reporting
# step, whose values and percentiles only rise and whose count is the
# number of requests measured; an unwritable path fails before the run.
status=0
"$bench" -p "$port" -n 3000 -c 4 -P 4 --keys 1000 --versions 3 --mix put=1,get=2 \
    --hdr-out "$dir/lat.hdr" --json --quiet >"$dir/hdr.json" || status=$?
[ "$status" -eq 0 ] || fail "tkv-bench --hdr-out exited with status $status"
python3 - "$dir/hdr.json" "$dir/lat.hdr" <<'PY' || fail "unexpected --hdr-out file: $(cat "$dir/lat.hdr")"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
requests = {l["op"]: l for l in lines}["all"]["requests"]
assert requests == 3000, "measured %d requests, not -n 3000" % requests
text = open(sys.argv[2]).read().splitlines()
assert text[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"], text[0]
rows = [l.split() for l in text[1:] if l.strip() and not l.startswith("#")]
assert len(rows) > 10, "only %d rows" % len(rows)
vals = [float(r[0]) for r in rows]
pcts = [float(r[1]) for r in rows]
counts = [int(r[2]) for r in rows]
assert vals == sorted(vals) and pcts == sorted(pcts) and counts == sorted(counts), "not monotonic"
assert pcts[0] == 0.0 and pcts[-1] == 1.0 and len(rows[-1]) == 3, "first 0%, last 100%"
for r in rows[:-1]:
    assert abs(float(r[3]) - 1 / (1 - float(r[1]))) < 0.01 * float(r[3]), r
assert counts[-1] == requests, "last TotalCount %d != %d requests" % (counts[-1], requests)
total = int(re.search(r"Total count\s*=\s*(\d+)", "\n".join(text)).group(1))
mx = float(re.search(r"Max\s*=\s*([0-9.]+)", "\n".join(text)).group(1))
assert total == requests, "footer Total count %d" % total
assert abs(mx - vals[-1]) < 0.001 and 0 < vals[0] <= mx, "max %f, rows %f..%f" % (mx, vals[0], vals[-1])
PY
status=0
"$bench" -p "$port" -n 10 --hdr-out "$dir/no/such/dir/x.hdr" --quiet >/dev/null \
    2>"$dir/hdr.err" || status=$?
[ "$status" -eq 2 ] && grep -q "hdr-out" "$dir/hdr.err" ||
    fail "an unwritable --hdr-out: status $status, $(cat "$dir/hdr.err")"

# Paced: the rate fields are there; how close the achieved rate comes to
# the target depends on the machine, so only "more than nothing" is checked.
status=0
"$bench" -p "$port" -d 1 -c 4 --rate 2000 --keys 1000 --versions 3 --mix get=1 \
    --read-at random-past --json --quiet >"$dir/rate.json" || status=$?
cat "$dir/rate.json"
[ "$status" -eq 0 ] || fail "tkv-bench --rate exited with status $status"

python3 - "$dir/rate.json" <<'PY' || fail "unexpected tkv-bench --rate report"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [l["op"] for l in lines] == ["get"], "expected one line, for get"
l = lines[0]
for field in ("target_rate", "ops_per_sec", "unsent", "lag_p99_us", "lag_max_us"):
    assert field in l, "lacks " + field
assert l["target_rate"] == 2000, "target_rate %r" % l["target_rate"]
assert l["errors"] == 0 and l["misses"] == 0, "errors or misses"
assert l["requests"] > 0 and l["ops_per_sec"] > 0, "no progress"
PY
stop_tkvd

# AUTH: the secret from $TKV_AUTH is accepted, a wrong one is refused.
echo "sm0ke-secret" >"$dir/secret"
start_tkvd "$dir/data-auth" --auth-file "$dir/secret"
status=0
TKV_AUTH=sm0ke-secret "$bench" -p "$port" -n 200 -c 2 --keys 100 --mix put=1 --quiet \
    >/dev/null || status=$?
[ "$status" -eq 0 ] || fail "tkv-bench with TKV_AUTH exited with status $status"
status=0
"$bench" -p "$port" -n 10 -c 2 --auth wrong --quiet >/dev/null 2>"$dir/auth.err" || status=$?
[ "$status" -eq 2 ] || fail "tkv-bench --auth wrong exited with status $status, not 2"
grep -q "AUTH refused" "$dir/auth.err" || fail "no 'AUTH refused' in: $(cat "$dir/auth.err")"
stop_tkvd
echo "bench-smoke: ok"

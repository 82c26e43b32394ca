#!/usr/bin/env bash
# smoke.sh TKVD TKV_BENCH - the bench-smoke test: starts tkvd on a free
# port in a temporary directory, runs a one-second mixed load with preload
# against it, checks the JSON report (a line per operation, no errors,
# non-zero throughput), then stops tkvd with SIGTERM and checks it exited 0.
set -euo pipefail

tkvd=${1:?usage: smoke.sh TKVD TKV_BENCH}
bench=${2:?usage: smoke.sh TKVD TKV_BENCH}

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

"$tkvd" --port 0 --port-file "$dir/port" --data-dir "$dir/data" --fsync never \
    2>"$dir/tkvd.log" &
pid=$!

# Poll for the port file: tkvd writes it once it accepts connections.
for _ in $(seq 1 1000); do
    [ -s "$dir/port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "tkvd exited before listening"
    sleep 0.01
done
[ -s "$dir/port" ] || fail "tkvd wrote no port file within 10 s"
port=$(cat "$dir/port")

status=0
"$bench" -p "$port" -d 1 -c 4 -P 8 --keys 1000 --versions 3 --preload \
    --mix put=1,get=1,range=1 --json --quiet >"$dir/out.json" || status=$?
cat "$dir/out.json"
[ "$status" -eq 0 ] || fail "tkv-bench exited with status $status"

python3 - "$dir/out.json" <<'EOF' || fail "unexpected tkv-bench report"
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
assert ops["preload"]["requests"] == 3000, "preload stored %d versions" % ops["preload"]["requests"]
assert ops["get"]["misses"] == 0, "GETs of preloaded keys missed"
EOF

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "tkvd exited with status $rc after SIGTERM"
echo "bench-smoke: ok"

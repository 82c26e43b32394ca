#!/usr/bin/env bash
# smoke-cluster.sh TKVD TKV_BENCH TKVCTL - tkv-bench --cluster against two
# tkvd serving halves of the slots (a static map, tkvd --cluster-map): the
# preload and a mixed load run without an error (a request sent to the
# wrong node would come back MOVED, an error), every key lands on the node
# whose slots it hashes to, so both nodes hold about half the keys, and
# the header reports that split.
set -euo pipefail

tkvd=${1:?usage: smoke-cluster.sh TKVD TKV_BENCH TKVCTL}
bench=${2:?usage: smoke-cluster.sh TKVD TKV_BENCH TKVCTL}
tkvctl=${3:?usage: smoke-cluster.sh TKVD TKV_BENCH TKVCTL}
unset TKV_AUTH

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

fail() {
    echo "bench-smoke-cluster: $*" >&2
    cat "$dir"/*.log >&2 || true
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

p1=$(free_port)
p2=$(free_port)
[ "$p1" != "$p2" ] || p2=$(free_port)
cat >"$dir/map.json" <<JSON
{"slots": [[0, 8191, "s1"], [8192, 16383, "s2"]],
 "shards": {"s1": {"primary": "n1"}, "s2": {"primary": "n2"}},
 "nodes": {"n1": "127.0.0.1:$p1", "n2": "127.0.0.1:$p2"}}
JSON
for i in 1 2; do
    port=$p1
    [ $i = 2 ] && port=$p2
    "$tkvd" --port "$port" --port-file "$dir/n$i.port" --data-dir "$dir/n$i" --fsync never \
        --cluster-map "$dir/map.json" --node-id "n$i" 2>"$dir/n$i.log" &
    pids+=($!)
    for _ in $(seq 1 1000); do
        [ -s "$dir/n$i.port" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || fail "tkvd n$i exited before listening"
        sleep 0.01
    done
    [ -s "$dir/n$i.port" ] || fail "tkvd n$i wrote no port file within 10 s"
done

"$bench" -p "$p1" --cluster -c 4 --keys 2000 --versions 2 --preload -n 0 >"$dir/header.txt" ||
    fail "preload through --cluster failed: $(cat "$dir/header.txt")"
grep -c 'cluster node 127.0.0.1' "$dir/header.txt" | grep -qx 2 ||
    fail "the header does not list both nodes: $(cat "$dir/header.txt")"
"$bench" -p "$p2" --cluster -c 4 -P 4 --keys 2000 --versions 2 --mix get=3,put=1 -d 1 --json \
    --quiet >"$dir/run.json" || fail "the mixed load through --cluster failed: $(cat "$dir/run.json")"
python3 - "$dir/run.json" <<'PY' || fail "bad report: $(cat "$dir/run.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ops = [l for l in lines if l["op"] in ("put", "get")]
assert len(ops) == 2, lines
for l in ops:
    assert l["errors"] == 0 and l["ops_per_sec"] > 0, l
PY
# Each node holds its own half of the 2000 keys: between 35% and 65%.
total=0
for port in "$p1" "$p2"; do
    n=$("$tkvctl" -p "$port" stats | awk '$1 == "keys:" {print $2}')
    [ -n "$n" ] || fail "no keys count in STATS on port $port"
    [ "$n" -ge 700 ] && [ "$n" -le 1300 ] || fail "node on port $port holds $n of 2000 keys"
    total=$((total + n))
done
[ "$total" -eq 2000 ] || fail "the nodes hold $total keys, not 2000"
for p in "${pids[@]}"; do
    kill -TERM "$p"
    wait "$p" || fail "tkvd exited with an error on SIGTERM"
done
pids=()
echo "bench-smoke-cluster: ok"

#!/bin/bash
# Server CPU per request, natively: `orgsso serve` alone on core 0, `wrk -t1 -c64` on core 1,
# CPU time read from /proc/<pid>/stat (user + system) over the requests wrk got answered.
# Less noisy than requests/s on a shared machine, and it needs no PMU (this VM has none).
# usage: benches/cpu_per_request.sh <orgsso binary> <healthz|hs> <seconds> [perf]
# (hs: GET /auth/acme/verify with one HS256 token, its verdict cached after the warm-up;
# perf: also `perf record` the server into target/cpu-<kind>.data)
# (needs wrk, taskset, curl, node, python3; run from the repository root; 127.0.0.1 only)
set -u
bin=$1; kind=$2; secs=$3; perf=${4:-}
dir=$(mktemp -d); port=$((20000 + RANDOM % 20000)); base=http://127.0.0.1:$port
ADMIN=cpu-admin; HS=bench-hs256-secret-of-at-least-32-bytes
ORGSSO_LISTEN=127.0.0.1:$port ORGSSO_PUBLIC_URL=$base ORGSSO_DATABASE_URL="sqlite://$dir/cpu.db?mode=rwc" \
ORGSSO_DATA_DIR=$dir/data ORGSSO_ADMIN_TOKEN=$ADMIN RUST_LOG=warn taskset -c 0 "$bin" serve >/dev/null 2>"$dir/log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do curl -fs $base/healthz >/dev/null && break; sleep 0.25; done
A="Authorization: Bearer $ADMIN"
curl -fs -H "$A" -H 'content-type: application/json' -d '{"slug":"acme","name":"Acme"}' $base/api/v1/orgs >/dev/null
curl -fs -H "$A" -H 'content-type: application/json' -d "{\"name\":\"hs\",\"type\":\"hs256\",\"secret\":\"$HS\"}" \
  $base/api/v1/orgs/acme/jwt-secrets >/dev/null
mapfile -t toks < <(node benches/callgrind/tokens.mjs $HS tests/fixtures/rsa_a.pem 0)
case $kind in
  hs) url=$base/auth/acme/verify; hdr=(-H "Authorization: Bearer ${toks[0]}") ;;
  healthz) url=$base/healthz; hdr=() ;;
  *) echo "kind: healthz or hs" >&2; exit 2 ;;
esac
[ "$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" $url)" = 200 ] || { echo "$url did not answer 200" >&2; exit 1; }
taskset -c 1 wrk -t1 -c64 -d2s "${hdr[@]}" $url >/dev/null   # warm-up
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
t0=$(ticks)
if [ -n "$perf" ]; then
  perf record -F 4999 -p $pid -o target/cpu-$kind.data -- sleep $((secs + 1)) >/dev/null 2>&1 &
  perf_pid=$!
fi
out=$(taskset -c 1 wrk -t1 -c64 -d${secs}s "${hdr[@]}" $url)
t1=$(ticks)
[ -n "$perf" ] && wait $perf_pid
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
hz=$(getconf CLK_TCK)
python3 -c "print(f'$kind: {$rps:.0f} requests/s, server CPU {($t1-$t0)/$hz/$secs*100:.0f}%, {($t1-$t0)/$hz*1e6/$reqs:.2f} µs per request')"

#!/bin/bash
# Server CPU per request, natively: `orgsso serve` alone on core 0, `wrk -t1 -c64` on core 1,
# CPU time read from /proc/<pid>/stat (user + system) over the requests wrk got answered.
# Less noisy than requests/s on a shared machine, and it needs no PMU (this VM has none).
# usage: benches/cpu_per_request.sh <orgsso binary> <healthz|hs|rsnew> <seconds> [perf]
# (hs: GET /auth/acme/verify with one HS256 token, its verdict cached after the warm-up;
# rsnew: a new RS256 token on every request, from the token file `cargo bench --bench verify`
# leaves in target/tmp (RSS_TOKENS=path for another), so every request checks a signature;
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
pem=$(python3 -c 'import json,sys;print(json.dumps(open(sys.argv[1]).read()))' tests/fixtures/rsa_a.pub.pem)
curl -fs -H "$A" -H 'content-type: application/json' -d "{\"name\":\"rs\",\"type\":\"rs256_public\",\"public_key\":$pem}" \
  $base/api/v1/orgs/acme/jwt-secrets >/dev/null
mapfile -t toks < <(node benches/callgrind/tokens.mjs $HS tests/fixtures/rsa_a.pem 0)
script=()
case $kind in
  hs) url=$base/auth/acme/verify; hdr=(-H "Authorization: Bearer ${toks[0]}") ;;
  healthz) url=$base/healthz; hdr=() ;;
  rsnew)
    file=${RS_TOKENS:-$(ls target/tmp/new-rs256-tokens-*.txt 2>/dev/null | head -1)}
    [ -f "$file" ] || { echo "no token file: run cargo bench --bench verify once, or set RS_TOKENS" >&2; exit 1; }
    url=$base/auth/acme/verify; hdr=(-H "Authorization: Bearer ${toks[1]}")
    script=(-s benches/new_tokens.lua) ;;
  *) echo "kind: healthz, hs or rsnew" >&2; exit 2 ;;
esac
[ "$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" $url)" = 200 ] || { echo "$url did not answer 200" >&2; exit 1; }
# The script's arguments: the token file and wrk's thread count.
run_wrk() { if [ ${#script[@]} -gt 0 ]; then taskset -c 1 wrk -t1 -c64 -d$1s "${script[@]}" $url -- "$file" 1; else taskset -c 1 wrk -t1 -c64 -d$1s "${hdr[@]}" $url; fi; }
[ $kind = rsnew ] || run_wrk 2 >/dev/null   # warm-up (rsnew: every token stays new)
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
t0=$(ticks)
if [ -n "$perf" ]; then
  perf record ${PERF_OPTS:--F 4999} -p $pid -o target/cpu-$kind.data -- sleep $((secs + 1)) >/dev/null 2>&1 &
  perf_pid=$!
fi
out=$(run_wrk $secs)
if echo "$out" | grep -q "token stream wraps: [1-9]"; then echo "the token file ran out: fewer seconds or more tokens" >&2; exit 1; fi
t1=$(ticks)
[ -n "$perf" ] && wait $perf_pid
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
hz=$(getconf CLK_TCK)
python3 -c "print(f'$kind: {$rps:.0f} requests/s, server CPU {($t1-$t0)/$hz/$secs*100:.0f}%, {($t1-$t0)/$hz*1e6/$reqs:.2f} µs per request')"

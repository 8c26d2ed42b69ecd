#!/bin/bash
# Instructions per verify request, counted by callgrind (repeatable, unlike req/s on a shared
# 2-core machine). Starts `orgsso serve` under valgrind on 127.0.0.1, registers an HS256 and an
# RS256 secret, warms the verdict cache, zeroes the counters, sends <requests> verify requests
# with one token over keep-alive, and dumps: the `summary:` line of <out>.1 is the total.
# usage: benches/callgrind/verify_instructions.sh <orgsso binary> <label> <hs|rs|rsnew|healthz> <requests>
# (healthz: the same count of GET /healthz, the HTTP stack alone; rsnew: <requests> distinct
# RS256 tokens, each sent once, so every request checks a signature)
# (needs valgrind, curl, node, python3; run from the repository root)
set -u
bin=$1; label=$2; kind=$3; n=$4
dir=$(mktemp -d); port=$((20000 + RANDOM % 20000)); base=http://127.0.0.1:$port
ADMIN=cg-admin; HS=bench-hs256-secret-of-at-least-32-bytes
ORGSSO_LISTEN=127.0.0.1:$port ORGSSO_PUBLIC_URL=$base ORGSSO_DATABASE_URL="sqlite://$dir/cg.db?mode=rwc" \
ORGSSO_DATA_DIR=$dir/data ORGSSO_ADMIN_TOKEN=$ADMIN RUST_LOG=${CG_RUST_LOG:-warn} \
valgrind --tool=callgrind --callgrind-out-file=${CG_DIR:-target}/callgrind-$label-$kind.out $bin serve >/dev/null 2>$dir/vg.log &
pid=$!
for i in $(seq 1 200); do curl -fs $base/healthz >/dev/null && break; sleep 0.25; done
A="Authorization: Bearer $ADMIN"
curl -fs -H "$A" -H 'content-type: application/json' -d '{"slug":"acme","name":"Acme"}' $base/api/v1/orgs >/dev/null
curl -fs -H "$A" -H 'content-type: application/json' -d "{\"name\":\"hs\",\"type\":\"hs256\",\"secret\":\"$HS\"}" $base/api/v1/orgs/acme/jwt-secrets >/dev/null
pem=$(python3 -c 'import json,sys;print(json.dumps(open(sys.argv[1]).read()))' tests/fixtures/rsa_a.pub.pem)
curl -fs -H "$A" -H 'content-type: application/json' -d "{\"name\":\"rs\",\"type\":\"rs256_public\",\"public_key\":$pem}" $base/api/v1/orgs/acme/jwt-secrets >/dev/null
fresh=0; if [ "$kind" = rsnew ]; then fresh=$((n + 50)); fi
mapfile -t toks < <(node benches/callgrind/tokens.mjs $HS tests/fixtures/rsa_a.pem $fresh)
if [ "$kind" = hs ]; then tok=${toks[0]}; else tok=${toks[1]}; fi
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" $base/auth/acme/verify); echo "$label $kind first: $code"
# n requests over keep-alive connections (curl reuses the connection for repeated URLs)
path=/auth/acme/verify; if [ "$kind" = healthz ]; then path=/healthz; fi
urls=(); for i in $(seq 1 $n); do urls+=("$base$path"); done
if [ "$kind" = rsnew ]; then
  # One curl over keep-alive, a new token per request (a config file: `next` starts a request).
  for part in warm count; do
    from=2; m=50; if [ $part = count ]; then from=52; m=$n; fi
    for t in "${toks[@]:$from:$m}"; do
      printf 'next\nurl = "%s"\nheader = "Authorization: Bearer %s"\noutput = "/dev/null"\n' "$base$path" "$t"
    done | tail -n +2 > $dir/$part.curl
  done
  curl -s -K $dir/warm.curl
  callgrind_control -z $pid >/dev/null
  curl -s -K $dir/count.curl
  callgrind_control -d $pid >/dev/null
else
# warm: the verdict is cached after the first request; count only the steady state
curl -s -H "Authorization: Bearer $tok" "${urls[@]:0:50}" > /dev/null
callgrind_control -z $pid >/dev/null
curl -s -H "Authorization: Bearer $tok" "${urls[@]}" > /dev/null
callgrind_control -d $pid >/dev/null
fi
kill -TERM $pid; wait $pid 2>/dev/null
rm -rf $dir

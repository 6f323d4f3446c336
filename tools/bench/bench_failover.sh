#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Failover benchmark (issue 6): two mock-llm instances, "dead" (answers every call 503 at
# once) and "live" (healthy), and tollgated in front of them. Prints metric lines as
# tools/bench/run does:
#   metric=<name> value=<v> unit=<u> baseline=<b> ratio=<r> goal=<g> pass=<yes|no|->
#
# 1. Added latency of a failover, same run: c=1 p50/p99 of a gateway whose first provider is
#    dead (its breaker never opens: every call pays one failed attempt, then live serves it)
#    against a gateway with live as its only provider.
# 2. Requests reaching a dead provider under traffic (c=8 for BENCH_FAILOVER_SEC, default 60):
#    breaker_failures 5, breaker_open_sec 5, 1 probe. The bound is the probe schedule:
#    breaker_failures + (calls already in flight when it opened, < c) + one probe per open
#    period begun, ceil(T / open_sec).
#
# usage: tools/bench/bench_failover.sh [BUILD_DIR]
# Environment: BENCH_SEC (seconds of each latency run, default 5), BENCH_FAILOVER_SEC (the
# dead-provider run, default 60; `make bench` passes what it is given).
# wrk on CPU 0, servers on CPU 1 (as bench_dataplane.sh); 127.0.0.1 only; every run bounded by
# wrk -d; the trap stops what was started, by PID, and removes the temporary directory.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lua=$here/dataplane/post.lua
SEC=${BENCH_SEC:-5}
FSEC=${BENCH_FAILOVER_SEC:-60}
LCPU=0 SCPU=1
TOKEN=tollgate-bench-admin-token-0123456789abcdef
OPEN_SEC=5 FAILURES=5 PROBES=1 CONNS=8

for t in wrk taskset jq curl; do
	command -v "$t" >/dev/null || {
		echo "bench_failover: $t is not installed" >&2
		exit 1
	}
done
tmp=$(mktemp -d /tmp/bench_failover.XXXXXX)
pids=()
BENCH_NAME=bench_failover
. "$here/lib.sh"

trap bench_cleanup EXIT
trap 'exit 143' TERM INT HUP

start_mock() { bench_mock "$1"; } # NAME: sets MOCK_<NAME> (host:port)

mock_ctl() { # HOST:PORT METHOD PATH [BODY]
	curl -sS --max-time 5 -X "$2" ${4:+-H 'Content-Type: application/json' --data-binary "$4"} \
		"http://$1$3"
}

provider() { # NAME HOST:PORT PRIORITY
	printf '{"name":"%s","base_url":"http://%s/v1","priority":%s,"timeout_sec":10,
	  "models":[{"name":"gpt-4o-mini","prompt_per_1k":0.00015,"completion_per_1k":0.0006}]}' \
		"$1" "$2" "$3"
}

start_tg() { # CONFIG_JSON: sets TG_PID, TG_DATA, TG_ADMIN; its keys in $tmp/key.$tg_n
	local n=$((tg_n + 1))
	printf '%s\n' "$1" >"$tmp/tg.$n.json"
	bench_tollgated "$tmp/store.$n" --set "data.listen=127.0.0.1:0" --log-level error \
		--set kernel.mode=off --config "$tmp/tg.$n.json"
	# 16 enterprise keys (1000 r/s each), so the keys' own rate limits stay out of the way
	bench_keys 16 enterprise "$tmp/key.$tg_n"
}

# run NAME URL KEYS_FILE CONNS SECS: one bounded wrk run; sets REQ, SERR, P50, P99 (us).
run() {
	BENCH_KEYS=$3 taskset -c $LCPU wrk -t1 -c"$4" -d"${5}s" --timeout 10s -s "$lua" --latency \
		"$2" >"$tmp/wrk.$1" 2>&1 || true
	local line
	line=$(grep '^RESULT ' "$tmp/wrk.$1") || {
		echo "bench_failover: wrk $1 failed:" >&2
		cat "$tmp/wrk.$1" >&2
		return 1
	}
	eval "$(sed 's/^RESULT //; s/\([a-z0-9_]*\)=/W_\1=/g' <<<"$line")"
	REQ=$W_requests SERR=$W_status_errors P50=$W_p50_us P99=$W_p99_us
	echo "# $1: requests=$REQ non2xx=$SERR p50=${P50}us p99=${P99}us (${5} s, c=$4)"
}

div() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "-"; else printf "%.3f\n", a / b}'; }

echo "# bench_failover: machine $(uname -srm), $(nproc) cores; commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg)"
export BENCH_BODY='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
start_mock dead
start_mock live
mock_ctl "$MOCK_dead" PUT /_mock/config '{"fail_status":503}' >/dev/null

# ---- 1. failover added latency, c=1, same run ----
start_tg "{\"providers\":[$(provider live "$MOCK_live" 0)]}"
single=$TG_DATA single_key=$tmp/key.$tg_n
start_tg "{\"routing\":{\"breaker_failures\":1000000,\"provider_cooldown_sec\":0},
  \"providers\":[$(provider dead "$MOCK_dead" 0),$(provider live "$MOCK_live" 1)]}"
failover=$TG_DATA failover_key=$tmp/key.$tg_n
run warm-single "http://$single" "$single_key" 1 1 >/dev/null
run warm-failover "http://$failover" "$failover_key" 1 1 >/dev/null
run single "http://$single" "$single_key" 1 "$SEC"
s50=$P50 s99=$P99
run failover "http://$failover" "$failover_key" 1 "$SEC"
f50=$P50 f99=$P99 fserr=$SERR
[ "$fserr" = 0 ] || echo "# WARNING: $fserr non-2xx answers through the failing-over gateway"
a50=$(awk -v a="$f50" -v b="$s50" 'BEGIN {printf "%.1f", a - b}')
a99=$(awk -v a="$f99" -v b="$s99" 'BEGIN {printf "%.1f", a - b}')
echo "metric=failover_added_latency_p50_c1 value=$a50 unit=us baseline=$s50 ratio=$(div "$f50" "$s50") goal=<1000 pass=$(yesno "$a50 < 1000")"
echo "metric=failover_added_latency_p99_c1 value=$a99 unit=us baseline=$s99 ratio=$(div "$f99" "$s99") goal=<2000 pass=$(yesno "$a99 < 2000")"
echo "# (value = p50/p99 with one failed attempt on a provider answering 503 at once, minus a healthy single provider; failover p50=${f50}us p99=${f99}us, single p50=${s50}us p99=${s99}us)"
stop_pid "$TG_PID"

# ---- 2. requests reaching a dead provider during traffic ----
mock_ctl "$MOCK_dead" POST /_mock/reset >/dev/null
mock_ctl "$MOCK_dead" PUT /_mock/config '{"fail_status":503}' >/dev/null
start_tg "{\"routing\":{\"breaker_failures\":$FAILURES,\"breaker_open_sec\":$OPEN_SEC,\"breaker_probes\":$PROBES},
  \"providers\":[$(provider dead "$MOCK_dead" 0),$(provider live "$MOCK_live" 1)]}"
run dead-traffic "http://$TG_DATA" "$tmp/key.$tg_n" $CONNS "$FSEC"
dead=$(mock_ctl "$MOCK_dead" GET /_mock/stats | jq -r .requests.chat_completions)
bound=$((FAILURES + CONNS - 1 + (FSEC + OPEN_SEC - 1) / OPEN_SEC * PROBES))
echo "metric=dead_provider_requests value=$dead unit=requests baseline=$bound ratio=$(div "$dead" "$bound") goal=<=bound pass=$(yesno "$dead <= $bound")"
echo "# (of $REQ calls in $FSEC s at c=$CONNS, $SERR non-2xx; bound = breaker_failures $FAILURES + in flight at opening < $CONNS + one probe per ${OPEN_SEC} s open period: $bound)"

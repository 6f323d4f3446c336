#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the circuit breaker (README "Routing"): provider "dead" (priority 0) answers every
# call with 500, "live" (priority 1) is healthy. Every call is served by "live". After
# routing.breaker_failures (3) failures in a row the breaker of "dead" opens, and from then on
# "dead" receives only the half-open probes: at most routing.breaker_probes (1) per
# routing.breaker_open_sec (2 s), which the script bounds by the time its calls took (counts,
# not timings, are asserted). Once "dead" recovers, the next probe closes the breaker and the
# calls go back to it. GET /api/v1/providers and tollgate_provider_breaker_state show the state.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

OPEN_SEC=2
pv_start_mock dead || bail "mock-llm for provider dead starts"
pv_start_mock live || bail "mock-llm for provider live starts"
cat >"$tmp/config.json" <<EOF
{"routing": {"breaker_failures": 3, "breaker_open_sec": $OPEN_SEC, "breaker_probes": 1},
 "providers": [$(pv_provider dead '"priority": 0'), $(pv_provider live '"priority": 1')]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with two providers"
DP_KEY=$(new_key '{"name":"br","owner":"team:br","service":"br","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'

# calls N: N calls; counts those served after a failover in RETRIED, all must be 200 by live.
calls() {
	local i

	RETRIED=0
	for ((i = 0; i < $1; i++)); do
		dp POST /v1/chat/completions "$CHAT"
		expect_status 200
		expect_header X-Tollgate-Provider '^live$'
		[ "$(header X-Tollgate-Attempts)" = 2 ] && RETRIED=$((RETRIED + 1))
	done
}

# elapsed T0 T1 [EXTRA]: whole seconds from T0 to T1 (date +%s.%N), plus EXTRA, rounded up.
elapsed() {
	awk -v a="$1" -v b="$2" -v x="${3:-0}" 'BEGIN { d = b - a + x; printf "%d\n", d == int(d) ? d : int(d) + 1 }'
}

# The probes "dead" may have had in SECS seconds: one per open period begun.
probe_bound() {
	echo $((${1%.*} / OPEN_SEC + 1))
}

case_start "a 5xx storm: every call is served by live; dead gets 3 calls, then its breaker opens"
at dead mock_config '{"fail_status":500}'
t0=$(date +%s.%N)
calls 20
t1=$(date +%s.%N)
n=$(pv_requests dead)
# n - 3 probes at most, one per open period that began while the calls ran
bound=$((3 + $(probe_bound "$(elapsed "$t0" "$t1")")))
expect test "$n" -ge 3
expect test "$n" -le "$bound"
expect test "$RETRIED" = "$n" # every call dead received failed over to live
expect test "$(pv_requests live)" = 20
st=$(pv_status dead)
expect jqt '.breaker == "open" or .breaker == "half_open"' "$st"
expect jqt '.outcomes.server_error == '"$n" "$st"
expect test "$(metric 'tollgate_provider_errors_total{provider="dead",class="server_error"}')" = "$n"
case_end

case_start "open: the gauge says 2 (or 1 once probing may start) and live's breaker stays closed"
g=$(metric 'tollgate_provider_breaker_state{provider="dead"}')
expect test "$g" = 2 -o "$g" = 1
expect test "$(metric 'tollgate_provider_breaker_state{provider="live"}')" = 0
expect test "$(pv_breaker live)" = closed
case_end

case_start "after breaker_open_sec one probe reaches dead; it fails and the breaker opens again"
sleep $((OPEN_SEC + 1))
before=$(pv_requests dead)
expect test "$(pv_breaker dead)" = half_open
t0=$(date +%s.%N)
calls 10
t1=$(date +%s.%N)
n=$(($(pv_requests dead) - before))
expect test "$n" -ge 1 # the probe
expect test "$n" -le "$(probe_bound "$(elapsed "$t0" "$t1" "$OPEN_SEC")")"
expect test "$RETRIED" = "$n"
case_end

case_start "dead recovers: the next probe closes the breaker and calls go back to it"
at dead mock_config '{"fail_status":0}'
sleep $((OPEN_SEC + 1))
before_live=$(pv_requests live)
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header X-Tollgate-Provider '^dead$'
expect_header X-Tollgate-Attempts '^1$'
expect test "$(pv_breaker dead)" = closed
for i in 1 2 3 4 5; do
	dp POST /v1/chat/completions "$CHAT"
	expect_header X-Tollgate-Provider '^dead$'
done
expect test "$(pv_requests live)" = "$before_live"
expect test "$(metric 'tollgate_provider_breaker_state{provider="dead"}')" = 0
st=$(pv_status dead)
expect jqt '.failures_in_row == 0 and .open_until == null and (.latency_ms.ewma | type == "number")' "$st"
case_end

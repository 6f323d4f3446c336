#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves routing.policy latency_weighted (README "Routing"): two providers of gpt-4o-mini,
# "slow" (its mock answers after 150 ms) listed first and "fast" (no delay). Once both are
# measured the calls go to the faster one, but for the exploration picks (one in
# ROUTER_EXPLORE_EVERY = 10), which keep measuring the other. When the two swap speeds the
# traffic follows within a few dozen calls. Counts at the mocks, never timings, are asserted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

pv_start_mock slow --latency-ms 150 || bail "mock-llm for provider slow starts"
pv_start_mock fast || bail "mock-llm for provider fast starts"
cat >"$tmp/config.json" <<EOF
{"routing": {"policy": "latency_weighted"},
 "providers": [$(pv_provider slow '"priority": 0'), $(pv_provider fast '"priority": 1')]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with two providers"
DP_KEY=$(new_key '{"name":"lat","owner":"team:lat","service":"lat","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'

# calls N: N calls, all must be 200; SERVED[name] counts who served them.
declare -A SERVED
calls() {
	local i p

	SERVED=([slow]=0 [fast]=0)
	for ((i = 0; i < $1; i++)); do
		dp POST /v1/chat/completions "$CHAT"
		expect_status 200
		p=$(header X-Tollgate-Provider)
		SERVED[$p]=$((${SERVED[$p]:-0} + 1))
	done
}

case_start "both are measured, then the faster one gets the calls but for the explorations"
calls 40
# 2 first calls measure both; of the 38 others at most 1 in 10 (+1) explore slow
expect test "${SERVED[fast]}" -ge 33
expect test "${SERVED[slow]}" -ge 2
expect test "$(pv_requests fast)" = "${SERVED[fast]}"
expect test "$(pv_requests slow)" = "${SERVED[slow]}"
st_slow=$(pv_status slow)
st_fast=$(pv_status fast)
expect jqt '.latency_ms.ewma >= 100' "$st_slow"
expect jqt '.latency_ms.ewma < 100 and .latency_ms.p50 < 100' "$st_fast"
case_end

case_start "they swap speeds: the traffic follows to the now faster one"
at slow mock_config '{"latency_ms":0}'
at fast mock_config '{"latency_ms":150}'
calls 40
calls 20 # the last 20: the moving latencies have crossed over by now
expect test "${SERVED[slow]}" -ge 16
case_end

case_start "GET /api/v1/providers shows the policy and both providers' moving latency"
api GET /api/v1/providers
expect_status 200
expect_json .routing.policy latency_weighted
expect_jq '[.data[].name] == ["slow","fast"]'
expect_jq 'all(.data[]; (.latency_ms.ewma | type == "number") and (.latency_ms.p50 | type == "number"))'
expect_jq '[.data[].requests] | add == 100'
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves failover (README "Routing"): two providers of gpt-4o-mini, "primary" (priority 0) and
# "fallback" (priority 1), each its own mock-llm. A healthy primary serves every call. When it
# answers 429 the call goes on to the fallback and the client sees a 200 whose usage record
# names the fallback with 2 attempts, metered once; the primary then cools down
# (routing.provider_cooldown_sec) and the next calls go straight to the fallback. A stream
# whose first provider answers 503 is streamed whole from the next. The failover is counted in
# tollgate_provider_failovers_total{from,to} and the 429 in tollgate_provider_errors_total.
# A primary with rate_limit_per_sec 1 is sent at most one call per second (bounded by the
# time the calls took); the others go to the fallback at once, passed over, not failed over.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

pv_start_mock primary || bail "mock-llm for the primary starts"
pv_start_mock fallback || bail "mock-llm for the fallback starts"
cat >"$tmp/config.json" <<EOF
{"routing": {"policy": "primary", "max_attempts": 3, "provider_cooldown_sec": 600},
 "providers": [$(pv_provider primary '"priority": 0'), $(pv_provider fallback '"priority": 1')]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with two providers"
DP_KEY=$(new_key '{"name":"fo","owner":"team:fo","service":"fo","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
CHAT='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
STREAM='{"model":"gpt-4o-mini","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hello world"}]}'

case_start "a healthy primary serves the call: one attempt, recorded under its name"
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header X-Tollgate-Provider '^primary$'
expect_header X-Tollgate-Attempts '^1$'
rec=$(pv_record "$(header x-request-id)")
expect test "$(jq -r .provider <<<"$rec")" = primary
expect test "$(jq -r .attempts <<<"$rec")" = 1
expect test "$(pv_requests primary)" = 1
expect test "$(pv_requests fallback)" = 0
case_end

case_start "the primary answers 429: the client gets a 200 from the fallback, attempts 2"
at primary mock_config '{"fail_status":429,"fail_count":1}'
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_jq '.usage == {"prompt_tokens":6,"completion_tokens":3,"total_tokens":9}'
expect_header X-Tollgate-Provider '^fallback$'
expect_header X-Tollgate-Attempts '^2$'
expect test "$(pv_requests primary)" = 2
expect test "$(pv_requests fallback)" = 1
case_end

case_start "its usage record names the fallback and 2 attempts, metered once (one call's tokens)"
rec=$(pv_record "$(header x-request-id)")
expect test -n "$rec"
expect test "$(jq -r .provider <<<"$rec")" = fallback
expect test "$(jq -r .attempts <<<"$rec")" = 2
expect test "$(jq -r .status <<<"$rec")" = 200
expect test "$(jq -r '.prompt_tokens + .completion_tokens' <<<"$rec")" = 9
expect test "$(pv_records | wc -l)" = 2
BODY=$(usage_of fo)
expect_jq '.requests == 2 and .prompt_tokens == 12 and .completion_tokens == 6'
case_end

case_start "the failover and the 429 are counted; the primary is cooling down"
expect test "$(metric 'tollgate_provider_failovers_total{from="primary",to="fallback"}')" = 1
expect test "$(metric 'tollgate_provider_errors_total{provider="primary",class="rate_limited"}')" = 1
st=$(pv_status primary)
expect test -n "$st"
expect jqt '.cooldown_until | type == "string"' "$st"
expect jqt '.outcomes.rate_limited == 1 and .outcomes.ok == 1 and .breaker == "closed"' "$st"
expect jqt '.requests == 2' "$st"
case_end

case_start "while it cools down calls go straight to the fallback (the primary gets none)"
for i in 1 2 3; do
	dp POST /v1/chat/completions "$CHAT"
	expect_status 200
	expect_header X-Tollgate-Provider '^fallback$'
	expect_header X-Tollgate-Attempts '^1$'
done
expect test "$(pv_requests primary)" = 2
expect test "$(pv_requests fallback)" = 4
case_end

# A second gateway whose primary has not cooled down, for the stream.
tg_stop_daemon
at primary mock_reset
at fallback mock_reset
tg_start_gateway --config "$tmp/config.json" || bail "tollgated restarts"

case_start "a stream whose first provider answers 503 is streamed whole by the next"
at primary mock_config '{"fail_status":503,"fail_count":1}'
dp POST /v1/chat/completions "$STREAM"
expect_status 200
expect_header Content-Type '^text/event-stream'
expect_header X-Tollgate-Provider '^fallback$'
expect_header X-Tollgate-Attempts '^2$'
BODY=$(sse_json)
expect_jq '[.[] | objects | .choices[]? | .delta.content // empty] | join("") == "tok1 tok2 tok3 tok4"'
expect_jq '.[-1] == "[DONE]"'
expect_jq '[.[] | objects | select(.error != null)] | length == 0'
expect test "$(pv_requests primary)" = 1
expect test "$(pv_requests fallback)" = 1
case_end

case_start "a 400 from the provider is the client's error: passed through, no failover"
at primary mock_config '{"fail_status":400,"fail_count":1}'
# the 503 put no cooldown on the primary (no Retry-After): it is asked first again
dp POST /v1/chat/completions "$CHAT"
expect_error 400 invalid_request_error null
expect_header X-Tollgate-Provider '^primary$'
expect_header X-Tollgate-Attempts '^1$'
expect test "$(pv_requests fallback)" = 1
case_end

# A third gateway whose primary may be sent 1 call per second (rate_limit_per_sec).
tg_stop_daemon
at primary mock_reset
at fallback mock_reset
cat >"$tmp/config.json" <<EOF
{"providers": [$(pv_provider primary '"priority": 0, "rate_limit_per_sec": 1'),
               $(pv_provider fallback '"priority": 1')]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated restarts with an outbound limit"

case_start "rate_limit_per_sec 1: the primary gets at most 1 call per second, the rest go on"
t0=$(date +%s)
for i in 1 2 3 4 5 6 7 8; do
	dp POST /v1/chat/completions "$CHAT"
	expect_status 200
	expect_header X-Tollgate-Attempts '^1$' # passed over, not failed over
done
secs=$(($(date +%s) - t0 + 1))
n=$(pv_requests primary)
expect test "$n" -ge 1
expect test "$n" -le "$secs"
expect test "$(pv_requests fallback)" = $((8 - n))
expect jqt ".rate_limited_skips == $((8 - n))" "$(pv_status primary)"
case_end

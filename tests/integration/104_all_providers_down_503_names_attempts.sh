#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves what a client sees when no provider can serve its call (README "Routing"): providers
# "a" (answers 500), "b" (answers 503) and "c" (nobody listens) all serve gpt-4o-mini. The call
# is tried on each in turn and answered 503 all_providers_failed, naming every attempt and its
# reason; its usage record says 3 attempts and status 503. Once their breakers are open the
# next call is refused at once, naming each open breaker, and reaches no provider (0 attempts);
# its Retry-After says when the first breaker starts probing again.
# routing.max_attempts stops the tries (the message says so); a provider that does not answer
# within its timeout_sec is failed over like one that refuses.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

pv_start_mock a || bail "mock-llm for provider a starts"
pv_start_mock b || bail "mock-llm for provider b starts"
closed=$(tg_closed_port) || bail "a closed TCP port is found"
PV_URL[c]=http://127.0.0.1:$closed
config() { # MAX_ATTEMPTS
	cat >"$tmp/config.json" <<EOF
{"routing": {"max_attempts": $1, "breaker_failures": 2, "breaker_open_sec": 600},
 "providers": [$(PV_TIMEOUT=1 pv_provider a), $(pv_provider b), $(pv_provider c)]}
EOF
}
config 3
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with three providers"
DP_KEY=$(new_key '{"name":"down","owner":"team:down","service":"down","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'
at a mock_config '{"fail_status":500}'
at b mock_config '{"fail_status":503}'

case_start "all three fail: 503 all_providers_failed naming each attempt and why"
dp POST /v1/chat/completions "$CHAT"
expect_error 503 upstream_error all_providers_failed
expect_match .error.message 'a: status 500; b: status 503; c: connect'
expect_match .error.message 'gpt-4o-mini'
expect_header X-Tollgate-Attempts '^3$'
# every provider could take a call again at once (the attempts failed): no Retry-After
expect test -z "$(header Retry-After)"
rec=$(pv_record "$(header x-request-id)")
expect jqt '.status == 503 and .attempts == 3 and .provider == "c"' "$rec"
expect jqt '.prompt_tokens + .completion_tokens == 0' "$rec"
case_end

case_start "the second such call opens the three breakers (breaker_failures 2)"
dp POST /v1/chat/completions "$CHAT"
expect_error 503 upstream_error all_providers_failed
for p in a b c; do
	expect test "$(pv_breaker $p)" = open
	expect test "$(metric "tollgate_provider_breaker_state{provider=\"$p\"}")" = 2
done
expect test "$(pv_requests a)" = 2
expect test "$(pv_requests b)" = 2
case_end

case_start "with every breaker open the call is refused at once and reaches no provider"
dp POST /v1/chat/completions "$CHAT"
expect_error 503 upstream_error all_providers_failed
expect_match .error.message 'a: circuit open; b: circuit open; c: circuit open'
# Retry-After: when the first breaker starts probing (breaker_open_sec 600, whole seconds)
expect_header Retry-After '^([1-9][0-9]?|[1-5][0-9][0-9]|600)$'
expect test "$(pv_requests a)" = 2
expect test "$(pv_requests b)" = 2
rec=$(pv_record "$(header x-request-id)")
expect jqt '.status == 503 and .attempts == 0 and .provider == ""' "$rec"
BODY=$(usage_of down)
expect_jq '.requests == 3 and .error_rate == 1 and .prompt_tokens == 0'
case_end

case_start "tollctl providers: one row per provider with its breaker and failures"
ctl providers
expect_exit 0
printf '%s\n' "$BODY" | grep -q '^routing: policy primary, up to 3 attempts' ||
	fail "no routing line: $BODY"
for p in a b c; do
	printf '%s\n' "$BODY" | grep -Eq "^$p +open until [0-9T:Z-]+ " || fail "no open row for $p: $BODY"
done
printf '%s\n' "$BODY" | grep -Eq '^a .*server_error 2' || fail "a's failures not shown: $BODY"
printf '%s\n' "$BODY" | grep -Eq '^c .*connect 2' || fail "c's failures not shown: $BODY"
ctl --json providers
expect_exit 0
expect_jq '[.data[].breaker] == ["open","open","open"]'
CTL_TOKEN=wrong-token ctl providers
expect_exit 4
case_end

tg_stop_daemon
config 2
at a mock_reset
at b mock_reset
tg_start_gateway --config "$tmp/config.json" || bail "tollgated restarts with max_attempts 2"
at a mock_config '{"fail_status":500}'
at b mock_config '{"fail_status":500}'

case_start "routing.max_attempts 2: a and b are tried, c is not, and the message says why"
dp POST /v1/chat/completions "$CHAT"
expect_error 503 upstream_error all_providers_failed
expect_match .error.message 'a: status 500; b: status 500; routing.max_attempts reached'
expect_header X-Tollgate-Attempts '^2$'
expect test "$(pv_status c | jq -r .requests)" = 0
case_end

case_start "a provider that does not answer within its timeout_sec (1 s) is failed over"
at a mock_config '{"fail_status":0,"hang":true}'
at b mock_config '{"fail_status":0}'
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header X-Tollgate-Provider '^b$'
expect_header X-Tollgate-Attempts '^2$'
expect jqt '.outcomes.timeout == 1' "$(pv_status a)"
expect test "$(metric 'tollgate_provider_errors_total{provider="a",class="timeout"}')" = 1
at a mock_config '{"hang":false}'
case_end

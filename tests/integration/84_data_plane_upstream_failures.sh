#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves how the data plane handles upstream trouble (docs/data-plane.md "Upstream trouble",
# "Streams", "Metering"), with faults injected through mock-llm's control API and providers
# from a config file: GET /v1/models lists the providers' models, a model goes to the first
# provider listing it, with that provider's own credential (never the client's key); the
# provider's 429 (with its Retry-After), 400, 500 and 503 (with Retry-After) come back with
# their status and body, streams included; a provider that accepts and never answers is a
# 504 upstream_timeout after the provider's timeout_sec; a provider nobody listens for, or
# the mock stopped, is a 502 upstream_error; an upstream stream cut mid-way ends the
# client's stream with an SSE error event after the tokens that came, and is metered
# (estimated, never zero); a client that goes away mid-stream gets the first tokens as they
# come, cancels the upstream stream, and what was used is recorded. Every forwarded call is
# one usage record, errors in the error rate; upstream_errors_total counts them by class.
. "$(dirname "$0")/lib.sh"

export TG_TEST_UPSTREAM_KEY=upstream-credential-0123456789abcdef
tg_start_mock --api-key "$TG_TEST_UPSTREAM_KEY" || bail "mock-llm starts, requiring a provider key"
closed=$(tg_closed_port) || bail "a closed TCP port is found"
# gpt-4o-mini: patient; gpt-4o: the same mock with a 1 s timeout; gpt-3.5-turbo: nobody there
# (which also lists gpt-4o-mini: the first provider listing a model serves it). One attempt
# per call, a breaker that never opens, no cooldown: this script is about the answers of one
# provider passed through (failover has its own scripts, tests/integration/100_*.sh on).
cat >"$tmp/config.json" <<EOF
{"routing": {"max_attempts": 1, "breaker_failures": 1000000, "provider_cooldown_sec": 0,
             "retry_after": "ignore"},
 "providers": [
  {"name": "mock", "base_url": "$MOCK_URL/v1", "api_key_env": "TG_TEST_UPSTREAM_KEY",
   "timeout_sec": 60,
   "models": [{"name": "gpt-4o-mini", "prompt_per_1k": 0.00015, "completion_per_1k": 0.0006}]},
  {"name": "impatient", "base_url": "$MOCK_URL/v1", "api_key_env": "TG_TEST_UPSTREAM_KEY",
   "timeout_sec": 1,
   "models": [{"name": "gpt-4o", "prompt_per_1k": 0.0025, "completion_per_1k": 0.01}]},
  {"name": "gone", "base_url": "http://127.0.0.1:$closed/v1", "timeout_sec": 5,
   "models": [{"name": "gpt-3.5-turbo", "prompt_per_1k": 0.0005, "completion_per_1k": 0.0015},
              {"name": "gpt-4o-mini", "prompt_per_1k": 1, "completion_per_1k": 1}]}
]}
EOF
tg_start_gateway --config "$tmp/config.json" ||
	bail "tollgated starts with three providers from its config file"
DP_KEY=$(new_key '{"name":"upstream","owner":"team:up","service":"up","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"

CHAT='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
STREAM='{"model":"gpt-4o-mini","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hello world"}]}'

case_start "a call reaches the provider with the provider's credential (the mock requires it)"
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_jq '.usage == {"prompt_tokens":6,"completion_tokens":3,"total_tokens":9}'
expect test "$(mock_stat .unauthorized)" = 0
case_end
metered gpt-4o-mini 6 3

case_start "GET /v1/models lists the models of the config file's providers, each once"
dp GET /v1/models
expect_status 200
expect_jq '[.data[].id] | sort == ["gpt-3.5-turbo","gpt-4o","gpt-4o-mini"]'
case_end

case_start "the provider's 429 comes back as a 429 with its Retry-After and its body"
mock_config '{"fail_status":429,"fail_count":1,"retry_after":7}'
dp POST /v1/chat/completions "$CHAT"
expect_status 429
expect_header Retry-After '^7$'
expect_json .error.code rate_limit_exceeded
expect_match .error.message 'injected by mock-llm'
expect_header x-request-id '^req_'
expect_header x-ratelimit-limit-requests '^2000$'
case_end
metered gpt-4o-mini 0 0 429

case_start "the provider's 400 comes back as a 400 with its body"
mock_config '{"fail_status":400,"fail_count":1,"retry_after":0}'
dp POST /v1/chat/completions "$CHAT"
expect_status 400
expect_json .error.type invalid_request_error
expect_match .error.message 'injected by mock-llm'
case_end
metered gpt-4o-mini 0 0 400

case_start "the provider's 500 comes back as a 500 with its body"
mock_config '{"fail_status":500,"fail_count":1,"retry_after":0}'
dp POST /v1/chat/completions "$CHAT"
expect_status 500
expect_json .error.type server_error
expect_match .error.message 'injected by mock-llm'
case_end
metered gpt-4o-mini 0 0 500

case_start "the provider's 503 comes back as a 503 with its Retry-After"
mock_config '{"fail_status":503,"fail_count":1,"retry_after":5}'
dp POST /v1/chat/completions "$CHAT"
expect_status 503
expect_header Retry-After '^5$'
expect_json .error.type server_error
case_end
metered gpt-4o-mini 0 0 503

case_start "a stream the provider refuses with 500 is a 500 with a JSON error, not an event stream"
mock_config '{"fail_status":500,"fail_count":1,"retry_after":0}'
dp POST /v1/chat/completions "$STREAM"
expect_status 500
expect_header Content-Type '^application/json'
expect_json .error.type server_error
case_end
metered gpt-4o-mini 0 0 500

case_start "once the faults are used up calls are served again"
dp POST /v1/chat/completions "$CHAT"
expect_status 200
case_end
metered gpt-4o-mini 6 3

case_start "every forwarded call is one usage record: the errors count in the error rate, not in tokens"
expect_metered up
case_end

# From here on a call's tokens may be estimated; the script follows the record count and
# the error rate, and the tokens where the contract fixes them.
errors=$m_errors calls=$m_calls
usage_now() { usage_of up; }

case_start "a provider that never answers: 504 upstream_timeout after its timeout_sec (1 s)"
mock_config '{"hang":true}'
dp POST /v1/chat/completions '{"model":"gpt-4o","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
expect_status 504
expect_json .error.code upstream_timeout
expect_jq '.error.message | type == "string" and length > 0'
expect_header x-request-id '^req_'
mock_config '{"hang":false}'
case_end
calls=$((calls + 1)) errors=$((errors + 1))

case_start "a provider nobody listens for: 502 upstream_error"
dp POST /v1/chat/completions '{"model":"gpt-3.5-turbo","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
expect_status 502
expect_json .error.code upstream_error
expect_jq '.error.message | type == "string" and length > 0'
case_end
calls=$((calls + 1)) errors=$((errors + 1))

case_start "the timeout and the refused connection are metered as failed calls"
BODY=$(usage_now) || fail "GET /api/v1/usage/up answers 200"
expect_json .requests "$calls"
expect_jq --argjson e "$errors" --argjson n "$calls" '(.error_rate - $e / $n) | (. < 1e-6 and . > -1e-6)'
case_end

# The upstream cuts the stream after 3 of 10 tokens.
before=$(usage_now)
mock_config '{"disconnect_after_tokens":3}'
case_start "an upstream stream cut mid-way: the client gets the 3 tokens, then an SSE error event, and a clean end"
dp POST /v1/chat/completions "$STREAM"
expect_status 200
expect test "$DP_RC" = 0
BODY=$(sse_json)
expect_jq '[.[] | objects | .choices[]? | .delta.content // empty] | join("") == "tok1 tok2 tok3"'
expect_jq '[.[] | objects | select(.error != null)] | length == 1'
expect_jq '(map(type == "object" and .error != null) | index(true)) as $e |
	$e != null and all(.[$e + 1:][]; . == "[DONE]")'
expect_jq '.[] | objects | select(.error != null) | .error.message | type == "string" and length > 0'
expect_jq 'all(.[] | objects; ((.choices[0].finish_reason) // null) == null)'
case_end
mock_config '{"disconnect_after_tokens":-1}'
cut_bytes=$(printf '%s' "$STREAM" | wc -c)

case_start "the cut stream is metered: 3 completion tokens received, the prompt estimated from the request (never zero)"
after=$(usage_now) || fail "GET /api/v1/usage/up answers 200"
BODY=$after
expect_json .requests "$((calls + 1))"
expect_jq --argjson b "$before" '.completion_tokens - $b.completion_tokens == 3'
expect_jq --argjson b "$before" --argjson n "$cut_bytes" \
	'(.prompt_tokens - $b.prompt_tokens) as $p | $p >= (($n / 4) | floor) and $p <= (($n / 4) | ceil)'
expect_jq --argjson b "$before" '.cost > $b.cost'
case_end
calls=$((calls + 1))

# A stream of 40 tokens 250 ms apart (10 s) that the client leaves after about 1.5 s.
mock_reset
before=$(usage_now)
mock_config '{"token_ms":250}'
case_start "a client leaving mid-stream got the first tokens as they came"
DP_MAX_TIME=1.5 dp POST /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"hello world"}]}'
expect test "$DP_RC" = 28
expect grep -q '"content":"tok1"' <<<"$BODY"
case_end

case_start "... and the gateway cancelled the upstream stream: the mock saw it aborted, not completed"
mock_settle || fail "the upstream stream was still in flight 10 s later"
BODY=$(mock_stats)
expect_json .streams_started 1
expect_json .streams_aborted 1
expect_json .streams_completed 0
expect_jq '.completion_tokens_sent < 40'
case_end
mock_config '{"token_ms":0}'

case_start "... and what was used is recorded: one more record, its tokens between 1 and 39"
for ((i = 0; i < 50; i++)); do
	after=$(usage_now) && [ "$(jq .requests <<<"$after")" -gt "$(jq .requests <<<"$before")" ] && break
	sleep 0.1
done
BODY=$after
expect_json .requests "$((calls + 1))"
expect_jq --argjson b "$before" '(.completion_tokens - $b.completion_tokens) as $c | $c >= 1 and $c <= 39'
expect_jq --argjson b "$before" '.prompt_tokens > $b.prompt_tokens'
case_end
calls=$((calls + 1))

case_start "upstream_errors_total counts the timeout and the refused connection by class"
api GET /metrics "" ""
expect grep -Eq '^upstream_errors_total\{class="timeout"\} [1-9]' <<<"$BODY"
expect grep -Eq '^upstream_errors_total\{class="connect"\} [1-9]' <<<"$BODY"
case_end

case_start "with the mock stopped, a call and a stream are 502 upstream_error"
tg_stop_mock
dp POST /v1/chat/completions "$CHAT"
expect_status 502
expect_json .error.code upstream_error
dp POST /v1/chat/completions "$STREAM"
expect_status 502
expect_json .error.code upstream_error
case_end
calls=$((calls + 2))

case_start "tollgated keeps serving its own endpoints with the upstream gone, and metered both failures"
BODY=$(usage_now) || fail "GET /api/v1/usage/up answers 200"
expect_json .requests "$calls"
case_end

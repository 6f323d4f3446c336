#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves that a stream is never failed over once the client has seen its first bytes (README
# "Routing"): provider "primary" cuts its stream after 2 tokens, "fallback" is healthy. The
# client gets the 2 tokens, then one SSE error event and the end of the body, no [DONE]; the
# fallback receives nothing; the usage record names the primary, 1 attempt, status 502; the
# failure counts as "broken" against the primary. A stream the provider refuses (500) before
# any byte reached the client is still failed over.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

pv_start_mock primary || bail "mock-llm for provider primary starts"
pv_start_mock fallback || bail "mock-llm for provider fallback starts"
cat >"$tmp/config.json" <<EOF
{"providers": [$(pv_provider primary '"priority": 0'), $(pv_provider fallback '"priority": 1')]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with two providers"
DP_KEY=$(new_key '{"name":"ms","owner":"team:ms","service":"ms","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
STREAM='{"model":"gpt-4o-mini","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"hello world"}]}'

case_start "cut after 2 tokens: the 2 tokens, one SSE error event, no [DONE], no failover"
at primary mock_config '{"disconnect_after_tokens":2}'
dp POST /v1/chat/completions "$STREAM"
expect_status 200
expect_header Content-Type '^text/event-stream'
expect_header X-Tollgate-Provider '^primary$'
expect_header X-Tollgate-Attempts '^1$'
expect test "$DP_RC" = 0 # the body ended cleanly (chunked end), not cut
BODY=$(sse_json)
expect_jq '[.[] | objects | .choices[]? | .delta.content // empty] | join("") == "tok1 tok2"'
expect_jq '[.[] | objects | select(.error != null)] | length == 1'
expect_jq '.[-1] | objects | .error.type == "upstream_error" and .error.code == "upstream_error"'
expect_jq 'index("[DONE]") == null'
expect test "$(pv_requests fallback)" = 0
case_end

case_start "its usage record: primary, 1 attempt, 502; counted as broken against the primary"
rec=$(pv_records | tail -n 1)
expect jqt '.provider == "primary" and .attempts == 1 and .status == 502 and .stream == 1' "$rec"
expect jqt '.completion_tokens == 2' "$rec"
expect test "$(metric 'tollgate_provider_errors_total{provider="primary",class="broken"}')" = 1
expect test "$(metric 'tollgate_provider_failovers_total{from="primary",to="fallback"}')" = -1
case_end

case_start "a stream refused (500) before any byte reached the client is failed over, whole"
at primary mock_config '{"disconnect_after_tokens":-1,"fail_status":500,"fail_count":1}'
dp POST /v1/chat/completions "$STREAM"
expect_status 200
expect_header X-Tollgate-Provider '^fallback$'
expect_header X-Tollgate-Attempts '^2$'
BODY=$(sse_json)
expect_jq '.[-1] == "[DONE]"'
expect_jq '[.[] | objects | select(.error != null)] | length == 0'
case_end

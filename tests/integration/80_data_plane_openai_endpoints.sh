#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the OpenAI-compatible endpoints of the data plane (docs/data-plane.md) end to end,
# with the real tollgated in front of the real mock-llm: POST /v1/chat/completions,
# /v1/completions and /v1/embeddings answer in OpenAI's shapes with the upstream's content
# and usage passed through unchanged (the numbers follow from mock-llm's token rule), the key
# works in Authorization: Bearer and in X-API-Key, GET /v1/models lists the configured
# models, and every call is metered: GET /api/v1/usage/:service shows each call's tokens and
# its cost from the default price table, to the nano-dollar. /metrics on the admin listener
# has every family the contract names, and http_requests_total and the consumption counters
# grow with the calls.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
DP_KEY=$(new_key '{"name":"endpoints","owner":"team:dp","service":"chat","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"

metric() { # SERIES: its value on /metrics (0 when absent)
	curl -sS --max-time 5 "$TG_URL/metrics" |
		awk -v s="$1" 'index($0, s " ") == 1 { v = $2 } END { print v + 0 }'
}
http_before=$(curl -sS --max-time 5 "$TG_URL/metrics" |
	awk '/^http_requests_total\{.*listener="data"/ { n += $2 } END { print n + 0 }')
cons_before=$(metric 'consumption_requests_total{endpoint="chat",model="gpt-4o-mini",status="200"}')

case_start "a new key's usage is all zero"
BODY=$(usage_of chat) || fail "GET /api/v1/usage/chat?days=1 did not answer 200"
expect_json .service chat
expect_json .days 1
expect_jq '.requests == 0 and .prompt_tokens == 0 and .completion_tokens == 0 and .total_tokens == 0'
expect_jq '.cost == 0 and .currency == "USD"'
case_end

# "You are terse." is 14 bytes (4 tokens), "hello world" 11 (3), plus 3 per message: 13.
chat_body='{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"hello world"}]}'
case_start "POST /v1/chat/completions answers the upstream's chat.completion with its usage (13 + 5 tokens)"
expect test "$(chat_tokens "You are terse." "hello world")" = 13
dp POST /v1/chat/completions "$chat_body"
expect_status 200
expect_header Content-Type '^application/json'
expect_header x-request-id '^req_'
expect_json .object chat.completion
expect_match .id '^chatcmpl-'
expect_json .model gpt-4o-mini
expect_json '.choices | length' 1
expect_json '.choices[0].message.role' assistant
expect_json '.choices[0].message.content' 'tok1 tok2 tok3 tok4 tok5'
expect_json '.choices[0].finish_reason' length
expect_jq '.usage == {"prompt_tokens":13,"completion_tokens":5,"total_tokens":18}'
case_end
metered gpt-4o-mini 13 5

case_start "the key works in X-API-Key as well as in Authorization: Bearer"
dp POST /v1/chat/completions "$chat_body" "" -- -H "X-API-Key: $DP_KEY"
expect_status 200
expect_jq '.usage == {"prompt_tokens":13,"completion_tokens":5,"total_tokens":18}'
case_end
metered gpt-4o-mini 13 5

case_start "the header names are case-insensitive (x-api-key, AUTHORIZATION)"
dp POST /v1/chat/completions "$chat_body" "" -- -H "x-api-key: $DP_KEY"
expect_status 200
dp POST /v1/chat/completions "$chat_body" "" -- -H "AUTHORIZATION: Bearer $DP_KEY"
expect_status 200
case_end
metered gpt-4o-mini 13 5
metered gpt-4o-mini 13 5

case_start "without max_tokens the upstream's default of 16 tokens comes through, finish_reason stop"
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"abcd"}]}'
expect_status 200
expect_json '.choices[0].message.content' "$(printf 'tok%d ' {1..16} | sed 's/ $//')"
expect_json '.choices[0].finish_reason' stop
expect_jq '.usage == {"prompt_tokens":4,"completion_tokens":16,"total_tokens":20}'
case_end
metered gpt-4o-mini 4 16

# "Say this is a test" is 18 bytes: 5 tokens.
case_start "POST /v1/completions answers the upstream's text_completion with its usage (5 + 7 tokens)"
dp POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"Say this is a test","max_tokens":7}'
expect_status 200
expect_header x-request-id '^req_'
expect_json .object text_completion
expect_match .id '^cmpl-'
expect_json .model gpt-3.5-turbo
expect_json '.choices[0].text' 'tok1 tok2 tok3 tok4 tok5 tok6 tok7'
expect_json '.choices[0].finish_reason' length
expect_jq '.usage == {"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}'
case_end
metered gpt-3.5-turbo 5 7

# "abc" is 1 token, "hello world" 3.
case_start "POST /v1/embeddings answers one 8-float embedding per input, in order, usage 4 tokens"
dp POST /v1/embeddings '{"model":"text-embedding-3-small","input":["abc","hello world"]}'
expect_status 200
expect_header x-request-id '^req_'
expect_json .object list
expect_json .model text-embedding-3-small
expect_jq '[.data[] | .object] == ["embedding","embedding"] and [.data[].index] == [0,1]'
expect_jq 'all(.data[]; (.embedding | length) == 8 and all(.embedding[]; type == "number"))'
expect_jq '.usage == {"prompt_tokens":4,"total_tokens":4}'
case_end
metered text-embedding-3-small 4 0
first_vectors=$BODY

case_start "embeddings are the upstream's: the same input gets the same vector"
dp POST /v1/embeddings '{"model":"text-embedding-3-small","input":"hello world"}'
expect_status 200
expect_jq --argjson f "$first_vectors" '.data[0].embedding == $f.data[1].embedding'
case_end
metered text-embedding-3-small 3 0

case_start "a call to gpt-4o is priced at gpt-4o's prices (checked in the usage below)"
dp POST /v1/chat/completions '{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"0123456789abcdef"}]}'
expect_status 200
expect_json .model gpt-4o
expect_jq '.usage == {"prompt_tokens":7,"completion_tokens":10,"total_tokens":17}'
case_end
metered gpt-4o 7 10

case_start "GET /v1/models lists the configured models (the default price table's four)"
dp GET /v1/models
expect_status 200
expect_header x-request-id '^req_'
expect_json .object list
expect_jq '[.data[].id] | sort == ["gpt-3.5-turbo","gpt-4o","gpt-4o-mini","text-embedding-3-small"]'
expect_jq 'all(.data[]; .object == "model")'
case_end

case_start "the upstream received each forwarded call once: $m_calls completions and embeddings"
mock_settle
BODY=$(mock_stats)
expect_jq --argjson n "$m_calls" '.requests.chat_completions + .requests.completions + .requests.embeddings == $n'
expect_jq '.requests.chat_completions == 6 and .requests.completions == 1 and .requests.embeddings == 2'
case_end

case_start "GET /api/v1/usage/chat?days=1 counts every call with its exact tokens and cost"
expect_metered chat
expect_json .service chat
expect_json .days 1
expect_json .error_rate 0
expect_jq '(.average_latency_ms | type) == "number" and .average_latency_ms >= 0'
case_end

case_start "/metrics on the admin listener has every family the contract names"
api GET /metrics "" ""
expect_status 200
for fam in http_requests_total http_request_duration_seconds consumption_requests_total \
	tokens_consumed_total rate_limits_exceeded_total quota_exceeded_total upstream_errors_total; do
	grep -q "^# TYPE $fam " <<<"$BODY" || fail "no '# TYPE $fam' line on /metrics"
done
grep -q 'key_id\|tg_[a-z0-9]\{12\}_' <<<"$BODY" && fail "/metrics has a per-key label or a key"
case_end

case_start "the data-plane calls grew http_requests_total{listener=data} and the consumption counters"
http_after=$(curl -sS --max-time 5 "$TG_URL/metrics" |
	awk '/^http_requests_total\{.*listener="data"/ { n += $2 } END { print n + 0 }')
# The chat calls of gpt-4o-mini above: 5 answered 200.
cons_after=$(metric 'consumption_requests_total{endpoint="chat",model="gpt-4o-mini",status="200"}')
expect test "$http_after" -ge "$((http_before + m_calls + 1))"
expect test "$((cons_after - cons_before))" = 5
toks=$(metric 'tokens_consumed_total{endpoint="embeddings",model="text-embedding-3-small",type="prompt"}')
expect test "$toks" = 7
case_end

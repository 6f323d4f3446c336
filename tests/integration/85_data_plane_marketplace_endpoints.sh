#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the marketplace endpoints of the data plane (docs/data-plane.md "Marketplace
# endpoints"): POST /api/v1/consume/:serviceId runs a chat completion and answers its
# request_id, response text, model, usage and cost {amount, currency, breakdown} priced from
# the default table, and latency_ms (model from data.default_model unless given; prompt
# required); GET /api/v1/quota/:serviceId gives the key's monthly token quota (tier, used
# growing with every call, total, remaining, reset_at the first of next month UTC,
# exceeded), and a key over its quota is refused naming the quota; GET
# /api/v1/usage/:serviceId?days=N sums requests, tokens, cost, average latency and error
# rate, N in 1..366 (default 30, else 400); GET /api/v1/rate-limits and POST
# /api/v1/rate-limits/check tell where the key stands without spending anything: after
# many of them a real request still finds the whole burst.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
created=$(new_key '{"name":"market","owner":"consumer:acme","service":"market","tier":"premium"}') ||
	bail "the admin creates a premium-tier key"
DP_KEY=$(jq -r .key <<<"$created")
key_id=$(jq -r .id <<<"$created")
next_month=$(date -u -d "$(date -u +%Y-%m-01) +1 month" +%Y-%m-01T00:00:00Z)

case_start "a new key's quota: tier premium, 0 of 10000000 used, resets the first of next month UTC"
dp GET /api/v1/quota/market
expect_status 200
expect_header x-request-id '^req_'
expect_json .service market
expect_json .tier premium
expect_json .used 0
expect_json .total 10000000
expect_json .remaining 10000000
expect_json .reset_at "$next_month"
expect_json .exceeded false
case_end

# "hello world": 3 tokens + 3 for the message = 6, if consume sends the prompt as one user
# message; the case takes the prompt tokens from the upstream's own count to be sure.
case_start "POST /api/v1/consume/market answers request_id, response, model, usage, cost and latency_ms"
mock_before=$(mock_stat .prompt_tokens)
dp POST /api/v1/consume/market '{"prompt":"hello world","max_tokens":8,"temperature":0.2,"metadata":{"order":"A-17"}}'
expect_status 200
P=$(( $(mock_stat .prompt_tokens) - mock_before ))
expect test "$P" -gt 0
expect_match .request_id '^req_'
expect_json .request_id "$(header x-request-id)"
expect_json .response 'tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8'
expect_json .model gpt-4o-mini
expect_jq --argjson p "$P" '.usage == {"prompt_tokens":$p,"completion_tokens":8,"total_tokens":($p + 8)}'
expect_usd .cost.amount "$(cost_nano gpt-4o-mini "$P" 8)"
expect_json .cost.currency USD
expect_usd .cost.breakdown.prompt "$(cost_nano gpt-4o-mini "$P" 0)"
expect_usd .cost.breakdown.completion "$(cost_nano gpt-4o-mini 0 8)"
expect_jq '(.latency_ms | type) == "number" and .latency_ms >= 0'
expect_header x-ratelimit-limit-requests '^200$'
case_end
metered gpt-4o-mini "$P" 8

case_start "consume takes another model: gpt-4o, priced at gpt-4o's prices"
dp POST /api/v1/consume/market '{"prompt":"hello world","max_tokens":4,"model":"gpt-4o"}'
expect_status 200
expect_json .model gpt-4o
expect_json .response 'tok1 tok2 tok3 tok4'
expect_usd .cost.amount "$(cost_nano gpt-4o "$P" 4)"
case_end
metered gpt-4o "$P" 4

case_start "consume without prompt: 400 missing_field (param prompt); with an unknown model: 400 model_not_found"
dp POST /api/v1/consume/market '{"max_tokens":4}'
expect_error 400 invalid_request_error missing_field prompt
dp POST /api/v1/consume/market '{"prompt":"hi","model":"gpt-9"}'
expect_error 400 invalid_request_error model_not_found
case_end

case_start "the quota's used grows by each call's total tokens; remaining is total - used"
used=$((m_prompt + m_completion))
dp GET /api/v1/quota/market
expect_status 200
expect_json .used "$used"
expect_json .remaining "$((10000000 - used))"
expect_json .exceeded false
case_end

case_start "an OpenAI call of the same key counts in its quota and usage too"
dp POST /v1/embeddings '{"model":"text-embedding-3-small","input":"abcdefghijkl"}'
expect_status 200
dp GET /api/v1/quota/market
expect_json .used "$((used + 3))"
case_end
metered text-embedding-3-small 3 0

case_start "an upstream failure counts as a request and in the error rate"
mock_config '{"fail_status":500,"fail_count":1}'
dp POST /api/v1/consume/market '{"prompt":"hello world","max_tokens":4}'
expect_match .error.message 'injected by mock-llm|upstream|provider'
[[ $STATUS == 5[0-9][0-9] ]] || fail "expected a 5xx, got $STATUS"
mock_config '{"fail_status":0}'
case_end
metered gpt-4o-mini 0 0 500

case_start "GET /api/v1/usage/market?days=1: requests, tokens, cost, average latency and error rate of the key"
expect_metered market
expect_json .service market
expect_json .days 1
expect_jq '(.average_latency_ms | type) == "number" and .average_latency_ms >= 0'
case_end

case_start "usage without days covers 30 days; 366 is accepted; the same calls in each"
dp GET /api/v1/usage/market
expect_status 200
expect_json .days 30
expect_json .requests "$m_calls"
dp GET '/api/v1/usage/market?days=366'
expect_status 200
expect_json .days 366
expect_json .requests "$m_calls"
case_end

case_start "days out of 1..366 or not a number: 400 naming days"
for q in days=0 days=367 days=-1 days=abc days=1.5 days=; do
	dp GET "/api/v1/usage/market?$q"
	expect_status 400
	expect_json .error.type invalid_request_error
	expect_json .error.param days
	tg_flush
done
case_end

# ---- quota exceeded ----
small=$(new_key '{"name":"small","owner":"consumer:acme","service":"market","limits":{"tokens_per_month":1000}}')
small_key=$(jq -r .key <<<"$small")
case_start "a key whose quota is lowered below what it used: exceeded, remaining 0"
dp POST /api/v1/consume/market '{"prompt":"hello world","max_tokens":40}' "$small_key"
expect_status 200
api PATCH "/api/v1/keys/$(jq -r .id <<<"$small")" '{"limits":{"tokens_per_month":40}}'
expect_status 200
dp GET /api/v1/quota/market "" "$small_key"
expect_status 200
expect_json .total 40
expect_json .used "$((P + 40))"
expect_json .remaining 0
expect_json .exceeded true
case_end

case_start "... and its next call is refused with a 429 naming the monthly token quota, not forwarded"
forwarded=$(mock_stat .requests.total)
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}' "$small_key"
expect_status 429
expect_match .error.type 'quota'
expect_match .error.message '(^|[^0-9])40([^0-9]|$)'
expect_jq '.error.message | test("month|reset"; "i")'
expect test "$(mock_stat .requests.total)" = "$forwarded"
api GET /metrics "" ""
expect grep -Eq '^quota_exceeded_total\{quota="[a-z_]+"\} [1-9]' <<<"$BODY"
case_end

# ---- rate limits without spending ----
# 0.5 requests/s, burst 20: the 60 look-ups below would spend the burst if they were charged,
# and a spent bucket stays spent for 2 s.
fresh=$(new_key '{"name":"checker","owner":"consumer:acme","service":"market","limits":{"requests_per_second":0.5,"burst":20}}' | jq -r .key)

case_start "GET /api/v1/rate-limits 30 times and POST /api/v1/rate-limits/check 30 times: all 200, nothing spent"
codes=""
for ((i = 0; i < 30; i++)); do
	dp GET /api/v1/rate-limits "" "$fresh"
	codes+="$STATUS "
	dp POST /api/v1/rate-limits/check '{}' "$fresh"
	codes+="$STATUS "
done
expect test "$(tr ' ' '\n' <<<"$codes" | grep -c '^200$')" = 60
case_end

case_start "the check answers allowed true with the x-ratelimit headers of a full bucket (20 of 20)"
expect_json .allowed true
expect_header x-ratelimit-limit-requests '^20$'
expect_header x-ratelimit-remaining-requests '^20$|^19$'
case_end

case_start "GET /api/v1/rate-limits shows the key's second window: 0.5/s, burst 20"
dp GET /api/v1/rate-limits "" "$fresh"
expect_status 200
expect_jq 'type == "object"'
expect_jq '[.. | numbers] | index(20) != null and index(0.5) != null'
case_end

case_start "after all those checks a real request still finds the whole burst: remaining 19"
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}' "$fresh"
expect_status 200
expect_header x-ratelimit-remaining-requests '^19$'
case_end

case_start "with the burst spent, the check answers 200 allowed false (and still spends nothing)"
urls=()
for ((i = 0; i < 25; i++)); do urls+=(-o /dev/null "$TG_DATA_URL/v1/models"); done
curl -sS --max-time 10 -H "Authorization: Bearer $fresh" -w '%{http_code}\n' "${urls[@]}" >"$tmp/spent"
expect grep -q '^429$' "$tmp/spent"
dp POST /api/v1/rate-limits/check '{}' "$fresh"
expect_status 200
expect_json .allowed false
expect_header x-ratelimit-remaining-requests '^0$'
dp GET /api/v1/rate-limits "" "$fresh"
expect_status 200
case_end

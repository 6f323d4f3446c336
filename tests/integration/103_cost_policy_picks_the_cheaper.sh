#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves routing.policy cost_weighted and the per-model and per-service overrides (README
# "Routing"): providers "pricey" (priority 0) and "cheap" (priority 1, a tenth of the price)
# both serve gpt-4o-mini and gpt-4o. The default policy is primary, gpt-4o-mini is
# cost_weighted (routing.models), and service "prio" is primary again (routing.services, which
# wins over the model's). gpt-4o-mini goes to cheap and is charged cheap's price; gpt-4o goes to
# pricey; when cheap fails the call fails over to pricey and is charged pricey's price (the
# provider that served it); a key of service "prio" gets pricey for gpt-4o-mini too.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_providers.sh"

pv_start_mock pricey || bail "mock-llm for provider pricey starts"
pv_start_mock cheap || bail "mock-llm for provider cheap starts"
models() { # PROMPT COMPLETION (USD per 1K)
	printf '[{"name": "gpt-4o-mini", "prompt_per_1k": %s, "completion_per_1k": %s},
	  {"name": "gpt-4o", "prompt_per_1k": %s, "completion_per_1k": %s}]' "$1" "$2" "$1" "$2"
}
cat >"$tmp/config.json" <<EOF
{"routing": {"policy": "primary", "models": {"gpt-4o-mini": "cost_weighted"},
             "services": {"prio": "primary"}},
 "providers": [
  {"name": "pricey", "base_url": "${PV_URL[pricey]}/v1", "priority": 0, "models": $(models 0.01 0.02)},
  {"name": "cheap", "base_url": "${PV_URL[cheap]}/v1", "priority": 1, "models": $(models 0.001 0.002)}]}
EOF
tg_start_gateway --config "$tmp/config.json" || bail "tollgated starts with two providers"
DP_KEY=$(new_key '{"name":"cost","owner":"team:cost","service":"cost","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"
PRIO_KEY=$(new_key '{"name":"prio","owner":"team:cost","service":"prio","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates a key of service prio"
# hello world: 6 prompt tokens, 3 completion tokens (mock-llm's rule)
MINI='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
FOUR='{"model":"gpt-4o","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
CHEAP_NANO=$((6 * 1000 + 3 * 2000))    # 0.001 / 0.002 USD per 1K = 1000 / 2000 nano per token
PRICEY_NANO=$((6 * 10000 + 3 * 20000)) # ten times that

case_start "gpt-4o-mini (cost_weighted) goes to the cheaper provider, charged its price"
dp POST /v1/chat/completions "$MINI"
expect_status 200
expect_header X-Tollgate-Provider '^cheap$'
BODY=$(usage_of cost)
expect_usd .cost "$CHEAP_NANO"
expect test "$(pv_requests pricey)" = 0
case_end

case_start "gpt-4o (the default policy, primary) goes to the first by priority"
dp POST /v1/chat/completions "$FOUR"
expect_status 200
expect_header X-Tollgate-Provider '^pricey$'
BODY=$(usage_of cost)
expect_usd .cost "$((CHEAP_NANO + PRICEY_NANO))"
case_end

case_start "the cheaper one fails: the call is served by the other and charged at its price"
at cheap mock_config '{"fail_status":502,"fail_count":1}'
dp POST /v1/chat/completions "$MINI"
expect_status 200
expect_header X-Tollgate-Provider '^pricey$'
expect_header X-Tollgate-Attempts '^2$'
BODY=$(usage_of cost)
expect_usd .cost "$((CHEAP_NANO + 2 * PRICEY_NANO))"
expect_json .requests 3
case_end

case_start "cheap is healthy again (a 502 without Retry-After puts no cooldown on it)"
dp POST /v1/chat/completions "$MINI"
expect_header X-Tollgate-Provider '^cheap$'
case_end

case_start "routing.services wins over routing.models: service prio gets primary for gpt-4o-mini"
dp POST /v1/chat/completions "$MINI" "$PRIO_KEY"
expect_status 200
expect_header X-Tollgate-Provider '^pricey$'
case_end

case_start "GET /api/v1/providers shows the overrides, never a credential field"
api GET /api/v1/providers
expect_status 200
expect_json '.routing.models["gpt-4o-mini"]' cost_weighted
expect_json .routing.services.prio primary
expect_jq '[.data[] | keys[] | select(test("key|secret|credential"; "i"))] | length == 0'
expect_jq '[.data[].models] == [["gpt-4o-mini","gpt-4o"],["gpt-4o-mini","gpt-4o"]]'
case_end

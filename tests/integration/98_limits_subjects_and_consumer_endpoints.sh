#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves (issue 5, docs/data-plane.md "Quotas and budgets"): a team's limit counts the calls
# of all its keys and refuses them all once spent (the message names the team); a tenant's
# budget (set by the admin) refuses only calls naming that tenant, by metadata.tenant or the
# X-Tollgate-Tenant header; the alert action allows and annotates; the token headers on a
# call that reserves nothing; the consumer endpoints
# GET /api/v1/quotas, /api/v1/rate-limits (+ "limits"), /api/v1/rate-limits/:serviceId and
# /api/v1/quota/:serviceId show the same counters (reserved excluded from used).
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts in front of mock-llm"
k1j=$(new_key '{"name":"a","owner":"team:shared","service":"chat","tier":"enterprise","limits":{"tokens_per_month":100000,"tokens_per_day":50000}}')
k1=$(jq -r .key <<<"$k1j")
k1_id=$(jq -r .id <<<"$k1j")
k2=$(new_key '{"name":"b","owner":"team:shared","service":"chat","tier":"enterprise"}' | jq -r .key)
k3=$(new_key '{"name":"c","owner":"team:other","service":"chat","tier":"enterprise"}' | jq -r .key)
[ -n "$k1" ] && [ -n "$k2" ] && [ -n "$k3" ] || bail "the admin creates the keys"
CHAT='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}'
per_call=$((3 + $(chat_tokens hi)))

case_start "a team's requests_per_day counts both its keys and then refuses both"
api PUT /api/v1/limits/team:shared '{"requests_per_day":3}'
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k1"
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k2"
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k1"
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k2"
expect_error 429 insufficient_quota requests_per_day
expect_match .error.message '^Request quota exceeded for team shared: requests_per_day 3 requests \(used 3 requests'
dp POST /v1/chat/completions "$CHAT" "$k1"
expect_error 429 insufficient_quota requests_per_day
dp POST /v1/chat/completions "$CHAT" "$k3"
expect_status 200
api DELETE /api/v1/limits/team:shared
expect_status 204
dp POST /v1/chat/completions "$CHAT" "$k2"
expect_status 200
case_end

case_start "a tenant's cost budget refuses only the calls that name the tenant"
api PUT /api/v1/limits/tenant:acme '{"cost_per_month":0.000001}'
expect_status 200
dp POST /v1/chat/completions '{"model":"gpt-4o","max_tokens":3,"metadata":{"tenant":"acme"},"messages":[{"role":"user","content":"hi"}]}' "$k3"
expect_error 429 insufficient_quota cost_per_month
expect_match .error.message '^Cost budget exceeded for tenant acme: cost_per_month 0\.000001 USD'
expect_header X-Budget-Limit '^0\.000001$'
dp POST /v1/chat/completions "$CHAT" "$k3" -- -H 'X-Tollgate-Tenant: acme'
expect_error 429 insufficient_quota cost_per_month
dp POST /v1/chat/completions "$CHAT" "$k3" -- -H 'X-Tollgate-Tenant: globex'
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k3"
expect_status 200
case_end

case_start "the alert action allows the call over the limit and says so"
api PUT /api/v1/limits/tenant:watch '{"tokens_per_day":1,"action":"alert"}'
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$k3" -- -H 'X-Tollgate-Tenant: watch'
expect_status 200
expect_header X-Tollgate-Limit-Warning '^tokens_per_day exceeded \(alert\)$'
case_end

case_start "GET /api/v1/quotas lists the key's and its owner's quotas from the same counters"
DP_KEY=$k1
dp GET /api/v1/quotas
expect_status 200
expect_jq --arg s "key:$k1_id" --argjson u "$((2 * per_call))" \
	'[.data[] | select(.subject == $s and .limit == "tokens_per_month")] | length == 1 and .[0].used == $u and .[0].value == 100000 and .[0].reserved == 0 and .[0].window == "month" and .[0].kind == "tokens"'
expect_jq --arg s "key:$k1_id" '[.data[] | select(.subject == $s and .limit == "tokens_per_day")] | length == 1'
expect_jq '[.data[] | .reset_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")] | all'
case_end

case_start "a call that reserves nothing (GET /v1/models) carries the token headers too"
dp GET /v1/models
expect_status 200
expect_header x-ratelimit-limit-tokens '^50000$'
expect_header x-ratelimit-remaining-tokens "^$((50000 - 2 * per_call))\$"
case_end

case_start "GET /api/v1/quota/:serviceId agrees with /api/v1/quotas"
dp GET /api/v1/quota/chat
expect_status 200
expect_json .used "$((2 * per_call))"
expect_json .total 100000
expect_json .remaining "$((100000 - 2 * per_call))"
expect_json .exceeded false
case_end

case_start "GET /api/v1/rate-limits and /api/v1/rate-limits/:serviceId add the limits"
dp GET /api/v1/rate-limits
expect_status 200
expect_jq '.windows | length >= 1'
expect_jq --arg s "key:$k1_id" '[.limits[] | select(.subject == $s)] | length == 2'
rl=$(jq -c .limits <<<"$BODY")
dp GET /api/v1/rate-limits/chat
expect_status 200
[ "$(jq -c .limits <<<"$BODY")" = "$rl" ] || fail "the same limits for the key's service"
dp GET /api/v1/rate-limits/other
expect_error 403 permission_error service_not_allowed
dp GET /api/v1/rate-limits/check
expect_status 405
expect_header Allow '^POST$'
case_end

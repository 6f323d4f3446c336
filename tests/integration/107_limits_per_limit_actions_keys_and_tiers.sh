#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves (issue 5 "Enforcement actions (configurable globally and per limit)", docs/admin-api.md
# "Enforcement actions"): keys and tiers carry per-limit actions. A tier that blocks refuses
# a call over tokens_per_minute; the same tier's key with actions.tokens_per_minute=alert
# (set with tollctl limits set key:ID) is allowed over it with X-Tollgate-Limit-Warning, while
# another limit of that key (requests_per_day, the tier's block) still refuses; the order is
# key per-limit, key action, tier per-limit, tier action, limits.action. A bad action (unknown
# action, unknown limit, a limit that takes none, downgrade without limits.downgrade) is a 400
# naming actions.<limit> that changes nothing; a restart keeps the key's and the tier's actions.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts (no limits.downgrade)"

# tokens_per_minute 20 against calls reserving far more (max_tokens 50); 3 requests a day
TIER='{"requests_per_second":100,"burst":100,"requests_per_minute":0,"requests_per_hour":0,
 "requests_per_day":3,"tokens_per_minute":20,"tokens_per_month":0,"max_concurrent":0,
 "action":"block"}'
CHAT='{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}'

case_start "a tier that blocks refuses a call over tokens_per_minute"
api PUT /api/v1/tiers/strict "$TIER"
expect_status 200
expect_json .action block
plain=$(new_key '{"name":"plain","owner":"team:acts","service":"chat","tier":"strict"}' | jq -r .key)
[ -n "$plain" ] || bail "the admin creates a key on the tier"
dp POST /v1/chat/completions "$CHAT" "$plain"
expect_status 429
expect_json .error.code tokens_per_minute
case_end

keyj=$(new_key '{"name":"alerting","owner":"team:acts","service":"chat","tier":"strict"}')
DP_KEY=$(jq -r .key <<<"$keyj")
key_id=$(jq -r .id <<<"$keyj")
[ -n "$key_id" ] || bail "the admin creates a second key on the tier"

case_start "tollctl limits set key:ID actions.tokens_per_minute=alert sets the key's own action"
ctl limits set "key:$key_id" actions.tokens_per_minute=alert
expect_exit 0
grep -qE '^tokens_per_minute +minute .* alert +hard$' <<<"$BODY" || fail "quota shows alert: $BODY"
grep -qE '^requests_per_day +day .* block +hard$' <<<"$BODY" || fail "quota shows block: $BODY"
api GET "/api/v1/keys/$key_id"
expect_status 200
expect_json .actions.tokens_per_minute alert
expect_json .effective_actions.tokens_per_minute alert
expect_json .effective_limits.action block
case_end

case_start "over tokens_per_minute: allowed with a warning; requests_per_day still blocks"
for i in 1 2 3; do
	dp POST /v1/chat/completions "$CHAT"
	expect_status 200
	expect_header X-Tollgate-Limit-Warning '^tokens_per_minute exceeded \(alert\)$'
done
dp POST /v1/chat/completions "$CHAT"
expect_status 429
expect_json .error.code requests_per_day
expect_match .error.message 'requests_per_day 3'
case_end

case_start "bad actions are 400s naming actions.<limit>, and change nothing"
api GET "/api/v1/keys/$key_id"
before=$(jq -c '{limits, actions, effective_actions}' <<<"$BODY")
for b in '{"tokens_per_minute":"explode"}|actions.tokens_per_minute|invalid_value' \
	'{"tokens_per_fortnight":"alert"}|actions.tokens_per_fortnight|unknown_field' \
	'{"burst":"alert"}|actions.burst|invalid_field' \
	'{"tokens_per_minute":5}|actions.tokens_per_minute|invalid_type' \
	'{"cost_per_day":"downgrade"}|actions.cost_per_day|downgrade_not_configured'; do
	rest=${b#*|}
	api PATCH "/api/v1/keys/$key_id" "{\"limits\":{\"tokens_per_day\":7},\"actions\":${b%%|*}}"
	expect_error 400 invalid_request_error "${rest#*|}" "${rest%|*}"
	expect_match .error.message "^${rest%|*}: "
done
api PATCH "/api/v1/keys/$key_id" '{"limits":{"action":"downgrade"}}'
expect_error 400 invalid_request_error downgrade_not_configured limits.action
api GET "/api/v1/keys/$key_id"
[ "$(jq -c '{limits, actions, effective_actions}' <<<"$BODY")" = "$before" ] ||
	fail "the key changed: $(jq -c '{limits, actions, effective_actions}' <<<"$BODY")"
api PUT /api/v1/tiers/strict "$(jq -c '. + {actions: {tokens_per_minute: "nuke"}}' <<<"$TIER")"
expect_error 400 invalid_request_error invalid_value actions.tokens_per_minute
api PUT /api/v1/limits/team:acts '{"actions":{"tokens_per_minute":"downgrade"}}'
expect_error 400 invalid_request_error downgrade_not_configured actions.tokens_per_minute
api GET /api/v1/tiers/strict
expect_jq 'has("actions") | not'
ctl limits set "key:$key_id" actions.cost_per_day=downgrade
expect_exit 5
grep -q 'actions.cost_per_day' <<<"$CTL_ERR" || fail "tollctl names the field: $CTL_ERR"
case_end

case_start "the key's action outranks its tier's per-limit action; its own per-limit outranks both"
api PUT /api/v1/tiers/strict "$(jq -c '. + {action: "alert", actions: {requests_per_day: "alert"}}' <<<"$TIER")"
expect_status 200
expect_json .actions.requests_per_day alert
plain_id=$(cut -d_ -f2 <<<"$plain")
api GET "/api/v1/limits/key:$plain_id"
expect_jq '.usage[] | select(.limit == "requests_per_day") | .action == "alert"'
expect_jq '.usage[] | select(.limit == "tokens_per_minute") | .action == "alert"'
api PATCH "/api/v1/keys/$plain_id" '{"limits":{"action":"block"},"actions":{"tokens_per_minute":"queue"}}'
expect_status 200
api GET "/api/v1/limits/key:$plain_id"
expect_jq '.usage[] | select(.limit == "requests_per_day") | .action == "block"'
expect_jq '.usage[] | select(.limit == "tokens_per_minute") | .action == "queue"'
api PATCH "/api/v1/keys/$plain_id" '{"actions":{"tokens_per_minute":null}}'
expect_status 200
expect_jq '.actions == {}'
case_end

case_start "a restart keeps the key's and the tier's actions"
tg_stop_daemon
tg_start_gateway || bail "tollgated restarts"
api GET "/api/v1/keys/$key_id"
expect_json .actions.tokens_per_minute alert
expect_json .effective_actions.tokens_per_minute alert
api GET /api/v1/tiers/strict
expect_json .actions.requests_per_day alert
# requests_per_day is the tier's alert now, tokens_per_minute the key's alert: allowed
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header X-Tollgate-Limit-Warning 'exceeded \(alert\)$'
case_end

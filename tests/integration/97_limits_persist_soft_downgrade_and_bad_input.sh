#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves (issue 5, docs/admin-api.md "Limits", docs/data-plane.md "Quotas and budgets"):
# the limits engine's counters survive a restart and a kill -9 (the same `used` before and
# after, neither reset nor counted twice, and the next call adds exactly its own usage); a
# team's limits set through /api/v1/limits apply to its keys' calls and persist; soft mode
# allows and annotates; the downgrade action really calls the cheaper model (mock-llm's
# answer names it) and says so in a header; limits.enabled=false (TOLLGATE_LIMITS_ENABLED)
# refuses nothing; bad limits (negative, nonsense, unknown field, window, action, subject)
# are 400s naming the field that change nothing, and a downgrade to an unknown model is a
# --check error naming it.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway --set 'limits.downgrade=gpt-4o=gpt-4o-mini' ||
	bail "tollgated starts with a downgrade gpt-4o -> gpt-4o-mini"
keyj=$(new_key '{"name":"p","owner":"team:persist","service":"chat","tier":"enterprise","limits":{"tokens_per_day":100000,"cost_per_month":5}}')
DP_KEY=$(jq -r .key <<<"$keyj")
key_id=$(jq -r .id <<<"$keyj")
[ -n "$DP_KEY" ] || bail "the admin creates a key"
CHAT='{"model":"gpt-4o-mini","max_tokens":7,"messages":[{"role":"user","content":"hello"}]}'
per_call=$((7 + $(chat_tokens hello)))

# used of LIMIT in GET /api/v1/limits/SUBJECT
used_of() { # SUBJECT LIMIT
	api GET "/api/v1/limits/$1"
	jq -r --arg l "$2" '.usage[] | select(.limit == $l) | .used' <<<"$BODY"
}

case_start "a team's limits are set, read back and listed"
api PUT /api/v1/limits/team:persist '{"limits":{"requests_per_month":1000,"cost_per_day":0.5},"actions":{"cost_per_day":"alert"}}'
expect_status 200
expect_json .subject team:persist
expect_json .limits.requests_per_month 1000
expect_json .limits.cost_per_day 0.5
expect_json .actions.cost_per_day alert
api GET /api/v1/limits
expect_jq '.data | length == 1 and .[0].subject == "team:persist"'
case_end

for i in 1 2 3; do dp POST /v1/chat/completions "$CHAT"; done
case_start "calls count in the key's and the team's windows"
expect_status 200
before_key=$(used_of "key:$key_id" tokens_per_day)
before_team=$(used_of team:persist requests_per_month)
[ "$before_key" = $((3 * per_call)) ] || fail "key used $before_key tokens, expected $((3 * per_call))"
[ "$before_team" = 3 ] || fail "team used $before_team requests, expected 3"
case_end

case_start "a restart keeps the counters and the team's limits"
tg_stop_daemon
tg_start_gateway --set 'limits.downgrade=gpt-4o=gpt-4o-mini' || bail "tollgated restarts"
[ "$(used_of "key:$key_id" tokens_per_day)" = "$before_key" ] || fail "key used after restart: $(used_of "key:$key_id" tokens_per_day)"
[ "$(used_of team:persist requests_per_month)" = "$before_team" ] || fail "team used after restart"
api GET /api/v1/limits/team:persist
expect_json .limits.cost_per_day 0.5
case_end

case_start "kill -9 keeps the counters; the next call adds exactly its own"
tg_kill_daemon
tg_start_gateway --set 'limits.downgrade=gpt-4o=gpt-4o-mini' || bail "tollgated restarts after kill -9"
[ "$(used_of "key:$key_id" tokens_per_day)" = "$before_key" ] || fail "key used after kill -9: $(used_of "key:$key_id" tokens_per_day)"
dp POST /v1/chat/completions "$CHAT"
expect_status 200
[ "$(used_of "key:$key_id" tokens_per_day)" = $((before_key + per_call)) ] || fail "one more call"
[ "$(used_of team:persist requests_per_month)" = $((before_team + 1)) ] || fail "team one more"
case_end

case_start "soft mode: over the limit, allowed and annotated"
soft=$(new_key '{"name":"s","owner":"team:soft","service":"chat","tier":"enterprise","limits":{"tokens_per_day":5,"mode":"soft"}}' | jq -r .key)
dp POST /v1/chat/completions "$CHAT" "$soft"
expect_status 200
expect_header X-Tollgate-Limit-Warning '^tokens_per_day exceeded \(soft mode\)$'
dp POST /v1/chat/completions "$CHAT" "$soft"
expect_status 200
expect_header X-Tollgate-Limit-Warning '^tokens_per_day exceeded \(soft mode\)$'
case_end

case_start "downgrade: over the budget with gpt-4o, the call goes to gpt-4o-mini"
# "hi" with max_tokens 10 reserves 9 prompt tokens: gpt-4o 122500 nano-USD, over 100000;
# gpt-4o-mini 7350, within
down=$(new_key '{"name":"d","owner":"team:down","service":"chat","tier":"enterprise","limits":{"cost_per_day":0.0001,"action":"downgrade"}}' | jq -r .key)
dp POST /v1/chat/completions '{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}' "$down"
expect_status 200
expect_json .model gpt-4o-mini
expect_header X-Tollgate-Downgraded-From '^gpt-4o$'
BODY=$(usage_of chat "$down") || fail "usage"
expect_usd .cost "$(cost_nano gpt-4o-mini "$(chat_tokens hi)" 10)"
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}' "$down"
expect_status 200
has=$(grep -ci '^X-Tollgate-Downgraded-From:' "$HEADERS")
[ "$has" = 0 ] || fail "no downgrade header when the model fits"
case_end

case_start "bad limits are 400s naming the field, and change nothing"
api GET /api/v1/limits/team:persist
before=$(jq -c '{limits, actions}' <<<"$BODY")
for b in '{"cost_per_day":-1}|limits.cost_per_day' '{"cost_per_day":"lots"}|limits.cost_per_day' \
	'{"tokens_per_day":1.5}|limits.tokens_per_day' '{"tokens_per_fortnight":1}|limits.tokens_per_fortnight' \
	'{"cost_window":"weekly"}|limits.cost_window' '{"mode":"medium"}|limits.mode' \
	'{"action":"explode"}|limits.action' '{"alert_threshold":1.5}|limits.alert_threshold' \
	'{"token_quota_days":61}|limits.token_quota_days' \
	'{"limits":{"cost_per_day":1},"actions":{"cost_per_day":"nuke"}}|actions.cost_per_day' \
	'{"limits":{"cost_per_day":1},"actions":{"nope":"block"}}|actions.nope'; do
	api PUT /api/v1/limits/team:persist "${b%|*}"
	expect_status 400
	expect_json .error.param "${b#*|}"
done
api PUT /api/v1/limits/robot:x '{"cost_per_day":1}'
expect_error 400 invalid_request_error invalid_subject subject
api POST /api/v1/keys '{"name":"bad","owner":"team:persist","service":"chat","limits":{"action":"explode"}}'
expect_status 400
expect_json .error.param limits.action
api GET /api/v1/limits/team:persist
[ "$(jq -c '{limits, actions}' <<<"$BODY")" = "$before" ] || fail "the team's limits changed"
case_end

case_start "a downgrade to an unknown model is a --check error naming it"
echo '{"limits":{"downgrade":{"gpt-4o":"gpt-9"}}}' >"$tmp/bad.json"
"$TOLLGATED" --check "$tmp/bad.json" >"$tmp/check.out" 2>&1
rc=$?
[ "$rc" -ne 0 ] || fail "--check fails"
grep -q "limits.downgrade: model 'gpt-9' is not a priced model" "$tmp/check.out" || fail "names the model: $(cat "$tmp/check.out")"
case_end

case_start "TOLLGATE_LIMITS_ENABLED=false: nothing refused, request rates included"
tg_stop_daemon
export TOLLGATE_LIMITS_ENABLED=false
tg_start_gateway || bail "tollgated starts with limits off"
unset TOLLGATE_LIMITS_ENABLED
tight=$(new_key '{"name":"t","owner":"team:off","service":"chat","tier":"enterprise","limits":{"tokens_per_day":1,"requests_per_second":0.001,"burst":1}}' | jq -r .key)
codes=""
for i in 1 2 3; do
	dp POST /v1/chat/completions "$CHAT" "$tight"
	codes="$codes$STATUS "
done
[ "$codes" = "200 200 200 " ] || fail "every call passed: $codes"
case_end

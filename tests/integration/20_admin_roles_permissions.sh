#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the roles of admin tokens (docs/admin-api.md, "Authentication and roles"): a viewer
# reads everything and changes nothing (403 forbidden, and indeed nothing changed); a consumer
# creates keys only for owner consumer:<its id> on its token's tier, sees and revokes only its
# own keys (another owner's key is a 404, as if it did not exist), and may do nothing else;
# an admin token made through the API may do everything.
. "$(dirname "$0")/lib.sh"

forbidden() { # expectation inside a case: 403 permission_error forbidden
	expect_error 403 permission_error forbidden
}

tg_start_daemon || bail "tollgated starts and becomes ready"

viewer=$(new_token '{"name":"dashboard","role":"viewer"}' | jq -r .token)
acme_resp=$(new_token '{"name":"acme-portal","role":"consumer","consumer":"acme","tier":"premium"}')
acme=$(jq -r .token <<<"$acme_resp")
other=$(new_token '{"name":"globex-portal","role":"consumer","consumer":"globex"}' | jq -r .token)
team_key=$(new_key '{"name":"team-bot","owner":"team:ml"}' | jq -r .id)
globex_key=$(new_key '{"name":"globex-bot","owner":"consumer:globex"}' | jq -r .id)
[ -n "$viewer" ] && [ -n "$acme" ] && [ -n "$other" ] && [ -n "$team_key" ] && [ -n "$globex_key" ] ||
	bail "the admin creates the tokens and keys this script needs"

snapshot() { # everything an admin sees, to prove a refused request changed nothing
	local k t a
	api GET '/api/v1/keys?limit=1000'
	k=$BODY
	api GET /api/v1/tiers
	t=$BODY
	api GET /api/v1/admin/tokens
	a=$(jq -c '.data | map(del(.last_used_at))' <<<"$BODY")
	printf '%s\n%s\n%s\n' "$k" "$t" "$a"
}

# ---- viewer ----
case_start "a viewer may GET keys, one key, tiers, one tier and admin tokens"
for path in /api/v1/keys "/api/v1/keys/$team_key" /api/v1/tiers /api/v1/tiers/basic /api/v1/admin/tokens; do
	api GET "$path" "" "$viewer"
	expect_status 200
done
case_end

before=$(snapshot)
case_start "a viewer gets 403 forbidden for every change: POST, PATCH, DELETE, rotate, PUT"
api POST /api/v1/keys '{"name":"v","owner":"team:ml"}' "$viewer"
forbidden
api PATCH "/api/v1/keys/$team_key" '{"name":"renamed"}' "$viewer"
forbidden
api DELETE "/api/v1/keys/$team_key" "" "$viewer"
forbidden
api POST "/api/v1/keys/$team_key/rotate" "" "$viewer"
forbidden
api PUT /api/v1/tiers/basic '{"requests_per_second":1,"burst":1,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":0,"max_concurrent":0}' "$viewer"
forbidden
api PUT /api/v1/tiers '{"tiers":[]}' "$viewer"
forbidden
api POST /api/v1/admin/tokens '{"name":"escalate","role":"admin"}' "$viewer"
forbidden
api DELETE /api/v1/admin/tokens/bootstrap "" "$viewer"
forbidden
case_end

case_start "the viewer's refused requests changed nothing"
expect_same "keys, tiers and tokens" "$before" "$(snapshot)"
case_end

# ---- consumer ----
case_start "a consumer creates a key: owner forced to consumer:<id>, tier the token's"
api POST /api/v1/keys '{"name":"acme-bot"}' "$acme"
expect_status 201
expect_match .key "$TG_KEY_RE"
expect_json .owner consumer:acme
expect_json .tier premium
expect_jq '.limits == {}'
case_end
acme_key=$(json .id)

case_start "a consumer may name its own owner explicitly"
api POST /api/v1/keys '{"name":"acme-bot-2","owner":"consumer:acme","service":"chat"}' "$acme"
expect_status 201
expect_json .owner consumer:acme
case_end
acme_key2=$(json .id)

before=$(snapshot)
case_start "a consumer asking for another owner gets 403 forbidden"
api POST /api/v1/keys '{"name":"x","owner":"consumer:globex"}' "$acme"
forbidden
api POST /api/v1/keys '{"name":"x","owner":"team:ml"}' "$acme"
forbidden
case_end

case_start "a consumer giving tier or limits gets 403 forbidden"
api POST /api/v1/keys '{"name":"x","tier":"enterprise"}' "$acme"
forbidden
api POST /api/v1/keys '{"name":"x","limits":{"requests_per_second":1000}}' "$acme"
forbidden
api POST /api/v1/keys '{"name":"x","tier":"premium"}' "$acme" # its own tier, named
forbidden
case_end

case_start "the consumer's refused creations made no key"
expect_same "keys, tiers and tokens" "$before" "$(snapshot)"
case_end

case_start "a consumer's list shows its own keys only, whatever the filter"
api GET /api/v1/keys "" "$acme"
expect_status 200
expect_jq --arg a "$acme_key" --arg b "$acme_key2" '[.data[].id] == ([$a, $b] | sort)'
for filter in owner=team:ml owner=consumer:globex; do
	api GET "/api/v1/keys?$filter" "" "$acme"
	if [ "$STATUS" = 200 ]; then
		expect_jq 'all(.data[]; .owner == "consumer:acme")'
	else
		forbidden
	fi
done
case_end

case_start "a consumer GETs its own key"
api GET "/api/v1/keys/$acme_key" "" "$acme"
expect_status 200
expect_json .id "$acme_key"
expect_jq 'has("key") | not'
case_end

case_start "a consumer asking for another owner's key gets 404 key_not_found, as for no key at all"
api GET "/api/v1/keys/$globex_key" "" "$acme"
expect_error 404 not_found_error key_not_found
foreign=$(json '.error | del(.message)')
api GET "/api/v1/keys/$team_key" "" "$acme"
expect_error 404 not_found_error key_not_found
api GET /api/v1/keys/zzzzzzzzzzzz "" "$acme"
expect_error 404 not_found_error key_not_found
expect test "$(json '.error | del(.message)')" = "$foreign"
case_end

case_start "a consumer revoking another owner's key gets 404, and the key stays active"
api DELETE "/api/v1/keys/$globex_key" "" "$acme"
expect_error 404 not_found_error key_not_found
api GET "/api/v1/keys/$globex_key"
expect_json .status active
case_end

case_start "a consumer revokes its own key"
api DELETE "/api/v1/keys/$acme_key2" "" "$acme"
expect_status 200
expect_json .status revoked
case_end

before=$(snapshot)
case_start "a consumer may not PATCH or rotate, even its own keys (403)"
api PATCH "/api/v1/keys/$acme_key" '{"name":"renamed"}' "$acme"
forbidden
api POST "/api/v1/keys/$acme_key/rotate" "" "$acme"
forbidden
case_end

case_start "a consumer may not see or change tiers (403)"
api GET /api/v1/tiers "" "$acme"
forbidden
api GET /api/v1/tiers/basic "" "$acme"
forbidden
api PUT /api/v1/tiers/basic '{"requests_per_second":1,"burst":1,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":0,"max_concurrent":0}' "$acme"
forbidden
api PUT /api/v1/tiers '{"tiers":[]}' "$acme"
forbidden
case_end

case_start "a consumer may not see or manage admin tokens (403)"
api GET /api/v1/admin/tokens "" "$acme"
forbidden
api POST /api/v1/admin/tokens '{"name":"escalate","role":"admin"}' "$acme"
forbidden
api DELETE /api/v1/admin/tokens/bootstrap "" "$acme"
forbidden
case_end

case_start "the consumer's refused requests changed nothing"
expect_same "keys, tiers and tokens" "$before" "$(snapshot)"
case_end

case_start "the other consumer sees only its own key"
api GET /api/v1/keys "" "$other"
expect_status 200
expect_jq --arg g "$globex_key" '[.data[].id] == [$g]'
case_end

# ---- admin ----
case_start "an admin token made through the API may do everything"
api POST /api/v1/admin/tokens '{"name":"ops","role":"admin"}'
expect_status 201
admin2=$(json .token)
api POST /api/v1/keys '{"name":"ops-bot","owner":"team:ops"}' "$admin2"
expect_status 201
k=$(json .id)
api PATCH "/api/v1/keys/$k" '{"limits":{"burst":3}}' "$admin2"
expect_status 200
api POST "/api/v1/keys/$k/rotate" '{"grace_period_sec":60}' "$admin2"
expect_status 200
api GET "/api/v1/keys/$acme_key" "" "$admin2"
expect_status 200
api DELETE "/api/v1/keys/$k" "" "$admin2"
expect_status 200
api PUT /api/v1/tiers/ops '{"requests_per_second":1,"burst":1,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":0,"max_concurrent":0}' "$admin2"
expect_status 200
api GET /api/v1/admin/tokens "" "$admin2"
expect_status 200
api POST /api/v1/admin/tokens '{"name":"v2","role":"viewer"}' "$admin2"
expect_status 201
api DELETE "/api/v1/admin/tokens/$(json .id)" "" "$admin2"
expect_status 200
case_end

case_start "a revoked consumer token gets 401, and so does a revoked admin token"
acme_id=$(jq -r .id <<<"$acme_resp")
api DELETE "/api/v1/admin/tokens/$acme_id"
expect_status 200
api GET /api/v1/keys "" "$acme"
expect_error 401 authentication_error invalid_token
api GET /api/v1/admin/tokens
admin2_id=$(jq -r '.data[] | select(.name == "ops") | .id' <<<"$BODY")
api DELETE "/api/v1/admin/tokens/$admin2_id"
expect_status 200
api GET /api/v1/keys "" "$admin2"
expect_error 401 authentication_error invalid_token
case_end

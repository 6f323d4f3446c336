#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the tier and admin-token endpoints of the admin API (docs/admin-api.md): the three
# default tiers with their documented limits, GET of one tier, PUT /tiers/:name creating and
# replacing a tier (and keys following their tier's new limits), PUT /tiers replacing the
# whole set, 409 tier_in_use (changing nothing) when a removed tier still has keys, and admin
# tokens: creation with the token returned once, roles, consumer defaults, list, revocation
# (a revoked token stops working; revoking again is 409 token_revoked).
. "$(dirname "$0")/lib.sh"

tier() { # NAME RPS BURST TOKENS_PER_MONTH: a complete tier, as sent in a request
	jq -nc --arg n "$1" --argjson r "$2" --argjson b "$3" --argjson t "$4" \
		'{name:$n,requests_per_second:$r,burst:$b,requests_per_minute:0,
		  requests_per_hour:0,requests_per_day:0,tokens_per_minute:0,tokens_per_month:$t,
		  max_concurrent:0}'
}
basic=$(tier basic 10 20 100000)
premium=$(tier premium 100 200 10000000)
enterprise=$(tier enterprise 1000 2000 1000000000)
gold_body='{"requests_per_second":50,"burst":60,"requests_per_minute":1000,"requests_per_hour":0,
  "requests_per_day":0,"tokens_per_minute":5000,"tokens_per_month":2000000,"max_concurrent":4}'

tg_start_daemon || bail "tollgated starts and becomes ready"

# ---- tiers ----
case_start "GET /api/v1/tiers lists the default tiers basic, enterprise, premium with their limits"
api GET /api/v1/tiers
expect_status 200
expect_json .object list
expect_jq --argjson a "$basic" --argjson b "$enterprise" --argjson c "$premium" '.data == ([$a, $b, $c] | map(. + {object: "tier"}))'
case_end

case_start "GET /api/v1/tiers/:name answers the tier"
api GET /api/v1/tiers/premium
expect_status 200
expect_jq --argjson p "$premium" '. == ($p + {object: "tier"})'
case_end

case_start "GET /api/v1/tiers/:name of an unknown tier answers 404 tier_not_found"
api GET /api/v1/tiers/nosuchtier
expect_error 404 not_found_error tier_not_found
case_end

case_start "PUT /api/v1/tiers/:name creates a tier (body without name) and GET shows it"
api PUT /api/v1/tiers/gold "$gold_body"
expect_status 200
expect_jq --argjson g "$gold_body" '. == ($g + {object:"tier",name:"gold"})'
api GET /api/v1/tiers/gold
expect_status 200
expect_jq --argjson g "$gold_body" '. == ($g + {object:"tier",name:"gold"})'
api GET /api/v1/tiers
expect_jq '[.data[].name] == ["basic","enterprise","gold","premium"]'
case_end

gold_key=$(new_key '{"name":"gold-bot","owner":"team:gold","tier":"gold","limits":{"burst":70}}' | jq -r .id)

case_start "a key on a tier gets the tier's limits merged with its overrides"
api GET "/api/v1/keys/$gold_key"
expect_status 200
expect_jq --argjson g "$gold_body" '.effective_limits == ($g + {burst:70})'
case_end

case_start "PUT /api/v1/tiers/:name replaces a tier (same name in the body), and its keys follow"
api PUT /api/v1/tiers/gold "$(jq -c '. + {name:"gold",requests_per_second:5.5}' <<<"$gold_body")"
expect_status 200
expect_json .requests_per_second 5.5
api GET /api/v1/tiers/gold
expect_json .requests_per_second 5.5
api GET "/api/v1/keys/$gold_key"
expect_jq '.effective_limits | .requests_per_second == 5.5 and .burst == 70'
case_end

case_start "PUT /api/v1/tiers replaces the whole set: 200 with the new list"
silver=$(tier silver 3 4 0)
big_enterprise=$(tier enterprise 2000 4000 1000000000)
api GET /api/v1/tiers/gold
gold=$(jq -c 'del(.object)' <<<"$BODY")
new_set=$(jq -nc --argjson a "$basic" --argjson b "$big_enterprise" --argjson g "$gold" \
	--argjson p "$premium" --argjson s "$silver" '{tiers:[$a,$b,$g,$p,$s]}')
api PUT /api/v1/tiers "$new_set"
expect_status 200
expect_json .object list
expect_jq --argjson s "$new_set" '.data == ($s.tiers | map(. + {object: "tier"}))'
api GET /api/v1/tiers
expect_jq --argjson s "$new_set" '.data == ($s.tiers | map(. + {object: "tier"}))'
case_end

case_start "PUT /api/v1/tiers drops tiers left out of the set"
without_silver=$(jq -c '{tiers: [.tiers[] | select(.name != "silver")]}' <<<"$new_set")
api PUT /api/v1/tiers "$without_silver"
expect_status 200
api GET /api/v1/tiers/silver
expect_error 404 not_found_error tier_not_found
case_end

case_start "PUT /api/v1/tiers without a tier that keys use answers 409 tier_in_use, naming it, and changes nothing"
api GET /api/v1/tiers
before=$BODY
api PUT /api/v1/tiers "$(jq -c '{tiers: [.tiers[] | select(.name != "gold")]}' <<<"$without_silver")"
expect_error 409 conflict_error tier_in_use
expect_match .error.message 'gold'
api GET /api/v1/tiers
expect_same tiers "$before" "$BODY"
case_end

# ---- admin tokens ----
case_start "POST /api/v1/admin/tokens answers 201 with the token object and the full token once"
api POST /api/v1/admin/tokens '{"name":"ci","role":"viewer"}'
expect_status 201
expect_json .object admin_token
expect_match .id '^[a-z0-9]{12}$'
expect_match .token "$TG_TOKEN_RE"
expect_jq '. as $t | $t.token | startswith("tgadm_" + $t.id + "_")'
expect_json .name ci
expect_json .role viewer
expect_json .status active
expect_match .created_at "$TG_TIME_RE"
expect_jq '.revoked_at == null and .last_used_at == null'
expect_jq 'has("consumer") or has("tier") | not'
case_end
viewer_id=$(json .id)
viewer=$(json .token)

case_start "a consumer token has its consumer and tier basic by default"
api POST /api/v1/admin/tokens '{"name":"acme-portal","role":"consumer","consumer":"acme"}'
expect_status 201
expect_json .role consumer
expect_json .consumer acme
expect_json .tier basic
expect_match .token "$TG_TOKEN_RE"
case_end
consumer_id=$(json .id)

case_start "a consumer token takes a tier"
api POST /api/v1/admin/tokens '{"name":"acme-gold","role":"consumer","consumer":"acme","tier":"gold"}'
expect_status 201
expect_json .tier gold
case_end

case_start "an admin token can be created and works as admin"
api POST /api/v1/admin/tokens '{"name":"second-admin","role":"admin"}'
expect_status 201
expect_json .role admin
admin2=$(json .token)
api POST /api/v1/keys '{"name":"by-admin2","owner":"team:ops"}' "$admin2"
expect_status 201
case_end

case_start "the tokens have different ids and secrets"
api GET /api/v1/admin/tokens
expect_jq '[.data[].id] | length == (unique | length)'
expect test "$viewer" != "$admin2"
case_end

case_start "GET /api/v1/admin/tokens lists every token, the bootstrap one included, never a secret"
api GET /api/v1/admin/tokens
expect_status 200
expect_json .object list
expect_jq '[.data[].object] | all(. == "admin_token")'
expect_jq '[.data[] | select(.id == "bootstrap")] | length == 1 and .[0].role == "admin"'
expect_jq --arg v "$viewer_id" --arg c "$consumer_id" '[.data[].id] | index($v) != null and index($c) != null'
expect_jq '(.data | length) == 5'
expect_jq '[.data[] | has("token")] | any | not'
expect_jq '[.data[] | select(.role == "consumer") | has("consumer") and has("tier")] | all'
expect_jq '[.data[] | select(.role != "consumer") | has("consumer") or has("tier")] | any | not'
case_end

case_start "a viewer token works before it is revoked"
api GET /api/v1/keys "" "$viewer"
expect_status 200
case_end

case_start "DELETE /api/v1/admin/tokens/:id revokes: 200 status revoked, and the list shows it"
api DELETE "/api/v1/admin/tokens/$viewer_id"
expect_status 200
expect_json .object admin_token
expect_json .status revoked
expect_match .revoked_at "$TG_TIME_RE"
expect_jq 'has("token") | not'
api GET /api/v1/admin/tokens
expect_jq --arg v "$viewer_id" '.data[] | select(.id == $v) | .status == "revoked"'
case_end

case_start "a revoked token gets 401 invalid_token at once"
api GET /api/v1/keys "" "$viewer"
expect_error 401 authentication_error invalid_token
case_end

case_start "DELETE of a revoked token answers 409 token_revoked"
api DELETE "/api/v1/admin/tokens/$viewer_id"
expect_error 409 conflict_error token_revoked
case_end

case_start "DELETE of an unknown token answers 404 token_not_found"
api DELETE /api/v1/admin/tokens/zzzzzzzzzzzz
expect_error 404 not_found_error token_not_found
case_end

case_start "PUT /api/v1/tiers without a tier that only a consumer token uses answers 409 tier_in_use"
api POST /api/v1/admin/tokens '{"name":"premium-consumer","role":"consumer","consumer":"p","tier":"premium"}'
expect_status 201
api GET /api/v1/tiers
before=$BODY
api PUT /api/v1/tiers "$(jq -c '{tiers: [.data[] | del(.object) | select(.name != "premium")]}' <<<"$before")"
expect_error 409 conflict_error tier_in_use
api GET /api/v1/tiers
expect_same tiers "$before" "$BODY"
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves how the admin API treats credentials (docs/admin-api.md, "Authentication" and
# "Errors"): no token is 401 missing_token; a malformed token, an unknown id, a wrong secret,
# a revoked token and an API key used as a token are all 401 invalid_token with one and the
# same message (nothing tells them apart); /health and /ready need no token. With
# keys.fail_limit=3, wrong secrets for a real token id get 429 auth_throttled with
# Retry-After, new secrets for that id from that address are throttled too, while the id's
# already verified token, every other token, and the same id from another address (failures
# count per id and source) keep working.
. "$(dirname "$0")/lib.sh"

secret43() { head -c 2000 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 43; }

tg_start_daemon --set keys.fail_limit=3 || bail "tollgated starts and becomes ready"

viewer_resp=$(new_token '{"name":"v","role":"viewer"}')
viewer=$(jq -r .token <<<"$viewer_resp")
viewer_id=$(jq -r .id <<<"$viewer_resp")
revoked_resp=$(new_token '{"name":"r","role":"admin"}')
revoked=$(jq -r .token <<<"$revoked_resp")
api_key=$(new_key '{"name":"k","owner":"team:x"}' | jq -r .key)
api DELETE "/api/v1/admin/tokens/$(jq -r .id <<<"$revoked_resp")"
[ -n "$viewer" ] && [ -n "$revoked" ] && [ -n "$api_key" ] && [ "$STATUS" = 200 ] ||
	bail "the admin creates the tokens and keys this script needs"

case_start "/health and /ready need no token"
api GET /health "" ""
expect_status 200
api GET /ready "" ""
expect_status 200
case_end

case_start "no Authorization header is 401 missing_token"
api GET /api/v1/keys "" ""
expect_error 401 authentication_error missing_token null
missing_msg=$(json .error.message)
api POST /api/v1/keys '{"name":"a","owner":"team:x"}' ""
expect_error 401 authentication_error missing_token null
case_end

# Each bad credential, sent as a Bearer token; every answer's error object is kept.
names=("a malformed token" "a truncated token" "a token with an unknown id" "a token with a wrong secret"
	"a wrong bootstrap value" "a revoked token" "an API key used as admin token")
creds=("not-a-token" "tgadm_${viewer_id}_" "tgadm_zzzzzzzzzzzz_$(secret43)"
	"tgadm_${viewer_id}_$(secret43)" "${TG_TOKEN%?}X" "$revoked" "$api_key")
errors=()
for i in "${!names[@]}"; do
	case_start "${names[$i]} is 401 invalid_token"
	api GET /api/v1/keys "" "${creds[$i]}"
	expect_error 401 authentication_error invalid_token null
	errors+=("$(jq -c .error <<<"$BODY")")
	case_end
done

case_start "the Bearer scheme is case-insensitive (RFC 7235)"
api GET /api/v1/keys "" "" -- -H "Authorization: bearer $TG_TOKEN"
expect_status 200
api GET /api/v1/keys "" "" -- -H "Authorization: BEARER $TG_TOKEN"
expect_status 200
case_end

case_start "a non-Bearer Authorization header is 401"
api GET /api/v1/keys "" "" -- -H "Authorization: Basic $(printf 'admin:%s' "$TG_TOKEN" | base64 -w0)"
expect_status 401
expect_json .error.type authentication_error
expect_match .error.code '^(missing_token|invalid_token)$'
case_end

case_start "every invalid_token answer is the same: nothing tells the failures apart"
expect test "$(printf '%s\n' "${errors[@]}" | sort -u | wc -l)" = 1
case_end

case_start "a missing token gets the same message as a bad one"
expect test "$missing_msg" = "$(jq -r .message <<<"${errors[0]}")"
case_end

# ---- throttling: keys.fail_limit=3 ----
target_resp=$(new_token '{"name":"target","role":"viewer"}')
target=$(jq -r .token <<<"$target_resp")
target_id=$(jq -r .id <<<"$target_resp")

case_start "a token works (and is now verified)"
api GET /api/v1/keys "" "$target"
expect_status 200
case_end

case_start "wrong secrets for a real token id, up to keys.fail_limit (3), are 401 invalid_token"
for i in 1 2 3; do
	api GET /api/v1/keys "" "tgadm_${target_id}_$(secret43)"
	expect_error 401 authentication_error invalid_token
done
case_end

case_start "past keys.fail_limit failures, a wrong secret is 429 auth_throttled with Retry-After"
api GET /api/v1/keys "" "tgadm_${target_id}_$(secret43)"
expect_error 429 rate_limit_error auth_throttled
expect_header Retry-After '^[1-9][0-9]*$'
retry=$(header Retry-After)
[ "${retry:-0}" -le 60 ] 2>/dev/null || fail "expected Retry-After within keys.fail_window_sec (60), got '$retry'"
case_end

case_start "the throttled id's verified token keeps working"
api GET /api/v1/keys "" "$target"
expect_status 200
case_end

case_start "other tokens are not throttled"
api GET /api/v1/keys
expect_status 200
case_end

fresh_resp=$(new_token '{"name":"fresh","role":"viewer"}')
fresh=$(jq -r .token <<<"$fresh_resp")
fresh_id=$(jq -r .id <<<"$fresh_resp")
for i in 1 2 3; do
	api GET /api/v1/keys "" "tgadm_${fresh_id}_$(secret43)"
done
case_start "a throttled id refuses even its right secret when it was never verified (429)"
api GET /api/v1/keys "" "$fresh"
expect_error 429 rate_limit_error auth_throttled
expect_header Retry-After '^[1-9][0-9]*$'
case_end

if [[ $TG_GATEWAY_HOST == 127.* ]]; then
	case_start "failures count per source: from another address (127.0.0.2) that right secret verifies"
	api GET /api/v1/keys "" "$fresh" -- --interface 127.0.0.2
	expect_status 200
	case_end

	case_start "... and the throttled address still waits"
	api GET /api/v1/keys "" "tgadm_${fresh_id}_$(secret43)"
	expect_error 429 rate_limit_error auth_throttled
	case_end
else
	skip "failures count per source" "the gateway $TG_GATEWAY_HOST is not on loopback: no second local source address"
fi

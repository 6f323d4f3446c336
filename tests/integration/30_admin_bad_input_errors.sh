#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves that bad input gets the documented error and changes nothing (docs/admin-api.md,
# "Errors"): 400 with invalid_json, invalid_body, unknown_field, missing_field, invalid_type,
# invalid_value, immutable_field and invalid_query, each naming its param; 404 for unknown
# keys, tiers, tokens and paths; 405 with an Allow header; 409; 413 over admin.max_body_bytes
# (2048 here, chunked or not); 415 for bodies that are not application/json. After every
# refusal the keys, tiers and tokens are exactly what they were. Strings are taken whole:
# a NUL inside one is refused, not cut short; names count characters, not UTF-8 bytes; and
# the boundary values of the contract are accepted.
. "$(dirname "$0")/lib.sh"

bad() { # expectation: 400 invalid_request_error CODE PARAM
	expect_error 400 invalid_request_error "$1" "$2"
}
# The Allow header lists each METHOD given.
expect_allow() { # METHOD...
	local v m

	v=$(header Allow) || {
		fail "expected an Allow header"
		return 1
	}
	for m in "$@"; do
		[[ $v =~ (^|[ ,])$m([ ,]|$) ]] || fail "expected Allow to list $m, got '$v'"
	done
}
snapshot() { # keys, tiers and tokens as an admin sees them
	local k t a
	api GET '/api/v1/keys?limit=1000'
	k=$BODY
	api GET /api/v1/tiers
	t=$BODY
	api GET /api/v1/admin/tokens
	a=$(jq -c '.data | map(del(.last_used_at))' <<<"$BODY")
	printf '%s\n%s\n%s\n' "$k" "$t" "$a"
}
tier_body='{"requests_per_second":1,"burst":2,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":0,"max_concurrent":0}'

tg_start_daemon --set admin.max_body_bytes=2048 || bail "tollgated starts and becomes ready"

key=$(new_key '{"name":"subject","owner":"team:x","limits":{"burst":5}}' | jq -r .id)
[ -n "$key" ] || bail "the admin creates the key this script needs"
api GET "/api/v1/keys/$key"
key_before=$BODY
before=$(snapshot)

# ---- 400 ----
case_start "malformed JSON is 400 invalid_json (param null)"
api POST /api/v1/keys '{"name":"a","owner":'
bad invalid_json null
api POST /api/v1/keys "{'name':'a'}"
bad invalid_json null
case_end

case_start "trailing garbage after the JSON object is 400 invalid_json"
api POST /api/v1/keys '{"name":"a","owner":"team:x"} xyz'
bad invalid_json null
api POST /api/v1/keys '{"name":"a","owner":"team:x"}{}'
bad invalid_json null
case_end

case_start "a body that is not an object is 400 invalid_body"
for body in '[1,2]' '"text"' '42' 'null'; do
	api POST /api/v1/keys "$body"
	bad invalid_body null
done
case_end

case_start "an unknown field is 400 unknown_field naming it, nested ones by dotted path"
api POST /api/v1/keys '{"name":"a","owner":"team:x","colour":"red"}'
bad unknown_field colour
api POST /api/v1/keys '{"name":"a","owner":"team:x","limits":{"rps":1}}'
bad unknown_field limits.rps
api PATCH "/api/v1/keys/$key" '{"nickname":"b"}'
bad unknown_field nickname
case_end

case_start "a missing required field is 400 missing_field naming it"
api POST /api/v1/keys '{"owner":"team:x"}'
bad missing_field name
api POST /api/v1/keys '{"name":"a"}'
bad missing_field owner
case_end

case_start "a value of the wrong JSON type is 400 invalid_type naming it"
api POST /api/v1/keys '{"name":5,"owner":"team:x"}'
bad invalid_type name
api POST /api/v1/keys '{"name":"a","owner":"team:x","limits":"fast"}'
bad invalid_type limits
api POST /api/v1/keys '{"name":"a","owner":"team:x","limits":{"burst":"20"}}'
bad invalid_type limits.burst
api POST /api/v1/keys '{"name":"a","owner":["team:x"]}'
bad invalid_type owner
api PATCH "/api/v1/keys/$key" '{"expires_at":12345}'
bad invalid_type expires_at
case_end

case_start "limits out of range are 400 invalid_value naming the limit"
for l in '"burst":-1' '"burst":0' '"burst":1000000001' '"requests_per_second":0' \
	'"requests_per_second":-2' '"requests_per_second":1000001' '"requests_per_minute":-1' \
	'"tokens_per_month":-5' '"max_concurrent":-1'; do
	api POST /api/v1/keys "{\"name\":\"a\",\"owner\":\"team:x\",\"limits\":{$l}}"
	field=${l%%:*}
	bad invalid_value "limits.${field//\"/}"
done
case_end

case_start "requests_per_second with 4 decimals is 400 invalid_value"
api POST /api/v1/keys '{"name":"a","owner":"team:x","limits":{"requests_per_second":1.2345}}'
bad invalid_value limits.requests_per_second
case_end

case_start "a fractional integer limit is 400 naming the limit"
api POST /api/v1/keys '{"name":"a","owner":"team:x","limits":{"burst":2.5}}'
expect_status 400
expect_json .error.param limits.burst
expect_match .error.code '^(invalid_value|invalid_type)$'
case_end

case_start "a bad owner is 400 invalid_value owner"
long=$(printf 'a%.0s' {1..65})
for owner in org:x team: team:a/b "team:has space" "team:$long" team x consumer; do
	api POST /api/v1/keys "$(jq -nc --arg o "$owner" '{name:"a",owner:$o}')"
	bad invalid_value owner
done
case_end

case_start "a bad name or service is 400 invalid_value naming it"
api POST /api/v1/keys '{"name":"","owner":"team:x"}'
bad invalid_value name
api POST /api/v1/keys "$(jq -nc --arg n "$(printf 'n%.0s' {1..129})" '{name:$n,owner:"team:x"}')"
bad invalid_value name
api POST /api/v1/keys '{"name":"bell\u0007","owner":"team:x"}'
bad invalid_value name
api POST /api/v1/keys '{"name":"a","owner":"team:x","service":"chat bot"}'
bad invalid_value service
api POST /api/v1/keys '{"name":"a","owner":"team:x","service":""}'
bad invalid_value service
case_end

case_start "a name that is not valid UTF-8 is 400 invalid_value name"
api POST /api/v1/keys "$(printf '{"name":"\xff\xfe","owner":"team:x"}')"
bad invalid_value name
case_end

case_start "a field given twice is 400 naming it"
api POST /api/v1/keys '{"name":"a","owner":"team:x","name":"b"}'
expect_status 400
expect_json .error.param name
case_end

case_start "expires_at in the past or not a time is 400 invalid_value expires_at"
api POST /api/v1/keys '{"name":"a","owner":"team:x","expires_at":"2001-01-01T00:00:00Z"}'
bad invalid_value expires_at
api POST /api/v1/keys '{"name":"a","owner":"team:x","expires_at":"tomorrow"}'
bad invalid_value expires_at
api PATCH "/api/v1/keys/$key" '{"expires_at":"2001-01-01T00:00:00Z"}'
bad invalid_value expires_at
case_end

case_start "an unknown tier is 400 invalid_value tier (create and PATCH)"
api POST /api/v1/keys '{"name":"a","owner":"team:x","tier":"platinum"}'
bad invalid_value tier
api PATCH "/api/v1/keys/$key" '{"tier":"platinum"}'
bad invalid_value tier
case_end

case_start "PATCH of owner is 400 immutable_field owner"
api PATCH "/api/v1/keys/$key" '{"owner":"team:y"}'
bad immutable_field owner
case_end

case_start "a PATCH with one bad field changes none of the others"
api PATCH "/api/v1/keys/$key" '{"name":"changed","service":"other","limits":{"requests_per_second":3,"burst":-1}}'
bad invalid_value limits.burst
api GET "/api/v1/keys/$key"
expect_same "the key" "$key_before" "$BODY"
case_end

case_start "rotate with a bad grace_period_sec is 400 and rotates nothing"
api POST "/api/v1/keys/$key/rotate" '{"grace_period_sec":"soon"}'
bad invalid_type grace_period_sec
api POST "/api/v1/keys/$key/rotate" '{"grace_period_sec":99999999}'
bad invalid_value grace_period_sec
api POST "/api/v1/keys/$key/rotate" '{"grace":5}'
bad unknown_field grace
api GET "/api/v1/keys/$key"
expect_same "the key" "$key_before" "$BODY"
case_end

case_start "deeply nested JSON is 400 invalid_json, and the daemon goes on serving"
api POST /api/v1/keys "$(printf '[%.0s' {1..1500})"
bad invalid_json null
api GET /health "" ""
expect_status 200
case_end

case_start "a bad query is 400 invalid_query naming the parameter"
api GET '/api/v1/keys?limit=0'
bad invalid_query limit
api GET '/api/v1/keys?limit=1001'
bad invalid_query limit
api GET '/api/v1/keys?limit=ten'
bad invalid_query limit
api GET '/api/v1/keys?status=sleeping'
bad invalid_query status
api GET '/api/v1/keys?colour=red'
bad invalid_query colour
case_end

case_start "bad tiers are 400 naming the field, and create nothing"
api PUT /api/v1/tiers/gold "$(jq -c 'del(.burst)' <<<"$tier_body")"
bad missing_field burst
api PUT /api/v1/tiers/gold "$(jq -c '.requests_per_second = 0' <<<"$tier_body")"
bad invalid_value requests_per_second
api PUT /api/v1/tiers/gold "$(jq -c '.burst = "2"' <<<"$tier_body")"
bad invalid_type burst
api PUT /api/v1/tiers/gold "$(jq -c '.speed = 1' <<<"$tier_body")"
bad unknown_field speed
api PUT /api/v1/tiers/gold "$(jq -c '.name = "silver"' <<<"$tier_body")"
bad invalid_value name
api PUT /api/v1/tiers/Not_A-Tier! "$tier_body"
expect_status 400
api PUT /api/v1/tiers '{"tiers":"all"}'
bad invalid_type tiers
api PUT /api/v1/tiers "$(jq -c '{tiers: [del(.burst) + {name:"basic"}]}' <<<"$tier_body")"
expect_status 400
expect_json .error.code missing_field
api GET /api/v1/tiers/gold
expect_error 404 not_found_error tier_not_found
case_end

case_start "bad admin tokens are 400 naming the field"
api POST /api/v1/admin/tokens '{"name":"t","role":"root"}'
bad invalid_value role
api POST /api/v1/admin/tokens '{"role":"viewer"}'
bad missing_field name
api POST /api/v1/admin/tokens '{"name":"t","role":"consumer"}'
bad missing_field consumer
api POST /api/v1/admin/tokens '{"name":"t","role":"consumer","consumer":"a b"}'
bad invalid_value consumer
api POST /api/v1/admin/tokens '{"name":"t","role":"consumer","consumer":"acme","tier":"platinum"}'
bad invalid_value tier
api POST /api/v1/admin/tokens '{"name":"t","role":"viewer","scope":"all"}'
bad unknown_field scope
case_end

case_start "the refused requests above changed nothing"
expect_same "keys, tiers and tokens" "$before" "$(snapshot)"
case_end

# ---- 404, 405 ----
case_start "an unknown key, tier or token is 404 with its own code"
api GET /api/v1/keys/zzzzzzzzzzzz
expect_error 404 not_found_error key_not_found
api GET /api/v1/tiers/nosuch
expect_error 404 not_found_error tier_not_found
api DELETE /api/v1/admin/tokens/zzzzzzzzzzzz
expect_error 404 not_found_error token_not_found
case_end

case_start "an unknown path is 404 not_found"
for path in /api/v1/nothing /api/v2/keys /api/v1/keys/zzzzzzzzzzzz/unknown; do
	api GET "$path"
	expect_error 404 not_found_error not_found
done
case_end

case_start "a method a path does not take is 405 method_not_allowed with an Allow header"
api PUT /api/v1/keys '{}'
expect_error 405 invalid_request_error method_not_allowed
expect_allow GET POST
api POST "/api/v1/keys/$key" '{}'
expect_error 405 invalid_request_error method_not_allowed
expect_allow GET PATCH DELETE
api GET "/api/v1/keys/$key/rotate"
expect_error 405 invalid_request_error method_not_allowed
expect_allow POST
api DELETE /api/v1/tiers
expect_error 405 invalid_request_error method_not_allowed
expect_allow GET PUT
api PATCH /api/v1/admin/tokens/bootstrap '{}'
expect_error 405 invalid_request_error method_not_allowed
expect_allow DELETE
api POST /health '{}' ""
expect_error 405 invalid_request_error method_not_allowed
expect_allow GET
case_end

# ---- 409 ----
case_start "revoking a revoked key is 409 key_revoked and changes nothing"
api DELETE "/api/v1/keys/$key"
expect_status 200
revoked=$BODY
api DELETE "/api/v1/keys/$key"
expect_error 409 conflict_error key_revoked
api GET "/api/v1/keys/$key"
expect_same "the revoked key" "$revoked" "$BODY"
case_end

# ---- 413 ----
pad_to() { # BYTES: a valid create body padded with blanks to exactly BYTES
	local body='{"name":"padded","owner":"team:pad"}'
	printf '%s%*s' "$body" $(($1 - ${#body})) ''
}
pad_to 2000 >"$tmp/small.json"
pad_to 3000 >"$tmp/big.json"
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/huge.json"
printf '{"name":"huge","owner":"team:pad"}' >>"$tmp/huge.json"

case_start "a body over admin.max_body_bytes is 413 body_too_large"
api POST /api/v1/keys "@$tmp/big.json"
expect_error 413 invalid_request_error body_too_large
api POST /api/v1/keys "@$tmp/huge.json"
expect_error 413 invalid_request_error body_too_large
case_end

case_start "a chunked body over admin.max_body_bytes is 413 body_too_large"
api POST /api/v1/keys "@$tmp/big.json" -- -H 'Transfer-Encoding: chunked'
expect_error 413 invalid_request_error body_too_large
case_end

case_start "a body under admin.max_body_bytes is taken (blanks and all)"
api POST /api/v1/keys "@$tmp/small.json"
expect_status 201
expect_json .name padded
case_end
api DELETE "/api/v1/keys/$(json .id)"
after_small=$(snapshot)

case_start "413 changed nothing"
api GET '/api/v1/keys?owner=team:pad&limit=1000'
expect_jq '[.data[].name] == ["padded"]'
case_end

# ---- 415 ----
case_start "a body that is not application/json is 415 unsupported_media_type"
CT=text/plain api POST /api/v1/keys '{"name":"plain","owner":"team:ct"}'
expect_error 415 invalid_request_error unsupported_media_type
CT=application/x-www-form-urlencoded api POST /api/v1/keys '{"name":"form","owner":"team:ct"}'
expect_error 415 invalid_request_error unsupported_media_type
CT=none api POST /api/v1/keys '{"name":"none","owner":"team:ct"}'
expect_error 415 invalid_request_error unsupported_media_type
CT=text/plain api PATCH "/api/v1/keys/$key" '{"name":"plain"}'
expect_error 415 invalid_request_error unsupported_media_type
case_end

case_start "415 changed nothing"
expect_same "keys, tiers and tokens" "$after_small" "$(snapshot)"
case_end

case_start "application/json is taken in any case and with a charset parameter; lookalikes are 415"
CT='application/json; charset=utf-8' api POST /api/v1/keys '{"name":"charset","owner":"team:ct"}'
expect_status 201
CT='Application/JSON' api POST /api/v1/keys '{"name":"upper","owner":"team:ct"}'
expect_status 201
CT='application/jsonx' api POST /api/v1/keys '{"name":"lookalike","owner":"team:ct"}'
expect_error 415 invalid_request_error unsupported_media_type
case_end

case_start "413 and 415 answers carry x-request-id too"
api POST /api/v1/keys "@$tmp/big.json"
expect_status 413
expect_header x-request-id '.'
CT=text/plain api POST /api/v1/keys '{"name":"plain","owner":"team:ct"}'
expect_status 415
expect_header x-request-id '.'
case_end

# ---- what must be taken ----
case_start "boundary values are taken: owner and service ids of 64, burst 1 and 1e9, rps 0.001 and 1e6"
id64=$(printf 'a%.0s' {1..64})
api POST /api/v1/keys "{\"name\":\"edge\",\"owner\":\"team:$id64\",\"service\":\"$id64\",
  \"limits\":{\"burst\":1,\"requests_per_second\":0.001,\"requests_per_minute\":0}}"
expect_status 201
expect_json .owner "team:$id64"
expect_jq '.limits == {"burst":1,"requests_per_second":0.001,"requests_per_minute":0}'
api PATCH "/api/v1/keys/$(json .id)" '{"limits":{"burst":1000000000,"requests_per_second":1000000}}'
expect_status 200
expect_jq '.limits.burst == 1000000000 and .limits.requests_per_second == 1000000'
api GET '/api/v1/keys?limit=1000'
expect_status 200
api GET '/api/v1/keys?limit=1'
expect_status 200
case_end


# ---- strings: NUL and UTF-8 (last: a failure here may change what it touches) ----
nul_key=$(new_key '{"name":"nul-subject","owner":"team:nul"}' | jq -r .id)
before=$(snapshot)
case_start "a NUL character inside a string is 400 invalid_value naming the field, not cut short"
api POST /api/v1/keys '{"name":"a\u0000b","owner":"team:x"}'
bad invalid_value name
api POST /api/v1/keys '{"name":"a","owner":"team:x\u0000evil"}'
bad invalid_value owner
api POST /api/v1/keys '{"name":"a","owner":"team:x","service":"chat\u0000"}'
bad invalid_value service
api PATCH "/api/v1/keys/$nul_key" '{"name":"renamed\u0000"}'
bad invalid_value name
api PUT /api/v1/tiers/gold "$(jq -c '.name = "gold\u0000x"' <<<"$tier_body")"
bad invalid_value name
case_end

case_start "the NUL requests changed nothing"
expect_same "keys, tiers and tokens" "$before" "$(snapshot)"
case_end

case_start "a name is at most 128 bytes of UTF-8: 128 bytes taken, 129 refused"
name128="$(printf 'é%.0s' {1..8})$(printf 'n%.0s' {1..112})" # 120 characters, 128 bytes
api POST /api/v1/keys "$(jq -nc --arg n "$name128" '{name:$n,owner:"team:utf8"}')"
expect_status 201
expect_json .name "$name128"
api POST /api/v1/keys "$(jq -nc --arg n "${name128}n" '{name:$n,owner:"team:utf8"}')"
expect_status 400
expect_json .error.param name
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the life of an API key through the admin API (docs/admin-api.md), as the admin:
# creation (the full key returned once, in its format, with the documented defaults), get,
# listing with pagination (limit, after, next_after, has_more) and every filter, PATCH of
# name, service, tier, limit overrides (set, and cleared with null) and expires_at, revocation
# (and 409 key_revoked after it), rotation (a new key; previous_valid_until from
# grace_period_sec or the default), expiry, and /health, /ready and x-request-id.
. "$(dirname "$0")/lib.sh"

basic_limits='{"requests_per_second":10,"burst":20,"requests_per_minute":0,"requests_per_hour":0,
  "requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":100000,"max_concurrent":0}'
utc_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; } # SECONDS from now

tg_start_daemon || bail "tollgated starts and becomes ready"

# A key that expires soon, checked at the end of the script.
expiring_at=$(utc_in 3)
expiring=$(new_key "{\"name\":\"short-lived\",\"owner\":\"team:exp\",\"expires_at\":\"$expiring_at\"}")
expiring_id=$(jq -r .id <<<"$expiring")

case_start "GET /health answers 200 {status: ok} without a token"
api GET /health "" ""
expect_status 200
expect_json .status ok
case_end

case_start "GET /ready answers 200 with status ready, the schema version and the key count"
api GET /ready "" ""
expect_status 200
expect_json .status ready
expect_jq '.schema_version | type == "number" and . >= 1'
expect_json .keys 1
case_end

case_start "POST /api/v1/keys answers 201 with the key object and the full key in its format"
api POST /api/v1/keys '{"name":"billing-bot","owner":"team:ml-platform","service":"chat"}'
created=$BODY
expect_status 201
expect_json .object api_key
expect_match .key "$TG_KEY_RE"
expect_match .id '^[a-z0-9]{12}$'
expect_jq '. as $k | $k.prefix == "tg_" + $k.id + "_" and ($k.key | startswith($k.prefix))'
expect_json .name billing-bot
expect_json .owner team:ml-platform
expect_json .service chat
expect_json .status active
expect_match .created_at "$TG_TIME_RE"
expect_jq '[.expires_at, .revoked_at, .last_used_at, .rotated_at, .previous_valid_until] | all(. == null)'
case_end
key_id=$(jq -r .id <<<"$created")
key_plain=$(jq -r .key <<<"$created")

case_start "a new key defaults to tier basic with no overrides: effective limits are the tier's"
BODY=$created
expect_json .tier basic
expect_jq '.limits == {}'
expect_jq ".effective_limits == $basic_limits"
case_end

case_start "service defaults to 'default'"
api POST /api/v1/keys '{"name":"svc-default","owner":"user:alice"}'
expect_status 201
expect_json .service default
expect_json .owner user:alice
case_end

case_start "every creation makes a new id and a new secret"
api POST /api/v1/keys '{"name":"billing-bot","owner":"team:ml-platform","service":"chat"}'
expect_status 201
expect test "$(json .id)" != "$key_id"
expect test "$(json .key)" != "$key_plain"
case_end

case_start "creation takes tier, limit overrides and expires_at (offsets normalised to UTC)"
api POST /api/v1/keys '{"name":"premium-bot","owner":"team:ml-platform","tier":"premium",
  "limits":{"requests_per_second":2.5,"burst":7},"expires_at":"2099-06-01T12:00:00+02:00"}'
expect_status 201
expect_json .tier premium
expect_jq '.limits == {"requests_per_second":2.5,"burst":7}'
expect_jq '.effective_limits | .requests_per_second == 2.5 and .burst == 7 and .tokens_per_month == 10000000'
expect_json .expires_at 2099-06-01T10:00:00Z
case_end
premium_id=$(json .id)

case_start "GET /api/v1/keys/:id answers 200 with the key object, without the key"
api GET "/api/v1/keys/$key_id"
expect_status 200
expect_jq 'has("key") | not'
expect_jq --argjson c "$created" '. == ($c | del(.key))'
case_end

# ---- lists ----
page_ids=()
for i in 1 2 3 4 5 6 7; do
	page_ids+=("$(new_key "{\"name\":\"page-$i\",\"owner\":\"team:pages\"}" | jq -r .id)")
done
sorted_ids=$(printf '%s\n' "${page_ids[@]}" | sort | jq -R . | jq -sc .)

case_start "a list pages through 7 keys with limit 3: 3 + 3 + 1, in id order, has_more and next_after"
got_ids=()
api GET '/api/v1/keys?owner=team:pages&limit=3'
expect_status 200
expect_json .object list
expect_jq '(.data | length) == 3 and .has_more == true and .next_after == .data[2].id'
mapfile -t -O "${#got_ids[@]}" got_ids < <(json '.data[].id')
api GET "/api/v1/keys?owner=team:pages&limit=3&after=$(json .next_after)"
expect_status 200
expect_jq '(.data | length) == 3 and .has_more == true and .next_after == .data[2].id'
mapfile -t -O "${#got_ids[@]}" got_ids < <(json '.data[].id')
api GET "/api/v1/keys?owner=team:pages&limit=3&after=$(json .next_after)"
expect_status 200
expect_jq '(.data | length) == 1 and .has_more == false'
mapfile -t -O "${#got_ids[@]}" got_ids < <(json '.data[].id')
expect test "$(printf '%s\n' "${got_ids[@]}" | jq -R . | jq -sc .)" = "$sorted_ids"
case_end

case_start "a list without limit returns up to 50, in id order, has_more false"
api GET '/api/v1/keys?owner=team:pages'
expect_status 200
expect_jq --argjson ids "$sorted_ids" '[.data[].id] == $ids and .has_more == false'
expect_jq '[.data[] | has("key")] | any | not'
case_end

case_start "after=<id> starts strictly after that id"
api GET "/api/v1/keys?owner=team:pages&after=$(jq -r '.[3]' <<<"$sorted_ids")"
expect_status 200
expect_jq --argjson ids "$sorted_ids" '[.data[].id] == $ids[4:]'
case_end

case_start "filter owner= returns exactly that owner's keys"
api GET '/api/v1/keys?owner=team:ml-platform'
expect_status 200
expect_jq '(.data | length) == 3 and all(.data[]; .owner == "team:ml-platform")'
case_end

case_start "filter service= returns exactly that service's keys"
api GET '/api/v1/keys?service=chat'
expect_status 200
expect_jq '(.data | length) == 2 and all(.data[]; .service == "chat")'
case_end

case_start "filter tier= returns exactly that tier's keys"
api GET '/api/v1/keys?tier=premium'
expect_status 200
expect_jq --arg id "$premium_id" '[.data[].id] == [$id]'
case_end

case_start "filters combine (owner and service and tier)"
api GET '/api/v1/keys?owner=team:ml-platform&service=chat&tier=basic'
expect_status 200
expect_jq '(.data | length) == 2 and all(.data[]; .owner == "team:ml-platform" and .service == "chat" and .tier == "basic")'
case_end

# ---- patch ----
case_start "PATCH name and service answers 200 with the changed key, and GET shows it"
api PATCH "/api/v1/keys/$key_id" '{"name":"billing-bot-v2","service":"embeddings"}'
expect_status 200
expect_json .name billing-bot-v2
expect_json .service embeddings
expect_jq 'has("key") | not'
api GET "/api/v1/keys/$key_id"
expect_json .name billing-bot-v2
expect_json .service embeddings
expect_json .owner team:ml-platform
case_end

case_start "PATCH limits sets an override: limits and effective_limits show it"
api PATCH "/api/v1/keys/$key_id" '{"limits":{"requests_per_second":2.5}}'
expect_status 200
expect_jq '.limits == {"requests_per_second":2.5}'
expect_jq '.effective_limits.requests_per_second == 2.5 and .effective_limits.burst == 20'
case_end

case_start "PATCH tier changes the tier; overrides stay on top of the new tier"
api PATCH "/api/v1/keys/$key_id" '{"tier":"premium"}'
expect_status 200
expect_json .tier premium
expect_jq '.limits == {"requests_per_second":2.5}'
expect_jq '.effective_limits | .requests_per_second == 2.5 and .burst == 200 and .tokens_per_month == 10000000'
case_end

case_start "PATCH limits with null clears that override only; the tier's value applies again"
api PATCH "/api/v1/keys/$key_id" '{"limits":{"burst":5,"max_concurrent":3}}'
expect_status 200
expect_jq '.limits == {"requests_per_second":2.5,"burst":5,"max_concurrent":3}'
api PATCH "/api/v1/keys/$key_id" '{"limits":{"requests_per_second":null,"burst":null}}'
expect_status 200
expect_jq '.limits == {"max_concurrent":3}'
expect_jq '.effective_limits | .requests_per_second == 100 and .burst == 200 and .max_concurrent == 3'
api GET "/api/v1/keys/$key_id"
expect_jq '.limits == {"max_concurrent":3}'
case_end

case_start "requests_per_second takes up to 3 decimals"
api PATCH "/api/v1/keys/$key_id" '{"limits":{"requests_per_second":0.125}}'
expect_status 200
expect_json .limits.requests_per_second 0.125
expect_json .effective_limits.requests_per_second 0.125
case_end

case_start "PATCH expires_at takes offsets and fractions (stored in UTC) and null removes it"
api PATCH "/api/v1/keys/$key_id" '{"expires_at":"2098-01-02T03:04:05.5-01:00"}'
expect_status 200
expect_match .expires_at '^2098-01-02T04:04:05(\.[0-9]+)?Z$'
expect_json .status active
api PATCH "/api/v1/keys/$key_id" '{"expires_at":null}'
expect_status 200
expect_json .expires_at null
case_end

case_start "PATCH of an unknown key answers 404 key_not_found"
api PATCH /api/v1/keys/zzzzzzzzzzzz '{"name":"x"}'
expect_error 404 not_found_error key_not_found
case_end

# ---- rotation ----
case_start "rotate answers 200 with a new key for the same id, previous valid for grace_period_sec"
api POST "/api/v1/keys/$key_id/rotate" '{"grace_period_sec":3600}'
expect_status 200
expect_json .object api_key
expect_json .id "$key_id"
expect_match .key "$TG_KEY_RE"
expect_jq --arg old "$key_plain" '.key != $old'
expect_jq --arg id "$key_id" '.key | startswith("tg_" + $id + "_")'
expect_match .rotated_at "$TG_TIME_RE"
expect_match .previous_valid_until "$TG_TIME_RE"
expect_jq '(.previous_valid_until | fromdateiso8601) - (.rotated_at | fromdateiso8601) == 3600'
expect_json .status active
case_end
rotated_plain=$(json .key)

case_start "rotate without a body keeps the previous secret for keys.rotation_grace_sec (86400)"
api POST "/api/v1/keys/$key_id/rotate"
expect_status 200
expect_match .key "$TG_KEY_RE"
expect_jq --arg a "$key_plain" --arg b "$rotated_plain" '.key != $a and .key != $b'
expect_jq '(.previous_valid_until | fromdateiso8601) - (.rotated_at | fromdateiso8601) == 86400'
case_end

case_start "rotate with grace_period_sec 0 ends the previous secret at once"
api POST "/api/v1/keys/$key_id/rotate" '{"grace_period_sec":0}'
expect_status 200
expect_jq '.previous_valid_until == null or ((.previous_valid_until | fromdateiso8601) <= (.rotated_at | fromdateiso8601))'
case_end

case_start "rotate takes grace_period_sec up to 2592000 and refuses 2592001 and -1 (400 invalid_value)"
api POST "/api/v1/keys/$key_id/rotate" '{"grace_period_sec":2592000}'
expect_status 200
expect_jq '(.previous_valid_until | fromdateiso8601) - (.rotated_at | fromdateiso8601) == 2592000'
api POST "/api/v1/keys/$key_id/rotate" '{"grace_period_sec":2592001}'
expect_error 400 invalid_request_error invalid_value grace_period_sec
api POST "/api/v1/keys/$key_id/rotate" '{"grace_period_sec":-1}'
expect_error 400 invalid_request_error invalid_value grace_period_sec
case_end

case_start "the key object never carries the key after rotation (GET)"
api GET "/api/v1/keys/$key_id"
expect_status 200
expect_jq 'has("key") | not'
expect_match .rotated_at "$TG_TIME_RE"
case_end

# ---- revocation ----
case_start "DELETE revokes: 200 with status revoked and revoked_at, and GET shows it"
api DELETE "/api/v1/keys/$premium_id"
expect_status 200
expect_json .status revoked
expect_match .revoked_at "$TG_TIME_RE"
expect_jq 'has("key") | not'
api GET "/api/v1/keys/$premium_id"
expect_json .status revoked
case_end

case_start "DELETE of a revoked key answers 409 key_revoked"
api DELETE "/api/v1/keys/$premium_id"
expect_error 409 conflict_error key_revoked
case_end

case_start "PATCH and rotate of a revoked key answer 409 key_revoked and change nothing"
api GET "/api/v1/keys/$premium_id"
before=$BODY
api PATCH "/api/v1/keys/$premium_id" '{"name":"back-from-the-dead"}'
expect_error 409 conflict_error key_revoked
api POST "/api/v1/keys/$premium_id/rotate"
expect_error 409 conflict_error key_revoked
api GET "/api/v1/keys/$premium_id"
expect_same "the key" "$before" "$BODY"
case_end

case_start "DELETE and rotate of an unknown key answer 404 key_not_found"
api DELETE /api/v1/keys/zzzzzzzzzzzz
expect_error 404 not_found_error key_not_found
api POST /api/v1/keys/zzzzzzzzzzzz/rotate
expect_error 404 not_found_error key_not_found
case_end

case_start "filter status=revoked and status=active split the keys"
api GET '/api/v1/keys?status=revoked'
expect_status 200
expect_jq --arg id "$premium_id" '[.data[].id] == [$id]'
api GET '/api/v1/keys?status=active&owner=team:ml-platform'
expect_status 200
expect_jq --arg id "$premium_id" '(.data | length) == 2 and all(.data[]; .status == "active" and .id != $id)'
case_end

# ---- expiry ----
while [ "$(date -u +%s)" -le "$(date -u -d "$expiring_at" +%s)" ]; do sleep 0.2; done

case_start "a key past expires_at has status expired (GET, and filter status=expired)"
api GET "/api/v1/keys/$expiring_id"
expect_status 200
expect_json .status expired
expect_json .expires_at "$expiring_at"
api GET '/api/v1/keys?status=expired'
expect_jq --arg id "$expiring_id" '[.data[].id] == [$id]'
api GET '/api/v1/keys?status=active&owner=team:exp'
expect_jq '.data == []'
case_end

case_start "rotate of an expired key answers 409 key_expired"
api POST "/api/v1/keys/$expiring_id/rotate"
expect_error 409 conflict_error key_expired
case_end

case_start "GET /ready counts every key"
api GET '/api/v1/keys?limit=1000'
n=$(json '.data | length')
api GET /ready "" ""
expect_status 200
expect_json .keys "$n"
case_end

# ---- request ids ----
case_start "every response carries x-request-id: the client's own when sane, else a new one"
api GET /health "" "" -- -H 'X-Request-Id: it-test-42'
expect_header x-request-id '^it-test-42$'
api GET /health "" ""
expect_header x-request-id '.'
api GET /api/v1/keys/zzzzzzzzzzzz
expect_status 404
expect_header x-request-id '.'
api GET /api/v1/keys "" ""
expect_status 401
expect_header x-request-id '.'
case_end

case_start "an x-request-id that is not sane (too long, blanks) is replaced by a new one"
long_id=$(printf 'r%.0s' {1..300})
api GET /health "" "" -- -H "X-Request-Id: $long_id"
expect_header x-request-id '.'
expect test "$(header x-request-id)" != "$long_id"
api GET /health "" "" -- -H 'X-Request-Id: two words'
expect_header x-request-id '^[^ ]+$'
case_end

case_start "answers are application/json, errors included"
api GET /api/v1/keys
expect_header Content-Type '^application/json'
api GET /api/v1/keys/zzzzzzzzzzzz
expect_header Content-Type '^application/json'
api GET /health "" ""
expect_header Content-Type '^application/json'
case_end

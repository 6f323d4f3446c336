#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the data plane's refusals and headers (docs/data-plane.md "Authentication",
# "Request-rate limits", the checks before forwarding; invariants 5 and 7): 401 for a missing
# key and for a malformed, unknown or wrong one (one message for all); 400 for two different
# keys; 403 for a key of another service, and for a key in use the moment it is revoked or
# its expires_at passes; 429 auth_throttled after repeated wrong secrets; 429
# request_rate_limit_exceeded naming the window (requests_per_second, or requests_per_minute
# for a key with a minute override), its limit and when to retry, with Retry-After honoured;
# limits changed through the admin API applying to the next request; the x-ratelimit-* and
# X-RateLimit-* headers (the tightest window) and x-request-id on allowed and refused
# answers, streams included; and bad input: malformed JSON, a missing, mistyped or unknown
# model, bad messages/prompt/input/stream/max_tokens, a body over data.max_body_bytes (413,
# chunked or not), a non-JSON content type (415) and request headers that would leave the
# answer no room in data.max_header_bytes (431), each an OpenAI-style error naming the
# problem. None of these refusals reaches the upstream or is metered.
. "$(dirname "$0")/lib.sh"

utc_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; } # SECONDS from now
secret43=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
random43() { head -c 2000 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 43; }

tg_start_mock || bail "mock-llm starts"
tg_start_gateway --set data.max_body_bytes=4096 ||
	bail "tollgated starts with its data plane in front of mock-llm, bodies up to 4096 bytes"
good=$(new_key '{"name":"good","owner":"team:r","service":"chat","tier":"enterprise"}')
DP_KEY=$(jq -r .key <<<"$good")
victim_id=$(new_key '{"name":"victim","owner":"team:r","service":"chat"}' | jq -r .id)
revoked=$(new_key '{"name":"revoked","owner":"team:r","service":"chat"}')
# 0.5 requests/s, burst 3: a refill every 2 s, so a few requests in a row see exact counts
# even on a busy machine.
tight=$(new_key '{"name":"tight","owner":"team:r","service":"chat","limits":{"requests_per_second":0.5,"burst":3}}')
minute=$(new_key '{"name":"minute","owner":"team:r","service":"chat","limits":{"requests_per_minute":5}}')
patched=$(new_key '{"name":"patched","owner":"team:r","service":"chat","limits":{"requests_per_second":0.5,"burst":3}}')
[ -n "$DP_KEY" ] && [ -n "$victim_id" ] && [ -n "$revoked" ] &&
	[ -n "$tight" ] && [ -n "$minute" ] && [ -n "$patched" ] ||
	bail "the admin creates the keys this script needs"

CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'
forwarded_before=$(mock_stat .requests.total)
# A key that expires in 4-5 s, used at once (so it is verified and cached); checked below.
expiring=$(new_key "{\"name\":\"expiring\",\"owner\":\"team:r\",\"service\":\"chat\",\"expires_at\":\"$(utc_in 5)\"}") ||
	bail "the admin creates a key that expires in 5 s"
dp POST /v1/chat/completions "$CHAT" "$(jq -r .key <<<"$expiring")"
expiring_first=$STATUS
expiring_calls=0 # served before it expired
[ "$expiring_first" = 200 ] && expiring_calls=1
usage_before=$(usage_of chat) || bail "GET /api/v1/usage/chat answers the good key"

has_header() { header "$1" >/dev/null; }

# The headers every answer to an authenticated request has: limit L, remaining R.
expect_rate_headers() { # LIMIT REMAINING
	expect_header x-ratelimit-limit-requests "^$1\$"
	expect_header x-ratelimit-remaining-requests "^$2\$"
	expect_header x-ratelimit-reset-requests '^[0-9]+(\.[0-9]{1,3})?s$'
	expect_header X-RateLimit-Limit "^$1\$"
	expect_header X-RateLimit-Remaining "^$2\$"
	expect_header X-RateLimit-Reset '^[0-9]+$'
	expect_header x-request-id '^req_[A-Za-z0-9_-]+$'
}

# ---- authentication ----

case_start "no key: 401 missing_api_key"
dp POST /v1/chat/completions "$CHAT" ""
expect_error 401 invalid_request_error missing_api_key
expect_header Content-Type '^application/json'
case_end

case_start "a malformed, an unknown and a wrong key get 401 invalid_api_key with one message for all"
msgs=()
for k in not-a-key "tg_zzzzzzzzzzzz_$secret43" "tg_${victim_id}_$secret43"; do
	dp POST /v1/chat/completions "$CHAT" "$k"
	expect_error 401 invalid_request_error invalid_api_key
	msgs+=("$(json .error.message)")
	[[ $BODY == *"$secret43"* ]] && fail "the answer repeats the key it was given"
done
dp POST /v1/chat/completions "$CHAT" "" -- -H "X-API-Key: tg_zzzzzzzzzzzz_$secret43"
expect_error 401 invalid_request_error invalid_api_key
msgs+=("$(json .error.message)")
expect test "$(printf '%s\n' "${msgs[@]}" | sort -u | wc -l)" = 1
case_end

case_start "Authorization and X-API-Key with two different keys: 400 conflicting_api_keys"
dp POST /v1/chat/completions "$CHAT" "" -- -H "Authorization: Bearer $DP_KEY" \
	-H "X-API-Key: tg_${victim_id}_$secret43"
expect_error 400 invalid_request_error conflicting_api_keys
case_end

case_start "Authorization and X-API-Key with the same key: served"
dp POST /v1/chat/completions "$CHAT" "" -- -H "Authorization: Bearer $DP_KEY" -H "X-API-Key: $DP_KEY"
expect_status 200
case_end
good_calls=1

case_start "a key in use is refused the moment it is revoked: 403 permission_error key_revoked (Bearer and X-API-Key)"
dp POST /v1/chat/completions "$CHAT" "$(jq -r .key <<<"$revoked")"
expect_status 200
api DELETE "/api/v1/keys/$(jq -r .id <<<"$revoked")"
expect_status 200
dp POST /v1/chat/completions "$CHAT" "$(jq -r .key <<<"$revoked")"
expect_error 403 permission_error key_revoked
dp POST /v1/chat/completions "$CHAT" "" -- -H "X-API-Key: $(jq -r .key <<<"$revoked")"
expect_error 403 permission_error key_revoked
case_end

case_start "a key of service chat on another service's marketplace endpoints: 403 service_not_allowed"
dp GET /api/v1/usage/other?days=1
expect_error 403 permission_error service_not_allowed
dp GET /api/v1/quota/other
expect_error 403 permission_error service_not_allowed
dp POST /api/v1/consume/other '{"prompt":"hello"}'
expect_error 403 permission_error service_not_allowed
case_end

case_start "repeated wrong secrets for one key id: 429 rate_limit_error auth_throttled with Retry-After"
for ((i = 0; i < 8; i++)); do
	dp POST /v1/chat/completions "$CHAT" "tg_${victim_id}_$(random43)"
	[ "$STATUS" = 429 ] && break
done
expect_error 429 rate_limit_error auth_throttled
expect_header Retry-After '^[1-9][0-9]*$'
case_end

# ---- request-rate limits ----

# The remaining count after the k-th request of a fresh bucket is BURST - k, plus what refilled
# since the first request at RATE per second (never above BURST - 1): a range measured from
# the elapsed time, so that a slow machine does not fail the case. As a regex: "[lo-hi]".
t0_us=0
remaining_range() { # BURST K RATE_PER_SEC
	awk -v b="$1" -v k="$2" -v r="$3" -v e="$((${EPOCHREALTIME/./} - t0_us))" 'BEGIN {
		lo = b - k; hi = lo + int(e / 1e6 * r); if (hi > b - 1) hi = b - 1
		printf "[%d-%d]", lo, hi }'
}

case_start "allowed answers carry the rate headers of the key's window: burst 3, remaining 2, 1, 0"
t0_us=${EPOCHREALTIME/./}
DP_KEY=$(jq -r .key <<<"$tight") dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_rate_headers 3 "$(remaining_range 3 1 0.5)"
expect_not has_header Retry-After
id1=$(header x-request-id)
DP_KEY=$(jq -r .key <<<"$tight") dp POST /v1/chat/completions "$CHAT"
expect_rate_headers 3 "$(remaining_range 3 2 0.5)"
expect test "$(header x-request-id)" != "$id1"
DP_KEY=$(jq -r .key <<<"$tight") dp POST /v1/chat/completions "$CHAT"
expect_rate_headers 3 "$(remaining_range 3 3 0.5)"
case_end
tight_calls=3

case_start "over the per-second window: 429 request_rate_limit_exceeded, requests_per_second, naming limit and retry time"
for ((i = 0; i < 5; i++)); do
	DP_KEY=$(jq -r .key <<<"$tight") dp POST /v1/chat/completions "$CHAT"
	[ "$STATUS" = 200 ] || break
	tight_calls=$((tight_calls + 1))
done
expect_error 429 request_rate_limit_exceeded requests_per_second null
expect_header Content-Type '^application/json'
expect_match .error.message "$(jq -r .id <<<"$tight")"
expect_match .error.message '(^|[^0-9])3 requests per second'
expect_match .error.message 'burst 3'
expect_match .error.message 'retry after [0-9]+(\.[0-9]+)? ?s'
expect_header Retry-After '^[12]$'
expect_rate_headers 3 0
expect_header X-RateLimit-Reset '^[1-6]$'
case_end

case_start "after waiting Retry-After seconds the key is served again"
sleep "$(header Retry-After || echo 1)"
DP_KEY=$(jq -r .key <<<"$tight") dp POST /v1/chat/completions "$CHAT"
expect_status 200
case_end
tight_calls=$((tight_calls + 1))

case_start "a key with requests_per_minute 5: the minute window is the tightest, 5 allowed (remaining 4..0)"
t0_us=${EPOCHREALTIME/./}
for k in 1 2 3 4 5; do
	DP_KEY=$(jq -r .key <<<"$minute") dp POST /v1/chat/completions "$CHAT"
	expect_status 200
	expect_rate_headers 5 "$(remaining_range 5 "$k" 0.083334)"
done
case_end

# The 6th passes 12 s (one interval of 5 per minute) after the first at the soonest.
case_start "the 6th request in the minute: 429 requests_per_minute naming 5 per minute, Retry-After within 12 s"
DP_KEY=$(jq -r .key <<<"$minute") dp POST /v1/chat/completions "$CHAT"
elapsed=$(((${EPOCHREALTIME/./} - t0_us) / 1000000))
expect_error 429 request_rate_limit_exceeded requests_per_minute null
expect_match .error.message "$(jq -r .id <<<"$minute")"
expect_match .error.message '(^|[^0-9])5 requests per minute'
expect_match .error.message 'retry after [0-9]+(\.[0-9]+)? ?s'
expect_header Retry-After '^[0-9]+$'
ra=$(header Retry-After || echo 0)
expect test "$ra" -le 12
expect test "$ra" -ge "$((12 - elapsed - 1))"
expect_rate_headers 5 0
expect_header X-RateLimit-Reset '^([1-5][0-9]|60)$'
case_end

case_start "a key's limits changed through the admin API apply to its next request (burst 3, then 7)"
DP_KEY=$(jq -r .key <<<"$patched") dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header x-ratelimit-limit-requests '^3$'
api PATCH "/api/v1/keys/$(jq -r .id <<<"$patched")" '{"limits":{"requests_per_second":0.5,"burst":7}}'
expect_status 200
DP_KEY=$(jq -r .key <<<"$patched") dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header x-ratelimit-limit-requests '^7$'
expect_header X-RateLimit-Limit '^7$'
case_end

case_start "a streamed answer carries the rate headers and x-request-id too"
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","stream":true,"max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'
expect_status 200
expect_header x-ratelimit-limit-requests '^2000$'
expect_header X-RateLimit-Remaining '^[0-9]+$'
expect_header x-request-id '^req_'
case_end
good_calls=$((good_calls + 1))

case_start "rate_limits_exceeded_total counts the refusals by window (second, minute)"
api GET /metrics "" ""
expect grep -Eq '^rate_limits_exceeded_total\{window="second"\} [1-9]' <<<"$BODY"
expect grep -Eq '^rate_limits_exceeded_total\{window="minute"\} [1-9]' <<<"$BODY"
case_end

# ---- bad input (the good key) ----

bad() { # STATUS CODE PARAM PATH BODY [CURL_ARGS...]: one bad request and its error
	local status=$1 code=$2 param=$3 path=$4 body=$5
	shift 5
	dp POST "$path" "$body" "$DP_KEY" -- "$@"
	expect_status "$status"
	expect_json .error.type invalid_request_error
	[ "$code" = - ] || expect_json .error.code "$code"
	[ "$param" = - ] || expect_json .error.param "$param"
	expect_jq '.error.message | type == "string" and length > 0'
	expect_header Content-Type '^application/json'
	expect_header x-request-id '^req_'
	# Checked after authentication and the charge: the key's rate headers are there too.
	[ "$status" != 400 ] || expect_header x-ratelimit-limit-requests '^2000$'
	tg_flush
}

case_start "malformed JSON, a body that is not an object, an empty body: 400 invalid_json"
bad 400 invalid_json - /v1/chat/completions '{"model":"gpt-4o-mini","messages":['
bad 400 invalid_json - /v1/chat/completions '["gpt-4o-mini"]'
bad 400 invalid_json - /v1/chat/completions '"text"'
dp POST /v1/chat/completions "" "$DP_KEY" -- -H 'Content-Type: application/json' --data-binary ''
expect_error 400 invalid_request_error invalid_json
case_end

case_start "model missing: 400 missing_field (param model); not a string: 400 invalid_type"
bad 400 missing_field model /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}]}'
bad 400 invalid_type model /v1/chat/completions '{"model":42,"messages":[{"role":"user","content":"hi"}]}'
bad 400 invalid_type model /v1/embeddings '{"model":["text-embedding-3-small"],"input":"hi"}'
case_end

case_start "a model no provider serves: 400 model_not_found"
bad 400 model_not_found - /v1/chat/completions '{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}'
bad 400 model_not_found - /v1/completions '{"model":"no-such-model","prompt":"hi"}'
case_end

case_start "chat without messages, with [] or with a string: 400 naming messages"
bad 400 - messages /v1/chat/completions '{"model":"gpt-4o-mini"}'
bad 400 - messages /v1/chat/completions '{"model":"gpt-4o-mini","messages":[]}'
bad 400 - messages /v1/chat/completions '{"model":"gpt-4o-mini","messages":"hi"}'
case_end

case_start "completions without prompt, embeddings without input: 400 naming the field"
bad 400 - prompt /v1/completions '{"model":"gpt-3.5-turbo"}'
bad 400 - input /v1/embeddings '{"model":"text-embedding-3-small"}'
case_end

case_start "stream not a boolean: 400 invalid_type (param stream)"
bad 400 invalid_type stream /v1/chat/completions '{"model":"gpt-4o-mini","stream":"yes","messages":[{"role":"user","content":"hi"}]}'
bad 400 invalid_type stream /v1/completions '{"model":"gpt-3.5-turbo","stream":1,"prompt":"hi"}'
case_end

case_start "max_tokens negative, fractional or a string: 400 naming max_tokens"
bad 400 - max_tokens /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}'
bad 400 - max_tokens /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":2.5,"messages":[{"role":"user","content":"hi"}]}'
bad 400 invalid_type max_tokens /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":"5","messages":[{"role":"user","content":"hi"}]}'
case_end

big=$(printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$(head -c 5000 /dev/zero | tr '\0' a)")
case_start "a body over data.max_body_bytes (4096): 413 with an OpenAI-style error, chunked or not"
bad 413 - - /v1/chat/completions "$big"
bad 413 - - /v1/chat/completions "$big" -H 'Transfer-Encoding: chunked'
bad 413 - - /v1/embeddings "$big"
case_end

case_start "a non-JSON content type: 415 (text/plain, form-urlencoded)"
CT=text/plain bad 415 - - /v1/chat/completions "$CHAT"
CT=application/x-www-form-urlencoded bad 415 - - /v1/chat/completions "$CHAT"
case_end

case_start "application/json with a charset parameter is JSON: served"
CT='application/json; charset=utf-8' dp POST /v1/chat/completions "$CHAT"
expect_status 200
case_end
good_calls=$((good_calls + 1))

# data.max_header_bytes (8192) is the HTTP library's per-connection buffer: it holds the
# request's headers and then the answer's. Headers that would leave the answer no room are
# refused before the handler (before anything is forwarded), not dropped without a reply.
case_start "request headers of 4 KB are served; of ~6.8 KB (near data.max_header_bytes 8192): 431 headers_too_large"
dp POST /v1/chat/completions "$CHAT" -- -H "X-Pad: $(head -c 4000 /dev/zero | tr '\0' a)"
expect_status 200
dp POST /v1/chat/completions "$CHAT" -- -H "X-Pad: $(head -c 6800 /dev/zero | tr '\0' a)"
expect_error 431 invalid_request_error headers_too_large
expect_match .error.message 'headers too large: the limit is about [0-9]+ bytes'
expect_header Connection '^close'
case_end
good_calls=$((good_calls + 1))

case_start "a key in use is refused once its expires_at has passed: 403 permission_error key_expired"
expect test "$expiring_first" = 200
for ((i = 0; i < 20; i++)); do
	dp POST /v1/chat/completions "$CHAT" "$(jq -r .key <<<"$expiring")"
	[ "$STATUS" = 403 ] && break
	[ "$STATUS" = 200 ] && expiring_calls=$((expiring_calls + 1))
	sleep 0.5
done
expect_error 403 permission_error key_expired
case_end

# ---- nothing refused was forwarded or metered ----

case_start "no refused request reached the upstream: it received only the served calls"
mock_settle
expect test "$(mock_stat .requests.total)" = "$((forwarded_before + good_calls + tight_calls + 2 + 5 + 1 + expiring_calls))"
case_end

case_start "the good key was metered for its $good_calls served calls only, none of its refusals"
BODY=$usage_before
expect_json .requests 0
for ((i = 0; i < good_calls; i++)); do metered gpt-4o-mini 4 2; done
expect_metered chat
case_end

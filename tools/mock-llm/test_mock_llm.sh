#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Self-test of mock-llm against its contract (docs/mock-llm.md): every endpoint and shape, the
# token-count rule, streaming with and without usage, each fault (global and per request),
# the control API, the stats, --api-key and --models, and a clean stop on SIGTERM.
#
#   tools/mock-llm/test_mock_llm.sh PATH/TO/mock-llm
#
# Prints one line per case, "ok - mock-llm: CASE" or "# ..." diagnostics then
# "not ok - mock-llm: CASE", and exits 1 if any case failed. Talks only to 127.0.0.1, bounds
# every curl with --max-time, and on any exit stops the instances it started (by PID) and
# removes its temporary directory. Needs curl, jq and base64.
set -u -o pipefail
export LC_ALL=C
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*' NO_PROXY='*'

MOCK=${1:?usage: test_mock_llm.sh PATH/TO/mock-llm}
[ -x "$MOCK" ] || { echo "not ok - mock-llm: $MOCK is not an executable"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mock-llm-test.XXXXXX") || exit 1
pids=()
failed=0
case_name="" case_fails=0
STATUS="" BODY="" CURL_RC=0 URL="" PID=""

cleanup() {
	local p
	for p in "${pids[@]}"; do
		[ -n "$p" ] && kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		[ -n "$p" ] && stop_pid "$p"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- instances ----

# Waits up to 5 s for PID to exit, then kills it; sets STOP_RC to its exit status.
stop_pid() {
	local p=$1
	STOP_RC=""
	for _ in $(seq 1 50); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	STOP_RC=$?
}

# start NAME ARGS...: starts mock-llm on 127.0.0.1, any port; sets PID and URL.
start() {
	local name=$1
	shift
	"$MOCK" --listen 127.0.0.1:0 --ready-file "$tmp/$name.ready" "$@" 2>>"$tmp/$name.log" &
	PID=$!
	pids+=("$PID")
	for _ in $(seq 1 50); do
		[ -s "$tmp/$name.ready" ] && break
		sleep 0.1
	done
	if [ ! -s "$tmp/$name.ready" ]; then
		sed 's/^/# log: /' "$tmp/$name.log"
		echo "not ok - mock-llm: $name instance starts and writes its ready file"
		exit 1
	fi
	URL="http://$(jq -r .listen "$tmp/$name.ready")"
}

# ---- cases ----

case_start() {
	case_name=$1
	case_fails=0
}

fail() {
	echo "# $*"
	case_fails=$((case_fails + 1))
	return 1
}

case_end() {
	if [ "$case_fails" -eq 0 ]; then
		echo "ok - mock-llm: $case_name"
	else
		echo "# last answer: ${STATUS:-none} $(head -c 600 <<<"$BODY" | tr '\n' ' ')"
		echo "not ok - mock-llm: $case_name"
		failed=$((failed + 1))
	fi
}

# ---- requests ----

# call METHOD PATH [BODY [CURL_ARGS...]]: one bounded request. Sets STATUS, BODY, CURL_RC;
# response headers in $tmp/headers, timings in TTFB and TOTAL.
call() {
	local method=$1 path=$2 body=${3-} out
	shift $(($# < 3 ? $# : 3))
	local args=(-s -m 5 -X "$method" -o "$tmp/body" -D "$tmp/headers"
		-w '%{http_code} %{time_starttransfer} %{time_total}')
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	: >"$tmp/body"
	: >"$tmp/headers"
	out=$(curl "${args[@]}" "$@" "$URL$path")
	CURL_RC=$?
	read -r STATUS TTFB TOTAL <<<"$out"
	BODY=$(cat "$tmp/body")
}

# header NAME: the value of response header NAME (case-insensitive), or nothing.
header() {
	tr -d '\r' <"$tmp/headers" | awk -v n="$1" -F': ' \
		'tolower($1) == tolower(n) { print $2 }' | tail -n 1
}

expect_status() {
	[ "$STATUS" = "$1" ] || fail "expected status $1, got ${STATUS:-none} (curl exit $CURL_RC)"
}

# expect_json FILTER VALUE: jq -r FILTER on the last body prints VALUE.
expect_json() {
	local got
	got=$(jq -r "$1" <<<"$BODY" 2>&1)
	[ "$got" = "$2" ] || fail "expected $1 = '$2', got '$got'"
}

# expect_jq [JQ_ARGS...] FILTER: the filter holds on the last body.
expect_jq() {
	jq -e "$@" >/dev/null 2>&1 <<<"$BODY" || fail "expected the body to satisfy: ${!#}"
}

expect_header() { # NAME VALUE ("" means absent)
	local got
	got=$(header "$1")
	[ "$got" = "$2" ] || fail "expected header $1 '$2', got '$got'"
}

# expect_at_least WHAT GOT MIN (decimals): a lower bound only; no case relies on an upper one.
expect_at_least() {
	awk -v g="$2" -v m="$3" 'BEGIN { exit !(g + 0 >= m + 0) }' ||
		fail "expected $1 >= $3, got $2"
}

expect_error() { # STATUS TYPE CODE
	expect_status "$1"
	expect_json .error.type "$2"
	expect_json .error.code "$3"
	expect_jq '.error.message | type == "string" and length > 0'
	expect_jq '.error | has("param")'
}

put_config() {
	call PUT /_mock/config "$1"
	[ "$STATUS" = 200 ] || fail "PUT /_mock/config $1 answered $STATUS"
}

reset() {
	call POST /_mock/reset
	[ "$STATUS" = 200 ] || fail "POST /_mock/reset answered $STATUS"
}

stat_of() { # FILTER: one value of GET /_mock/stats
	curl -s -m 5 "$URL/_mock/stats" | jq -r "$1"
}

# The data: payloads of an SSE body, one per line.
sse_data() {
	sed -n 's/^data: //p' <<<"$BODY"
}

# chat [MEMBER...]: a chat request for gpt-4o-mini (13 prompt tokens) plus JSON members.
chat() {
	local extra="" m
	for m in "$@"; do
		[ -n "$m" ] && extra+=",$m"
	done
	printf '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},%s]%s}' \
		'{"role":"user","content":"hello world"}' "$extra"
}

# wait_stat FILTER VALUE: polls the stats (up to 3 s) until FILTER prints VALUE. Stream ends
# are counted when the server lets go of the response, a moment after the client has all.
wait_stat() {
	for _ in $(seq 1 30); do
		[ "$(stat_of "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "expected stats $1 = $2, got $(stat_of "$1")"
}

# ---- the default instance ----

start main
main_pid=$PID

case_start "ready file names the pid and the 127.0.0.1 port it serves on"
BODY=$(cat "$tmp/main.ready")
expect_json .pid "$main_pid"
expect_jq '.listen | test("^127\\.0\\.0\\.1:[0-9]+$")'
case_end

case_start "GET /v1/models lists the four default models"
call GET /v1/models
expect_status 200
expect_json .object list
expect_json '[.data[].id] | join(",")' "gpt-4o-mini,gpt-4o,gpt-3.5-turbo,text-embedding-3-small"
expect_jq 'all(.data[]; .object == "model" and (.created | type) == "number" and .owned_by == "mock-llm")'
case_end

case_start "GET /v1/models/{id} answers one model, and 404 model_not_found for another"
call GET /v1/models/gpt-4o
expect_status 200
expect_json .id gpt-4o
call GET /v1/models/gpt-9
expect_error 404 invalid_request_error model_not_found
case_end

# The rule: prompt = sum of ceil(bytes/4) over message contents + 3 per message;
# "You are terse." is 14 bytes (4 tokens), "hello world" 11 (3): 4 + 3 + 2*3 = 13.
case_start "chat completion: OpenAI shape, 13 prompt tokens by the rule, 16 completion tokens, stop"
call POST /v1/chat/completions "$(chat)"
expect_status 200
expect_header Content-Type application/json
expect_jq '.id | test("^chatcmpl-[0-9]+$")'
expect_json .object chat.completion
expect_json .model gpt-4o-mini
expect_jq '.created | type == "number" and . > 1600000000'
expect_json '.choices | length' 1
expect_json .choices[0].index 0
expect_json .choices[0].message.role assistant
expect_json .choices[0].message.content "$(seq -f 'tok%g' 1 16 | paste -sd ' ')"
expect_json .choices[0].finish_reason stop
expect_json '.usage | "\(.prompt_tokens) \(.completion_tokens) \(.total_tokens)"' "13 16 29"
case_end

case_start "chat completion with max_tokens 5: 5 words, finish_reason length"
call POST /v1/chat/completions "$(chat '"max_tokens":5')"
expect_status 200
expect_json .choices[0].message.content "tok1 tok2 tok3 tok4 tok5"
expect_json .choices[0].finish_reason length
expect_json '.usage | "\(.prompt_tokens) \(.completion_tokens) \(.total_tokens)"' "13 5 18"
case_end

case_start "max_tokens above 4096 is capped at 4096; max_completion_tokens wins over max_tokens"
call POST /v1/chat/completions "$(chat '"max_tokens":100000')"
expect_json .usage.completion_tokens 4096
expect_json '.choices[0].message.content | split(" ") | length' 4096
call POST /v1/chat/completions "$(chat '"max_tokens":9' '"max_completion_tokens":2')"
expect_json .usage.completion_tokens 2
case_end

case_start "content as an array of parts counts each text part; null content counts 0"
call POST /v1/chat/completions '{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"a"}]},{"role":"assistant","content":null}]}'
expect_status 200
expect_json .usage.prompt_tokens 9
case_end

case_start "text completion: prompt string or array, text_completion shape and usage"
call POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"abcde","max_tokens":3}'
expect_status 200
expect_jq '.id | test("^cmpl-[0-9]+$")'
expect_json .object text_completion
expect_json .choices[0].text "tok1 tok2 tok3"
expect_json .choices[0].finish_reason length
expect_json '.usage | "\(.prompt_tokens) \(.completion_tokens) \(.total_tokens)"' "2 3 5"
call POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":["abcde","x",""]}'
expect_json '.usage | "\(.prompt_tokens) \(.completion_tokens)"' "3 16"
expect_json .choices[0].finish_reason stop
case_end

case_start "embeddings: 8 floats per input, the same input gives the same vector, usage 2+2+2"
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":["hello","world!!!","hello"]}'
expect_status 200
expect_json .object list
expect_json .model text-embedding-3-small
expect_json '[.data[] | .object, .index] | join(",")' "embedding,0,embedding,1,embedding,2"
expect_jq 'all(.data[]; (.embedding | length) == 8 and all(.embedding[]; type == "number"))'
expect_jq '.data[0].embedding == .data[2].embedding and .data[0].embedding != .data[1].embedding'
expect_json '.usage | "\(.prompt_tokens) \(.total_tokens)"' "6 6"
first=$(jq -c .data[0].embedding <<<"$BODY")
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":"hello"}'
expect_json '.data[0].embedding | tostring' "$first"
expect_json .usage.prompt_tokens 2
case_end

case_start "embeddings with encoding_format base64: 32 bytes (8 float32) per input"
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":"hello","encoding_format":"base64"}'
expect_status 200
n=$(jq -r .data[0].embedding <<<"$BODY" | base64 -d 2>/dev/null | wc -c)
[ "$n" = 32 ] || fail "expected 32 decoded bytes, got $n"
case_end

case_start "unknown model: 404 model_not_found"
call POST /v1/chat/completions '{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}'
expect_error 404 invalid_request_error model_not_found
case_end

case_start "malformed JSON and missing fields: 400 invalid_request_error naming the param"
call POST /v1/chat/completions '{"model":"gpt-4o","messages":['
expect_error 400 invalid_request_error null
call POST /v1/chat/completions '{"model":"gpt-4o"}'
expect_error 400 invalid_request_error null
expect_json .error.param messages
call POST /v1/chat/completions "$(chat '"max_tokens":0')"
expect_status 400
expect_json .error.param max_tokens
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":[1,2]}'
expect_status 400
expect_json .error.param input
case_end

case_start "unknown path: 404 unknown_url; wrong method: 405"
call GET /v1/nothing
expect_error 404 invalid_request_error unknown_url
call GET /v1/chat/completions
expect_error 405 invalid_request_error method_not_allowed
case_end

case_start "request body over 4 MiB: 413"
head -c 4200000 /dev/zero | tr '\0' a >"$tmp/big"
call POST /v1/chat/completions "" --data-binary @"$tmp/big"
expect_error 413 invalid_request_error request_too_large
case_end

case_start "stream: one chunk per token, then finish_reason, then [DONE] last, no usage chunk"
call POST /v1/chat/completions "$(chat '"max_tokens":4' '"stream":true')"
expect_status 200
expect_header Content-Type text/event-stream
events=$(sse_data)
[ "$(tail -n 1 <<<"$events")" = "[DONE]" ] || fail "last event is not [DONE]"
chunks=$(grep -v '^\[DONE\]$' <<<"$events" | jq -s -c .)
BODY=$chunks
expect_json length 5
expect_jq 'all(.[]; .object == "chat.completion.chunk" and (.id | test("^chatcmpl-")) and .model == "gpt-4o-mini")'
expect_jq '(map(.id) | unique | length) == 1'
expect_json '[.[:4][] | .choices[0].delta.content] | join("")' "tok1 tok2 tok3 tok4"
expect_json '.[0].choices[0].delta.role' assistant
expect_json '[.[:4][] | .choices[0].finish_reason] | unique | .[0]' null
expect_json '.[4].choices[0].finish_reason' length
expect_jq 'all(.[]; has("usage") | not)'
case_end

case_start "stream with include_usage: a usage chunk with choices [] just before [DONE]"
call POST /v1/chat/completions "$(chat '"stream":true,"stream_options":{"include_usage":true}')"
expect_status 200
events=$(sse_data)
[ "$(tail -n 1 <<<"$events")" = "[DONE]" ] || fail "last event is not [DONE]"
BODY=$(grep -v '^\[DONE\]$' <<<"$events" | jq -s -c .)
expect_json length 18
expect_json '.[16].choices[0].finish_reason' stop
expect_json '.[17].choices | length' 0
expect_json '.[17].usage | "\(.prompt_tokens) \(.completion_tokens) \(.total_tokens)"' "13 16 29"
expect_json '[.[:17][] | select(has("usage"))] | length' 0
case_end

case_start "text completion stream: text_completion chunks, finish chunk, [DONE]"
call POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"hi","max_tokens":2,"stream":true}'
expect_status 200
events=$(sse_data)
[ "$(tail -n 1 <<<"$events")" = "[DONE]" ] || fail "last event is not [DONE]"
BODY=$(grep -v '^\[DONE\]$' <<<"$events" | jq -s -c .)
expect_json length 3
expect_jq 'all(.[]; .object == "text_completion")'
expect_json '[.[] | .choices[0].text] | join("")' "tok1 tok2"
expect_json '.[2].choices[0].finish_reason' length
case_end

case_start "x-mock-token-ms spaces streamed tokens (4 tokens at 150 ms: at least 0.45 s)"
call POST /v1/chat/completions "$(chat '"max_tokens":4' '"stream":true')" -H 'x-mock-token-ms: 150'
expect_status 200
expect_at_least "stream duration" "$TOTAL" 0.45
[ "$(sse_data | tail -n 1)" = "[DONE]" ] || fail "last event is not [DONE]"
case_end

case_start "x-mock-latency-ms and config latency_ms delay the first byte"
call GET /v1/models "" -H 'x-mock-latency-ms: 300'
expect_status 200
expect_at_least "time to first byte" "$TTFB" 0.3
put_config '{"latency_ms":300}'
call POST /v1/chat/completions "$(chat)"
expect_status 200
expect_at_least "time to first byte" "$TTFB" 0.3
reset
case_end

case_start "fail_status 429 with fail_count 2 and retry_after: two 429s with Retry-After, then 200"
put_config '{"fail_status":429,"fail_count":2,"retry_after":3}'
for _ in 1 2; do
	call POST /v1/chat/completions "$(chat)"
	expect_error 429 requests rate_limit_exceeded
	expect_header Retry-After 3
done
call POST /v1/chat/completions "$(chat)"
expect_status 200
call GET /_mock/config
expect_json .fail_count 0
reset
case_end

case_start "fail_status 503 alone fails every request until reset"
put_config '{"fail_status":503,"retry_after":1}'
expect_json .fail_count -1
for _ in 1 2 3; do
	call GET /v1/models
	expect_error 503 server_error null
	expect_header Retry-After 1
done
reset
call GET /v1/models
expect_status 200
case_end

case_start "fail_status 500: server_error and no Retry-After even with retry_after set"
put_config '{"fail_status":500,"fail_count":1,"retry_after":5}'
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":"x"}'
expect_error 500 server_error null
expect_header Retry-After ""
reset
case_end

case_start "x-mock-status and x-mock-retry-after fault one request only"
call POST /v1/chat/completions "$(chat)" -H 'x-mock-status: 429' -H 'x-mock-retry-after: 9'
expect_error 429 requests rate_limit_exceeded
expect_header Retry-After 9
call POST /v1/chat/completions "$(chat)" -H 'x-mock-status: 502'
expect_error 502 server_error null
call POST /v1/chat/completions "$(chat)"
expect_status 200
case_end

case_start "a malformed x-mock header: 400 naming the header"
call POST /v1/chat/completions "$(chat)" -H 'x-mock-status: 42x'
expect_status 400
expect_json .error.param x-mock-status
case_end

# curl exit 18: the transfer closed with data outstanding (the chunked body never ended).
case_start "x-mock-disconnect-after-tokens 2: the stream is cut after 2 chunks, no [DONE]"
call POST /v1/chat/completions "$(chat '"stream":true')" -N -H 'x-mock-disconnect-after-tokens: 2'
[ "$CURL_RC" = 18 ] || fail "expected curl exit 18 (truncated transfer), got $CURL_RC"
expect_status 200
[ "$(sse_data | wc -l)" = 2 ] || fail "expected 2 events, got $(sse_data | wc -l)"
sse_data | grep -q DONE && fail "got [DONE]"
case_end

case_start "disconnect_after_tokens in the config cuts every stream after N tokens"
put_config '{"disconnect_after_tokens":3}'
call POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"hi","stream":true}'
[ "$CURL_RC" = 18 ] || fail "expected curl exit 18 (truncated transfer), got $CURL_RC"
[ "$(sse_data | wc -l)" = 3 ] || fail "expected 3 events, got $(sse_data | wc -l)"
call POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"hi"}'
expect_status 200
reset
case_end

case_start "hang: no byte comes back (curl --max-time 1 times out); reset releases the request"
put_config '{"hang":true}'
out=$(curl -s -m 1 -o /dev/null -w '%{http_code} %{size_download}' "$URL/v1/models")
rc=$?
[ "$rc" = 28 ] || fail "expected curl exit 28 (timeout), got $rc"
[ "$out" = "000 0" ] || fail "expected no status and no byte, got '$out'"
wait_stat .hung_in_flight 1
reset
wait_stat .hung_in_flight 0
case_end

# curl exit 52: the server closed the connection without a reply.
case_start "turning hang off closes the held requests unanswered (curl sees an empty reply)"
put_config '{"hang":true}'
curl -s -m 5 -o /dev/null "$URL/v1/models" &
cpid=$!
wait_stat .hung_in_flight 1
put_config '{"hang":false}'
wait "$cpid"
rc=$?
[ "$rc" = 52 ] || fail "expected curl exit 52 (empty reply), got $rc"
reset
case_end

case_start "PUT /_mock/config: bad input is a 400 that changes nothing; GET shows the config"
call GET /_mock/config
before=$BODY
call PUT /_mock/config '{"latency_ms":5,"bogus":1}'
expect_error 400 invalid_request_error invalid_config
call PUT /_mock/config '{"fail_status":200}'
expect_status 400
call PUT /_mock/config '{"token_ms":-1}'
expect_status 400
call PUT /_mock/config '[1]'
expect_status 400
call GET /_mock/config
[ "$BODY" = "$before" ] || fail "config changed: $before -> $BODY"
expect_json 'keys | join(",")' "disconnect_after_tokens,fail_count,fail_status,hang,latency_ms,retry_after,token_ms"
put_config '{"token_ms":1,"disconnect_after_tokens":null}'
expect_json '"\(.token_ms) \(.disconnect_after_tokens)"' "1 -1"
reset
expect_json .token_ms 0
case_end

case_start "stats count requests by endpoint, faults, tokens sent and streams; reset zeroes them"
reset
call POST /v1/chat/completions "$(chat '"max_tokens":3')"
call POST /v1/chat/completions "$(chat '"max_tokens":2' '"stream":true')"
call POST /v1/completions '{"model":"gpt-4o","prompt":"abcd","max_tokens":4}'
call POST /v1/embeddings '{"model":"text-embedding-3-small","input":"abcd"}'
call GET /v1/models
call GET /v1/models "" -H 'x-mock-status: 500'
call POST /v1/chat/completions "$(chat '"max_tokens":5' '"stream":true')" -H 'x-mock-disconnect-after-tokens: 1'
wait_stat .streams_in_flight 0
call GET /_mock/stats
expect_json '.requests | "\(.total) \(.chat_completions) \(.completions) \(.embeddings) \(.models) \(.other)"' "7 3 1 1 2 0"
expect_json '.responses | "\(."2xx") \(."4xx") \(."5xx")"' "6 0 1"
expect_json '"\(.faults_injected) \(.faults.status) \(.faults.hang) \(.faults.disconnect)"' "2 1 0 1"
# 3 + 2 + 4 tokens, plus the one chunk sent before the disconnect
expect_json .completion_tokens_sent 10
# 13 + 13 + 1 + 1 + 13
expect_json .prompt_tokens 41
expect_json '"\(.streams_started) \(.streams_completed) \(.streams_aborted) \(.streams_in_flight)"' "2 1 1 0"
reset
call GET /_mock/stats
expect_json '.requests.total' 0
expect_json .completion_tokens_sent 0
case_end

case_start "SIGTERM stops mock-llm cleanly: exit status 0 and the ready file removed"
kill -TERM "$main_pid"
stop_pid "$main_pid"
pids=("${pids[@]/$main_pid/}")
[ "$STOP_RC" = 0 ] || fail "expected exit status 0, got $STOP_RC"
[ -e "$tmp/main.ready" ] && fail "ready file still there"
case_end

# ---- --api-key, --models, and flags as the reset target ----

start keyed --api-key sk-test-123 --models alpha,beta --latency-ms 5 --token-ms 2

case_start "--api-key: no key or a wrong key is 401 invalid_api_key; the right key passes"
call GET /v1/models
expect_error 401 invalid_request_error invalid_api_key
call POST /v1/chat/completions '{"model":"alpha","messages":[{"content":"x"}]}' -H 'Authorization: Bearer wrong'
expect_error 401 invalid_request_error invalid_api_key
call POST /v1/chat/completions '{"model":"alpha","messages":[{"content":"x"}]}' -H 'Authorization: Bearer sk-test-123'
expect_status 200
expect_json .usage.prompt_tokens 4
call GET /_mock/stats
expect_json .unauthorized 2
case_end

case_start "--api-key: an unauthorized request consumes no fail_count"
put_config '{"fail_status":429,"fail_count":1}'
call GET /v1/models
expect_status 401
call GET /v1/models "" -H 'Authorization: Bearer sk-test-123'
expect_status 429
case_end

case_start "--models replaces the list; reset returns to the flags' latency and token spacing"
call GET /v1/models "" -H 'Authorization: Bearer sk-test-123'
expect_json '[.data[].id] | join(",")' "alpha,beta"
call POST /v1/chat/completions '{"model":"gpt-4o","messages":[{"content":"x"}]}' -H 'Authorization: Bearer sk-test-123'
expect_error 404 invalid_request_error model_not_found
put_config '{"latency_ms":0,"token_ms":0}'
reset
expect_json '"\(.latency_ms) \(.token_ms) \(.fail_status) \(.hang)"' "5 2 0 false"
case_end

[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves a provider spoken to over HTTP/2 ("http": "2"; here the built-in one through
# upstream.http, README "Configuration"): in front of mock-llm sits an HTTP/2 server (nginx,
# tools/h2-front.sh, TLS with a certificate made for the test, trusted through
# upstream.ca_file). A plain call and a stream are answered and metered exactly as over
# HTTP/1.1; many concurrent streams share a few connections (the front's log names the
# connection of each request: at most one per listener loop, far fewer than the calls); the
# provider's 500 and a stream cut mid-way come back as over HTTP/1.1; without the CA file the
# certificate is not trusted and the call is a 502 that says so.
. "$(dirname "$0")/lib.sh"

command -v nginx >/dev/null && command -v openssl >/dev/null ||
	bail "nginx and openssl are installed (make deps)"
tg_start_mock || bail "mock-llm starts"
MOCK_HOSTPORT=${MOCK_URL#http://}

# the HTTP/2 front, stopped by PID whatever happens
FRONT_DIR=$tmp/front FRONT_PID=""
front_stop() { # nginx's master ends its worker on TERM
	[ -n "$FRONT_PID" ] && kill -TERM "$FRONT_PID" 2>/dev/null && wait "$FRONT_PID" 2>/dev/null
	FRONT_PID=""
}
tg_cleanup_hooks+=(front_stop)
FRONT=127.0.0.1:$(tg_closed_port)
"$TG_TOP/tools/h2-front.sh" "$FRONT" "$MOCK_HOSTPORT" "$FRONT_DIR" >"$tmp/front.out" 2>&1 &
FRONT_PID=$!
for ((i = 0; i < 100; i++)); do
	curl -s -o /dev/null --max-time 1 --cacert "$FRONT_DIR/cert.pem" "https://$FRONT/v1/models" && break
	sleep 0.05
done
[ "$(curl -s -o /dev/null -w '%{http_version}' --cacert "$FRONT_DIR/cert.pem" "https://$FRONT/v1/models")" = 2 ] ||
	bail "the HTTP/2 front answers over HTTP/2 ($(tail -n 3 "$tmp/front.out" "$FRONT_DIR/error.log" 2>/dev/null))"

tg_start_gateway --set "upstream.default_url=https://$FRONT/v1" --set upstream.http=2 \
	--set "upstream.ca_file=$FRONT_DIR/cert.pem" ||
	bail "tollgated starts with the built-in provider on HTTP/2 behind the front"
DP_KEY=$(new_key '{"name":"h2","owner":"team:h2","service":"h2","tier":"enterprise"}' |
	jq -er .key) || bail "the admin creates an API key"
CHAT='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hello world"}]}'
STREAM='{"model":"gpt-4o-mini","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hello world"}]}'
front_requests() { grep -c . "$FRONT_DIR/access.log" 2>/dev/null || echo 0; }

case_start "GET /api/v1/providers shows the built-in provider on HTTP/2"
api GET /api/v1/providers
expect_status 200
expect_json '.data[0].http' 2
case_end

case_start "a plain call is answered over HTTP/2 with the upstream's usage"
n0=$(front_requests)
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_json .usage.completion_tokens 3
expect_json .usage.prompt_tokens 6
expect test "$(front_requests)" = $((n0 + 1))
expect test "$(tail -n 1 "$FRONT_DIR/access.log" | cut -d' ' -f1)" = HTTP/2.0
case_end
metered gpt-4o-mini 6 3

case_start "a stream over HTTP/2: every token, [DONE] last, metered from the upstream's usage"
dp POST /v1/chat/completions "$STREAM"
expect_status 200
expect test "$DP_RC" = 0
BODY=$(sse_json)
expect_json '.[-1]' '[DONE]'
expect_jq '[.[] | objects | .choices[]? | .delta.content // empty] | join("") == "tok1 tok2 tok3 tok4"'
case_end
metered gpt-4o-mini 6 4

N=40
case_start "$N concurrent streams all complete, over at most one connection per listener loop"
n0=$(front_requests) cpids=()
for ((i = 0; i < N; i++)); do
	curl -sS -N --max-time 30 -H "Authorization: Bearer $DP_KEY" -H 'Content-Type: application/json' \
		--data-binary "$STREAM" -o "$tmp/s.$i" "$TG_DATA_URL/v1/chat/completions" 2>/dev/null &
	cpids+=($!)
done
wait "${cpids[@]}" # not a bare wait: the front runs in the background too
done_n=0
for ((i = 0; i < N; i++)); do
	grep -q '^data: \[DONE\]' "$tmp/s.$i" && grep -q 'tok4' "$tmp/s.$i" && done_n=$((done_n + 1))
	metered gpt-4o-mini 6 4
done
expect test "$done_n" = "$N"
expect test "$(front_requests)" = $((n0 + N))
conns=$(tail -n "$N" "$FRONT_DIR/access.log" | awk '$1 == "HTTP/2.0" {print $2}' | sort -u | wc -l)
loops=$(cat /proc/"$TG_PID"/task/*/comm | grep -c '^data-[0-9]*$')
echo "# $N streams over $conns HTTP/2 connection(s); $loops listener loops"
expect test "$conns" -ge 1
expect test "$conns" -le "$loops"
case_end

case_start "every one of them is metered: requests, tokens and cost are the sum"
expect_metered h2
case_end

case_start "the provider's 500 comes back as a 500 over HTTP/2 too"
mock_config '{"fail_status":500,"fail_count":1,"retry_after":0}'
dp POST /v1/chat/completions "$CHAT"
expect_status 500
expect_match .error.message 'injected by mock-llm'
case_end
metered gpt-4o-mini 0 0 500

case_start "a stream cut by the provider after 2 tokens: the 2 tokens, then an SSE error event, then at most [DONE]"
mock_config '{"disconnect_after_tokens":2}'
dp POST /v1/chat/completions "$STREAM"
mock_config '{"disconnect_after_tokens":-1}'
expect_status 200
BODY=$(sse_json)
expect_jq '[.[] | objects | .choices[]? | .delta.content // empty] | join("") == "tok1 tok2"'
expect_jq '[.[] | objects | select(.error != null)] | length == 1'
expect_jq '(map(type == "object" and .error != null) | index(true)) as $e |
	$e != null and all(.[$e + 1:][]; . == "[DONE]")'
case_end

tg_stop_daemon
case_start "without the CA file the front's certificate is not trusted: 502 naming the provider"
tg_start_gateway --set "upstream.default_url=https://$FRONT/v1" --set upstream.http=2 ||
	fail "tollgated starts without upstream.ca_file"
DP_KEY=$(new_key '{"name":"h2b","owner":"team:h2","service":"h2","tier":"enterprise"}' | jq -er .key)
dp POST /v1/chat/completions "$CHAT"
expect_status 502
expect_match .error.message 'mock'
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves streaming through the data plane (docs/data-plane.md, "Streams") and its metering:
# with "stream": true the client gets the upstream's server-sent events in order, the deltas
# joining into the upstream's text and [DONE] last; without stream_options.include_usage it
# never sees a usage-only chunk (tollgate asks the upstream for one and strips it), with it
# the usage chunk comes just before [DONE]; chat and text completions alike. Whatever the
# client asked, every stream is metered with the exact token counts of the upstream's usage
# (not an estimate, never zero) and priced from the default price table, and concurrent
# streams are each read to their end and metered once.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
DP_KEY=$(new_key '{"name":"streams","owner":"team:dp","service":"stream","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"

# "hello world": 3 tokens + 3 for the message = 6 prompt tokens.
chat_stream() { # MAX_TOKENS [EXTRA_MEMBERS]
	printf '{"model":"gpt-4o-mini","stream":true,"max_tokens":%d,%s"messages":[{"role":"user","content":"hello world"}]}' \
		"$1" "${2:+$2,}"
}
joined_chat='[.[] | objects | .choices[]? | .delta.content // empty] | join("")'
no_usage_chunk='all(.[] | objects; (.choices != []) and ((.usage // null) == null))'

case_start "a chat stream without include_usage: 4 token chunks, the closing chunk, [DONE]; no usage chunk"
dp POST /v1/chat/completions "$(chat_stream 4)"
expect_status 200
expect test "$DP_RC" = 0
expect_header Content-Type '^text/event-stream'
expect_header x-request-id '^req_'
BODY=$(sse_json)
expect_json length 6
expect_json '.[-1]' '[DONE]'
expect_jq "$no_usage_chunk"
expect_jq 'all(.[0:5][]; .object == "chat.completion.chunk")'
expect_jq "$joined_chat == \"tok1 tok2 tok3 tok4\""
expect_json '.[4].choices[0].finish_reason' length
expect_jq '[.[0:5][] | .id] | unique | length == 1'
case_end
metered gpt-4o-mini 6 4

case_start "that stream is metered with the upstream's exact usage (6 + 4 tokens), not zero, not an estimate"
expect_metered stream
case_end

case_start "a chat stream with include_usage: the usage chunk (choices [], 6 + 4) comes just before [DONE]"
dp POST /v1/chat/completions "$(chat_stream 4 '"stream_options":{"include_usage":true}')"
expect_status 200
expect test "$DP_RC" = 0
BODY=$(sse_json)
expect_json length 7
expect_json '.[-1]' '[DONE]'
expect_jq '.[5].choices == [] and .[5].usage == {"prompt_tokens":6,"completion_tokens":4,"total_tokens":10}'
expect_jq '[.[0:5][] | select(.usage != null)] == []'
expect_jq "$joined_chat == \"tok1 tok2 tok3 tok4\""
case_end
metered gpt-4o-mini 6 4

case_start "include_usage false is the same as leaving it out: no usage chunk"
dp POST /v1/chat/completions "$(chat_stream 2 '"stream_options":{"include_usage":false}')"
expect_status 200
BODY=$(sse_json)
expect_json length 4
expect_json '.[-1]' '[DONE]'
expect_jq "$no_usage_chunk"
case_end
metered gpt-4o-mini 6 2

case_start "both streams are metered exactly too"
expect_metered stream
case_end

case_start "a one-token stream is metered as one completion token"
dp POST /v1/chat/completions "$(chat_stream 1)"
expect_status 200
BODY=$(sse_json)
expect_json length 3
expect_json '.[-1]' '[DONE]'
case_end
metered gpt-4o-mini 6 1

# An HTTP/1.0 client cannot take chunks: the body is read through the stream response's
# small block (256 bytes) and ends at the connection's close; 12 tokens are ~2 KB of events,
# so events are split across reads and must still arrive whole and in order.
case_start "an HTTP/1.0 client gets the same stream, unchunked, ending at the close"
dp POST /v1/chat/completions "$(chat_stream 12)" -- --http1.0
expect_status 200
expect test "$DP_RC" = 0
expect_header Content-Type '^text/event-stream'
expect test "$(tr -d '\r' <"$HEADERS" | grep -ci '^transfer-encoding:')" = 0
BODY=$(sse_json)
expect_json length 14
expect_json '.[-1]' '[DONE]'
expect_jq "$no_usage_chunk"
expect_jq "$joined_chat == \"$(seq -f 'tok%g' -s ' ' 1 12)\""
case_end
metered gpt-4o-mini 6 12

# "abcdefgh": 8 bytes, 2 tokens.
case_start "a text-completion stream: text chunks joining into the upstream's text, [DONE] last, no usage chunk"
dp POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"abcdefgh","max_tokens":3,"stream":true}'
expect_status 200
expect_header Content-Type '^text/event-stream'
BODY=$(sse_json)
expect_json length 5
expect_json '.[-1]' '[DONE]'
expect_jq "$no_usage_chunk"
expect_jq '[.[] | objects | .choices[0].text] | join("") == "tok1 tok2 tok3"'
expect_json '.[3].choices[0].finish_reason' length
case_end
metered gpt-3.5-turbo 2 3

case_start "a text-completion stream with include_usage ends with the usage chunk (2 + 3) and [DONE]"
dp POST /v1/completions '{"model":"gpt-3.5-turbo","prompt":"abcdefgh","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}'
expect_status 200
BODY=$(sse_json)
expect_json length 6
expect_json '.[-1]' '[DONE]'
expect_jq '.[4].choices == [] and .[4].usage == {"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}'
case_end
metered gpt-3.5-turbo 2 3

case_start "chat and text streams of two models are metered with each model's price"
expect_metered stream
case_end

# Eight streams at once, 5 tokens 20 ms apart, half of them asking for usage.
n=8 pids=()
mock_config '{"token_ms":20}' || bail "the mock takes token_ms"
for ((i = 0; i < n; i++)); do
	extra=""
	((i % 2)) && extra='"stream_options":{"include_usage":true}'
	curl -sS --max-time 20 -H "Authorization: Bearer $DP_KEY" -H 'Content-Type: application/json' \
		--data-binary "$(chat_stream 5 "$extra")" -o "$tmp/par.$i" -w '%{http_code}' \
		"$TG_DATA_URL/v1/chat/completions" >"$tmp/par.$i.status" 2>"$tmp/par.$i.err" &
	pids+=($!)
done
wait "${pids[@]}"
mock_config '{"token_ms":0}'
for ((i = 0; i < n; i++)); do metered gpt-4o-mini 6 5; done

case_start "$n concurrent streams each get all their events and [DONE]; only those that asked see usage"
for ((i = 0; i < n; i++)); do
	BODY=$(cat "$tmp/par.$i")
	tg_last_request="concurrent stream $i"
	expect test "$(cat "$tmp/par.$i.status")" = 200
	BODY=$(sse_json)
	expect_json '.[-1]' '[DONE]'
	expect_jq "$joined_chat == \"tok1 tok2 tok3 tok4 tok5\""
	if ((i % 2)); then
		expect_json length 8
		expect_jq '.[6].usage == {"prompt_tokens":6,"completion_tokens":5,"total_tokens":11}'
	else
		expect_json length 7
		expect_jq "$no_usage_chunk"
	fi
	tg_flush
done
case_end

case_start "the upstream saw every stream through to [DONE]: none aborted"
mock_settle || fail "the mock still has streams in flight after 10 s"
BODY=$(mock_stats)
expect_json .streams_started "$((n + 7))"
expect_json .streams_completed "$((n + 7))"
expect_json .streams_aborted 0
case_end

case_start "the concurrent streams are metered once each, exactly ($m_calls calls in all)"
expect_metered stream
expect_json .error_rate 0
case_end

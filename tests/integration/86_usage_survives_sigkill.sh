#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves invariant 6 (no metered usage is lost; docs/data-plane.md "Metering"): every call
# whose answer the client fully received has its usage record committed, even when tollgated
# is killed with SIGKILL right after the last answer. Plain calls, streams (read to [DONE]),
# embeddings and consumes, sequential and concurrent, then kill -9 at once, a new start on
# the same store, and GET /api/v1/usage shows every call with its exact tokens and cost;
# twice over, so the second daemon's records survive as well as the first's.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
DP_KEY=$(new_key '{"name":"durable","owner":"team:d","service":"durable","tier":"enterprise"}' |
	jq -r .key) || bail "the admin creates an API key"

CHAT='{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hello world"}]}'
STREAM='{"model":"gpt-4o-mini","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"hello world"}]}'

# One round: 12 sequential calls of four kinds, each checked as fully received, then 8
# concurrent plain calls and streams, then SIGKILL the moment the last answer is in.
round() {
	local i pids=() ok=0

	for ((i = 0; i < 3; i++)); do
		dp POST /v1/chat/completions "$CHAT"
		[ "$STATUS" = 200 ] && [ "$DP_RC" = 0 ] && ok=$((ok + 1)) && metered gpt-4o-mini 6 5
		dp POST /v1/chat/completions "$STREAM"
		[ "$STATUS" = 200 ] && [ "$DP_RC" = 0 ] && [ "$(sse_data | tail -n 1)" = "[DONE]" ] &&
			ok=$((ok + 1)) && metered gpt-4o-mini 6 4
		dp POST /v1/embeddings '{"model":"text-embedding-3-small","input":["abcd","efgh"]}'
		[ "$STATUS" = 200 ] && [ "$DP_RC" = 0 ] && ok=$((ok + 1)) && metered text-embedding-3-small 2 0
		dp POST /api/v1/consume/durable '{"prompt":"hello world","max_tokens":3}'
		[ "$STATUS" = 200 ] && [ "$DP_RC" = 0 ] && ok=$((ok + 1)) &&
			metered gpt-4o-mini "$(jq .usage.prompt_tokens <<<"$BODY")" 3
	done
	for ((i = 0; i < 8; i++)); do
		local body=$CHAT
		((i % 2)) && body=$STREAM
		curl -sS --max-time 10 -H "Authorization: Bearer $DP_KEY" -H 'Content-Type: application/json' \
			--data-binary "$body" -o "$tmp/c.$i" -w '%{http_code}' \
			"$TG_DATA_URL/v1/chat/completions" >"$tmp/c.$i.status" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
	tg_kill_daemon
	for ((i = 0; i < 8; i++)); do
		[ "$(cat "$tmp/c.$i.status")" = 200 ] || continue
		if ((i % 2)); then
			tail -c 20 "$tmp/c.$i" | grep -q 'data: \[DONE\]' || continue
			metered gpt-4o-mini 6 4
		else
			jq -e '.usage.total_tokens == 11' "$tmp/c.$i" >/dev/null || continue
			metered gpt-4o-mini 6 5
		fi
		ok=$((ok + 1))
	done
	ROUND_OK=$ok
}

for r in 1 2; do
	before=$m_calls
	round
	case_start "round $r: the calls were answered in full before the SIGKILL ($ROUND_OK of 20)"
	expect test "$ROUND_OK" = 20
	expect test "$TG_EXIT" = 137
	case_end

	case_start "round $r: after SIGKILL and a new start on the same store, usage shows all $m_calls calls exactly"
	tg_start_gateway || fail "tollgated did not start again on the same store"
	expect test "$((m_calls - before))" = "$ROUND_OK"
	expect_metered durable
	case_end
done

case_start "the quota after the kills counts every token too"
dp GET /api/v1/quota/durable
expect_status 200
expect_json .used "$((m_prompt + m_completion))"
case_end

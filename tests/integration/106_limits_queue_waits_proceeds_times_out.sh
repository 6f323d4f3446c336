#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the queue enforcement action (issue 5): a call over a key's max_concurrent or
# tokens_per_minute whose action is queue waits - its connection parked, no thread held -
# and proceeds once the call in flight settles (200 with X-Tollgate-Queued-Ms); waiters of a
# key beyond limits.queue_depth are refused at once with a 429 that says so; a waiter still
# without capacity after limits.queue_timeout_ms gets the limit's 429, which says how long
# it waited; the metrics count queue, queue_timeout and the limit hits. The mock's latency
# keeps the first call in flight (4-6 s) until the next ones are seen queued or refused;
# every wait is bounded and no duration is asserted (the timeout case waits 0.3 s against a
# call that lasts 6 s).
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway --set limits.queue_timeout_ms=30000 --set limits.queue_depth=2 ||
	bail "tollgated starts (queue timeout 30 s, depth 2)"

CHAT='{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
LONG=$(printf 'x%.0s' $(seq 400))
CHATLONG='{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"'$LONG'"}]}'

metric() { # SERIES: its value on /metrics (0 when absent)
	curl -sS --max-time 5 "$TG_URL/metrics" |
		awk -v s="$1" 'index($0, s " ") == 1 { v = $2 } END { print v + 0 }'
}
# Waits up to 20 s until SERIES reaches N.
wait_metric() { # SERIES N
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(metric "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# Waits up to 20 s until the mock has N chat calls in total.
wait_mock_calls() { # N
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(mock_stat .requests.chat_completions)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

bg_pids=()
# bg_call NAME KEY BODY: a chat call in the background; status, headers and body in $tmp/bg.NAME.*
bg_call() {
	curl -sS --max-time 40 -o "$tmp/bg.$1.body" -D "$tmp/bg.$1.hdr" -w '%{http_code}' \
		-H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
		--data-binary "$3" "$TG_DATA_URL/v1/chat/completions" >"$tmp/bg.$1.status" 2>/dev/null &
	bg_pids+=("$!")
}
bg_wait() { # NAME...: waits for those calls (each bounded by curl's --max-time)
	local p
	for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null; done
	bg_pids=()
}
bg_kill() { # cleanup: the background calls still running (by PID)
	local p
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
}
tg_cleanup_hooks+=(bg_kill)
bg_status() { cat "$tmp/bg.$1.status" 2>/dev/null; }
bg_header() { tr -d '\r' <"$tmp/bg.$1.hdr" | grep -i "^$2:" | tail -n 1 | cut -d' ' -f2-; }

key_with() { # NAME LIMITS_JSON: a new key of team:queue with those limits; prints the key
	new_key "{\"name\":\"$1\",\"owner\":\"team:queue\",\"service\":\"q\",\"tier\":\"enterprise\",\"limits\":$2}" |
		jq -er .key
}

K1=$(key_with conc '{"max_concurrent":1,"action":"queue"}') || bail "a key with max_concurrent 1, action queue"

# Each case keeps the first call at the mock for seconds (long enough under any load for the
# next calls to queue behind it, which the queue metric confirms before anything is
# asserted), then takes the mock's latency away so the waiters finish at once.
case_start "over max_concurrent, a call waits and proceeds when the call in flight settles"
mock_config '{"latency_ms":4000}'
q0=$(metric 'tollgate_enforcement_actions_total{action="queue"}')
bg_call first "$K1" "$CHAT"
expect wait_mock_calls 1
bg_call second "$K1" "$CHAT"
expect wait_metric 'tollgate_enforcement_actions_total{action="queue"}' $((q0 + 1))
mock_config '{"latency_ms":0}'
bg_wait
expect test "$(bg_status first)" = 200
expect test "$(bg_status second)" = 200
expect test -n "$(bg_header second X-Tollgate-Queued-Ms)"
expect test -z "$(bg_header first X-Tollgate-Queued-Ms)"
expect test "$(metric 'tollgate_limit_hits_total{limit="max_concurrent",action="queue"}')" -ge 1
case_end

case_start "beyond limits.queue_depth (2) a call is refused at once, the waiters proceed in turn"
mock_config '{"latency_ms":4000}'
q0=$(metric 'tollgate_enforcement_actions_total{action="queue"}')
bg_call d1 "$K1" "$CHAT"
expect wait_mock_calls 3
bg_call d2 "$K1" "$CHAT"
expect wait_metric 'tollgate_enforcement_actions_total{action="queue"}' $((q0 + 1))
bg_call d3 "$K1" "$CHAT"
expect wait_metric 'tollgate_enforcement_actions_total{action="queue"}' $((q0 + 2))
dp POST /v1/chat/completions "$CHAT" "$K1"
expect_error 429 rate_limit_exceeded max_concurrent
expect_match .error.message 'max_concurrent'
expect_match .error.message 'not queued: key [a-z0-9]{12} has 2 calls waiting already'
expect_header Retry-After '^[0-9]+$'
mock_config '{"latency_ms":0}'
bg_wait
expect test "$(bg_status d1)" = 200
expect test "$(bg_status d2)" = 200
expect test "$(bg_status d3)" = 200
expect test -n "$(bg_header d3 X-Tollgate-Queued-Ms)"
case_end

K2=$(key_with tpm '{"tokens_per_minute":700,"action":"queue"}') || bail "a key with tokens_per_minute 700, action queue"

case_start "over tokens_per_minute, a call waits for the reservation in flight to settle"
# a call reserves its 400 bytes of text (every token is at least a byte) plus max_tokens
# 5: two (over 800) do not fit in 700; the first settles to what it used (400 bytes are
# about 100 tokens by the mock's rule) and then the second fits, in this minute or the next
mock_config '{"latency_ms":4000}'
n0=$(mock_stat .requests.chat_completions)
q0=$(metric 'tollgate_enforcement_actions_total{action="queue"}')
bg_call t1 "$K2" "$CHATLONG"
expect wait_mock_calls $((n0 + 1))
bg_call t2 "$K2" "$CHATLONG"
expect wait_metric 'tollgate_enforcement_actions_total{action="queue"}' $((q0 + 1))
mock_config '{"latency_ms":0}'
bg_wait
expect test "$(bg_status t1)" = 200
expect test "$(bg_status t2)" = 200
expect test -n "$(bg_header t2 X-Tollgate-Queued-Ms)"
expect test "$(bg_header t2 x-ratelimit-limit-tokens)" = 700
expect test "$(metric 'tollgate_limit_hits_total{limit="tokens_per_minute",action="queue"}')" -ge 1
case_end

mock_config '{"latency_ms":0}'
tg_stop_daemon
tg_start_gateway --set limits.queue_timeout_ms=300 || bail "tollgated restarts (queue timeout 0.3 s)"

case_start "after limits.queue_timeout_ms a waiter gets the limit's 429 saying it waited"
mock_config '{"latency_ms":6000}'
t0=$(metric 'tollgate_enforcement_actions_total{action="queue_timeout"}')
n0=$(mock_stat .requests.chat_completions)
bg_call long "$K1" "$CHAT"
expect wait_mock_calls $((n0 + 1))
dp POST /v1/chat/completions "$CHAT" "$K1"
expect_error 429 rate_limit_exceeded max_concurrent
expect_match .error.message 'max_concurrent 1'
expect_match .error.message 'waited [0-9]+ ms in the queue'
expect_header X-Tollgate-Queued-Ms '^[0-9]+$'
expect_header Retry-After '^[0-9]+$'
expect test "$(metric 'tollgate_enforcement_actions_total{action="queue_timeout"}')" -gt "$t0"
expect test "$(metric 'tollgate_limit_hits_total{limit="max_concurrent",action="queue_timeout"}')" -ge 1
bg_wait
expect test "$(bg_status long)" = 200
case_end
mock_config '{"latency_ms":0}'

case_start "a key whose action is block is refused at once, never queued"
K3=$(key_with blk '{"max_concurrent":1}') || fail "a key with max_concurrent 1 (action block)"
mock_config '{"latency_ms":4000}'
q0=$(metric 'tollgate_enforcement_actions_total{action="queue"}')
n0=$(mock_stat .requests.chat_completions)
bg_call b1 "$K3" "$CHAT"
expect wait_mock_calls $((n0 + 1))
dp POST /v1/chat/completions "$CHAT" "$K3"
expect_error 429 rate_limit_exceeded max_concurrent
expect_not header X-Tollgate-Queued-Ms
expect test "$(metric 'tollgate_enforcement_actions_total{action="queue"}')" = "$q0"
mock_config '{"latency_ms":0}'
bg_wait
case_end
mock_config '{"latency_ms":0}'


#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# A key the verification cache does not know yet costs one argon2id hash. That hash runs on
# the data plane's verification pool, never on a listener thread: with a single listener
# thread and a single pool thread, a burst of first-time keys (argon2 made slow on purpose)
# must not hold up a client whose key is cached. Asserted by completion order, not by time:
# the cached client's five sequential calls all finish before the last first-time call does.
# Also: answers that went through the pool are the same as before (200 for a good key, 401
# for a wrong secret or an unknown id, 403 for a revoked key).
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
# argon2 at 32 MiB and 4 passes: each first verification takes a noticeable while
tg_start_gateway --set data.threads=1 --set data.verify_threads=1 \
	--set keys.argon2_m_cost_kib=32768 --set keys.argon2_t_cost=4 ||
	bail "tollgated starts with one listener thread and one verification thread"
spec() { echo "{\"name\":\"$1\",\"owner\":\"team:v\",\"service\":\"v\",\"tier\":\"enterprise\"}"; }
DP_KEY=$(new_key "$(spec cached)" | jq -er .key) || bail "the admin creates the cached client's key"
N=6
for ((i = 0; i < N; i++)); do
	slow_key[i]=$(new_key "$(spec "first$i")" | jq -er .key) ||
		bail "the admin creates first-time key $i"
done
CALL='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'

case_start "a key verified through the pool answers 200, and is cached afterwards"
dp POST /v1/chat/completions "$CALL"
expect_status 200
dp POST /v1/chat/completions "$CALL"
expect_status 200
case_end

# call KEY TAG: one call; appends "TAG STATUS" to the order file when its answer is in
call() {
	local code
	code=$(curl -sS --max-time 60 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" \
		-H 'Content-Type: application/json' --data-binary "$CALL" \
		"$TG_DATA_URL/v1/chat/completions" 2>/dev/null) || code="curl-$?"
	echo "$2 $code" >>"$tmp/order"
}

case_start "a burst of first-time keys does not hold up a cached key on the same listener"
: >"$tmp/order"
pids=()
for ((i = 0; i < N; i++)); do
	call "${slow_key[i]}" "slow$i" &
	pids+=($!)
done
sleep 0.2 # the burst is queued at the pool (each hash takes far longer than this)
for ((i = 0; i < 5; i++)); do call "$DP_KEY" "cached$i"; done
wait "${pids[@]}"
expect test "$(wc -l <"$tmp/order")" -eq $((N + 5))
expect test "$(grep -cv ' 200$' "$tmp/order")" -eq 0 ||
	fail "answers: $(tr '\n' ' ' <"$tmp/order")"
last_cached=$(grep -n '^cached4 ' "$tmp/order" | cut -d: -f1)
last_slow=$(grep -n '^slow' "$tmp/order" | tail -n 1 | cut -d: -f1)
expect test -n "$last_cached" -a -n "$last_slow"
expect test "${last_cached:-99}" -lt "${last_slow:-0}" ||
	fail "completion order: $(tr '\n' ' ' <"$tmp/order")"
case_end

case_start "through the pool: a wrong secret and an unknown id get 401, a revoked key 403"
id=$(cut -d_ -f2 <<<"${slow_key[0]}")
bad="tg_${id}_$(printf 'A%.0s' $(seq 43))"
dp POST /v1/chat/completions "$CALL" "$bad"
expect_error 401 invalid_request_error invalid_api_key
dp POST /v1/chat/completions "$CALL" "tg_AAAAAAAAAAAA_$(printf 'B%.0s' $(seq 43))"
expect_error 401 invalid_request_error invalid_api_key
rev=$(new_key "$(spec revoked)" | jq -r .key)
api DELETE "/api/v1/keys/$(cut -d_ -f2 <<<"$rev")"
dp POST /v1/chat/completions "$CALL" "$rev"
expect_error 403 permission_error key_revoked
case_end

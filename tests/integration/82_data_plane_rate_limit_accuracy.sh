#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves invariant 1 (exact request rates, docs/data-plane.md "Request-rate limits") on the
# data plane under concurrency: a key of the basic tier (10 requests/s, burst 20) flooded for
# about 10 s by four concurrent clients (two over keep-alive connections, two opening a new
# connection per request) gets at most 20 + 10·T requests allowed, T being the measured time
# from before its first request left to after its last answer came (so the bound errs only
# towards allowing more); counted three ways: the 200s the clients saw, the calls the
# upstream received and the calls metered. Meanwhile a second basic key, its burst spent and
# then paced at 9 requests/s (90 % of its rate) over two keep-alive connections taking turns,
# is never refused. Every answer is a 200 or a 429, and only the 200s are forwarded and metered.
. "$(dirname "$0")/lib.sh"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway || bail "tollgated starts with its data plane in front of mock-llm"
flood_key=$(new_key '{"name":"flooded","owner":"team:rl","service":"rl","tier":"basic"}' | jq -r .key) &&
	paced_key=$(new_key '{"name":"paced","owner":"team:rl","service":"rl","tier":"basic"}' | jq -r .key) ||
	bail "the admin creates two basic-tier keys"
api GET "/api/v1/keys/$(cut -d_ -f2 <<<"$flood_key")"
jq -e '.effective_limits | .requests_per_second == 10 and .burst == 20 and .requests_per_minute == 0' \
	<<<"$BODY" >/dev/null || bail "a basic-tier key has 10 requests/s, burst 20, no minute window"

URL=$TG_DATA_URL/v1/chat/completions
# "hi" is 1 token, plus 3 for the message; one completion token.
CALL='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
FLOOD_SEC=10
now_us() { echo "${EPOCHREALTIME/./}"; }

# flood OUT MODE: sends CALL as the flooded key until FLOOD_SEC have passed (at most 400
# rounds), one status per line to OUT, and the time before the first request and after the
# last answer (µs) to OUT.t. MODE keepalive: 25 requests per curl on one connection; new: one
# connection per request.
flood() {
	local out=$1 mode=$2 urls=() i end
	local args=(-sS --max-time 5 -H "Authorization: Bearer $flood_key"
		-H 'Content-Type: application/json' --data-binary "$CALL" -w '%{http_code}\n')

	if [ "$mode" = keepalive ]; then
		for ((i = 0; i < 25; i++)); do urls+=(-o /dev/null "$URL"); done
	else
		urls=(-o /dev/null "$URL")
	fi
	echo "start $(now_us)" >"$out.t"
	end=$(($(now_us) + FLOOD_SEC * 1000000))
	for ((i = 0; i < 400; i++)); do
		[ "$(now_us)" -lt "$end" ] || break
		curl "${args[@]}" "${urls[@]}" >>"$out" 2>>"$out.err"
	done
	echo "end $(now_us)" >>"$out.t"
}

# paced OUT N: N requests as the paced key over one keep-alive connection, 270 a minute
# (4.5/s): curl starts each transfer 222 ms after the one before at the soonest.
paced() {
	local out=$1 urls=() i

	for ((i = 0; i < $2; i++)); do urls+=(-o /dev/null "$URL"); done
	curl -sS --max-time 30 --rate 270/m -H "Authorization: Bearer $paced_key" \
		-H 'Content-Type: application/json' --data-binary "$CALL" -w '%{http_code}\n' \
		"${urls[@]}" >"$out" 2>"$out.err"
}

count() { # STATUS FILE...: how many lines are STATUS
	cat "${@:2}" 2>/dev/null | grep -c "^$1\$"
}

pids=()
for m in keepalive keepalive new new; do
	flood "$tmp/flood.${#pids[@]}" "$m" &
	pids+=($!)
done

# The paced key: its whole burst at once, a second's pause, then 9/s for 8 s.
burst_urls=()
for ((i = 0; i < 20; i++)); do burst_urls+=(-o /dev/null "$URL"); done
curl -sS --max-time 10 -H "Authorization: Bearer $paced_key" -H 'Content-Type: application/json' \
	--data-binary "$CALL" -w '%{http_code}\n' "${burst_urls[@]}" >"$tmp/burst" 2>"$tmp/burst.err"
sleep 1
paced "$tmp/paced.0" 36 &
pids+=($!)
sleep 0.111
paced "$tmp/paced.1" 36 &
pids+=($!)
wait "${pids[@]}"

start=$(cat "$tmp"/flood.*.t | awk '$1 == "start" { print $2 }' | sort -n | head -n 1)
end=$(cat "$tmp"/flood.*.t | awk '$1 == "end" { print $2 }' | sort -n | tail -n 1)
T=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
bound=$(awk -v t="$T" 'BEGIN { b = 20 + 10 * t; print (b == int(b)) ? b : int(b) + 1 }')
flood_ok=$(count 200 "$tmp"/flood.?)
flood_refused=$(count 429 "$tmp"/flood.?)
flood_all=$(cat "$tmp"/flood.? | wc -l)
echo "# flood: $flood_all requests in ${T}s, $flood_ok allowed (bound 20 + 10 x $T -> $bound), $flood_refused refused"

case_start "the flood sent far more than the limit, and every answer was a 200 or a 429"
expect test "$flood_all" -gt "$((bound * 2))"
expect test "$((flood_ok + flood_refused))" = "$flood_all"
expect test "$flood_refused" -gt 0
errs=$(cat "$tmp"/flood.*.err 2>/dev/null | head -c 300)
[ -z "$errs" ] || fail "curl said: $errs"
case_end

case_start "flooded by 4 concurrent clients for ${T}s, the key was allowed at most 20 + 10·T = $bound"
expect test "$flood_ok" -le "$bound"
case_end

case_start "the flood still got its burst and (at least 80 % of) its sustained rate"
expect test "$flood_ok" -ge "$(awk -v t="$T" 'BEGIN { print int(20 + 8 * (t - 1)) }')"
case_end

case_start "the paced key's burst of 20 at once was allowed whole"
expect test "$(count 200 "$tmp/burst")" = 20
case_end

case_start "the paced key at 9 requests/s over two connections was never refused (72 of 72)"
expect test "$(count 200 "$tmp"/paced.?)" = 72
expect test "$(cat "$tmp"/paced.? | wc -l)" = 72
grep -v '^200$' "$tmp"/paced.? | head -n 5 | sed 's/^/refused or failed: /' | while IFS= read -r l; do echo "# $l"; done
case_end

case_start "the upstream received exactly the allowed requests, none of the refused"
mock_settle
expect test "$(mock_stat .requests.chat_completions)" = "$((flood_ok + 20 + 72))"
case_end

# Both buckets full again before their usage is read (each read is a request too).
sleep 2.1
case_start "the flooded key was metered for exactly the $flood_ok allowed calls"
for ((i = 0; i < flood_ok; i++)); do metered gpt-4o-mini 4 1; done
expect_metered rl "$flood_key"
case_end

case_start "the paced key was metered for its 92 calls"
metered_reset
for ((i = 0; i < 92; i++)); do metered gpt-4o-mini 4 1; done
expect_metered rl "$paced_key"
case_end

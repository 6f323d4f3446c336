#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Rungs 1 and 2 of the escalation ladder, end to end on a veth pair between two namespaces:
# an over-limit key's request on a new connection is answered 429 by the kernel (header
# x-tollgate-enforcer: kernel, tg_stats REFUSED grows) while the daemon's request counter
# does not move; on a keep-alive connection the daemon answers the 429s itself and keeps
# the connection until data.close_after_refusals, then says Connection: close, and the
# client's reconnection meets the kernel. A 1 MB POST over the limit reads its 429 (curl
# exit 0). The kernel 429 is a valid HTTP answer in all four TX checksum offload
# combinations of the two veth ends.
#
# Needs root, bpftool, xdp-loader, ethtool, python3; skips without (fails under CI=true).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_net.sh"
. "$(dirname "$0")/lib_kernel.sh"

kern_prereq
kern_setup
# The penalty box (rung 3) is test 92's: here it would never trigger (3600 s of strikes).
kern_start --set data.close_after_refusals=3 --set kernel.penalty_after_sec=3600 || bail "tollgated with the kernel path on"

# one request per 1000 s after a burst of 2: over the limit for the whole script
kern_key '{"name":"k91","owner":"team:k","limits":{"requests_per_second":0.001,"burst":2}}' ||
	bail "creating a key"
DP_KEY=$KEY

case_start "under the limit: the daemon answers (no enforcer header)"
for i in 1 2; do
	kdp GET /v1/models
	expect_status 200
	expect_not header x-tollgate-enforcer
done
case_end

case_start "over the limit on a new connection: the kernel answers 429, the daemon sees nothing"
req0=$(dp_requests)
ref0=$(kern_stat REFUSED)
for i in 1 2 3 4 5; do
	kdp GET /v1/models
	expect_status 429
	expect_header x-tollgate-enforcer '^kernel$'
	expect_header retry-after '^ *[1-9][0-9]*$'
	expect_header connection '^close$'
	expect_json .error.type request_rate_limit_exceeded
	expect_jq '.error.message | test("request")'
done
expect test "$(kern_stat REFUSED)" -ge $((ref0 + 5))
expect test "$(dp_requests)" = "$req0"
case_end

case_start "actions.requests_per_second alert: the kernel passes the key, the daemon answers"
api PATCH "/api/v1/keys/$KEY_ID" '{"actions":{"requests_per_second":"alert"}}'
expect_status 200
req0=$(dp_requests)
ref0=$(kern_stat REFUSED)
for i in 1 2 3; do
	kdp GET /v1/models
	expect_status 429 # the daemon still refuses a request rate; only the kernel stands back
	expect_not header x-tollgate-enforcer
done
expect test "$(kern_stat REFUSED)" = "$ref0"
expect test "$(dp_requests)" -ge $((req0 + 3))
api PATCH "/api/v1/keys/$KEY_ID" '{"actions":{"requests_per_second":null}}'
expect_status 200
kdp GET /v1/models
expect_status 429
expect_header x-tollgate-enforcer '^kernel$'
case_end

# A second key with room for 2, then refused: one curl, six URLs, one keep-alive connection.
kern_key '{"name":"k91b","owner":"team:k","limits":{"requests_per_second":0.001,"burst":2}}' ||
	bail "creating a key"
case_start "keep-alive: the daemon answers 429s on the connection, Connection: close at N, then the kernel"
url=http://$TG_DATA/v1/models
ref0=$(kern_stat REFUSED)
kcurl -sS --max-time 20 -H "Authorization: Bearer $KEY" -D "$tmp/ka.headers" \
	-w '%{http_code} %{num_connects}\n' -o /dev/null "$url" -o /dev/null "$url" -o /dev/null \
	"$url" -o /dev/null "$url" -o /dev/null "$url" -o /dev/null "$url" \
	>"$tmp/ka.out" 2>"$tmp/ka.err"
mapfile -t got <"$tmp/ka.out"
# 200 200 on the first connection, 429 429 429 (the third says close), then a new one: kernel
expect test "${got[*]}" = "200 1 200 0 429 0 429 0 429 0 429 1"
# header blocks, one per answer (split on the status lines)
awk '/^HTTP\//{n++} {print > ("'"$tmp"'/ka.h." n)}' "$tmp/ka.headers"
for n in 3 4 5; do
	expect_not grep -qi '^x-tollgate-enforcer' "$tmp/ka.h.$n"
done
expect_not grep -qi '^connection: *close' "$tmp/ka.h.3"
expect_not grep -qi '^connection: *close' "$tmp/ka.h.4"
expect grep -qi '^connection: *close' "$tmp/ka.h.5"
expect grep -qi '^x-tollgate-enforcer: *kernel' "$tmp/ka.h.6"
expect test "$(kern_stat REFUSED)" = $((ref0 + 1))
[ "$tg_case_fails" -gt 0 ] && echo "# curl printed: ${got[*]}; $(head -c 300 "$tmp/ka.err")"
case_end

case_start "a 1 MB POST over the limit reads its 429 from the kernel (curl exit 0)"
head -c 1000000 /dev/zero | tr '\0' 'a' >"$tmp/big.txt"
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' \
	"$(cat "$tmp/big.txt")" >"$tmp/big.json"
# the body file must be readable from the client namespace: same host, same file system
ref0=$(kern_stat REFUSED)
kdp POST /v1/chat/completions "@$tmp/big.json"
expect test "$DP_RC" = 0
expect_status 429
expect_header x-tollgate-enforcer '^kernel$'
expect test "$(kern_stat REFUSED)" -gt "$ref0"
case_end

for gw in on off; do
	for cl in on off; do
		case_start "TX offload gateway $gw, client $cl: curl reads a valid kernel 429"
		kern_offload "$gw" "$cl" || fail "ethtool -K tx $gw / $cl"
		for i in 1 2 3; do
			kdp GET /v1/models
			expect test "$DP_RC" = 0
			expect_status 429
			expect_header x-tollgate-enforcer '^kernel$'
			expect_json .error.type request_rate_limit_exceeded
		done
		case_end
	done
done
kern_offload on on

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The whole escalation ladder for one client that ignores Retry-After, on a veth pair between
# two namespaces: daemon 429s on its keep-alive connection, Connection: close after
# data.close_after_refusals, kernel 429s on its reconnections, then (refusals above
# kernel.penalty_multiple times the key's rate for kernel.penalty_after_sec seconds) its SYNs
# are dropped by XDP (connect times out, XDP_DROPPED grows, the penalty box lists it), and
# after kernel.penalty_sec it connects again. A client on an allow-listed address flooding
# the same way is never penalised.
#
# Needs root, bpftool, xdp-loader, ethtool, python3; skips without (fails under CI=true).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_net.sh"
. "$(dirname "$0")/lib_kernel.sh"

kern_prereq
kern_setup
ALLOWED_ADDR=10.77.0.3
if [ -z "${TG_CLIENT_SSH:-}" ]; then
	ip -n "$TG_NET_CL_NS" addr add "$ALLOWED_ADDR/24" dev "$KERN_CL_IF" ||
		bail "a second client address"
else
	ALLOWED_ADDR=${TG_CLIENT_ADDR2:?TG_CLIENT_ADDR2: a second address of the client host}
fi
PENALTY_SEC=4
kern_start --set data.close_after_refusals=3 --set kernel.penalty_multiple=2 \
	--set kernel.penalty_after_sec=2 --set kernel.penalty_sec=$PENALTY_SEC \
	--set kernel.allow="$ALLOWED_ADDR/32" || bail "tollgated with the kernel path on"

# 1 request/s, burst 2: a client sending back to back is refused almost always
kern_key '{"name":"k92","owner":"team:k","limits":{"requests_per_second":1,"burst":2}}' ||
	bail "creating a key"

penalty_of() { # ADDRESS: the penalty-box entry of ADDRESS in GET /api/v1/kernel, or null
	local STATUS BODY
	api GET /api/v1/kernel
	jq -c --arg a "$1" '[.penalty_box.data[]? | select(.address == $a)][0]' <<<"$BODY"
}

drop0=$(kern_stat XDP_DROPPED)
pen0=$(kern_stat PENALISED)
kern_in_client timeout 40 "$KPY" "$KCLIENT" escalate "$host" "$port" "$KEY" 25 \
	>"$tmp/esc.json" 2>"$tmp/esc.err"
esc=$(cat "$tmp/esc.json")
echo "# escalation: $esc"

case_start "rung 1: daemon 429s on the keep-alive connection, then Connection: close"
expect jqe '.daemon_429 >= 3 and .daemon_close >= 1' "$esc"
case_end

case_start "rung 2: the reconnecting client gets kernel 429s"
expect jqe '.kernel_429 >= 3 and .t_first_kernel >= .t_first_close' "$esc"
case_end

case_start "rung 3: its SYNs are dropped at the NIC (connect times out), counted, listed"
expect jqe '.timeouts >= 1 and .t_first_timeout > .t_first_kernel' "$esc"
expect test "$(kern_stat XDP_DROPPED)" -gt "$drop0"
expect test "$(kern_stat PENALISED)" -gt "$pen0"
p=$(penalty_of "$KERN_CL_ADDR")
expect jqe '.refusals > 0 and .dropped > 0 and (.until | type == "string")' "$p"
case_end

case_start "while penalised, a new connection from that address times out"
kcurl -sS --connect-timeout 1 --max-time 2 -o /dev/null -H "Authorization: Bearer $KEY" \
	"http://$TG_DATA/v1/models" 2>/dev/null
expect test $? = 28
case_end

case_start "the penalty expires: the address connects again (after kernel.penalty_sec)"
ok=""
for ((i = 0; i < (PENALTY_SEC + 4) * 2; i++)); do
	code=$(kcurl -s --connect-timeout 0.4 --max-time 2 -o /dev/null -w '%{http_code}' \
		-H "Authorization: Bearer $KEY" "http://$TG_DATA/v1/models" 2>/dev/null)
	[[ $code =~ ^(200|429)$ ]] && ok=$code && break
	sleep 0.1
done
expect test -n "$ok"
case_end

case_start "an allow-listed address flooding the same way is never penalised"
drop0=$(kern_stat XDP_DROPPED)
kern_in_client timeout 30 "$KPY" "$KCLIENT" escalate "$host" "$port" "$KEY" 8 "$ALLOWED_ADDR" \
	>"$tmp/allow.json" 2>"$tmp/allow.err"
al=$(cat "$tmp/allow.json")
echo "# allow-listed: $al"
# refused by the kernel (the limit holds), never dropped
expect jqe '.kernel_429 >= 10 and .timeouts == 0' "$al"
expect test "$(penalty_of "$ALLOWED_ADDR")" = null
expect test "$(kern_stat XDP_DROPPED)" = "$drop0"
case_end

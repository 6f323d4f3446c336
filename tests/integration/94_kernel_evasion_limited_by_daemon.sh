#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Evasion attempts against the kernel path are still limited exactly by the daemon, on a
# veth pair between two namespaces. For a key over its limit (which the kernel does refuse
# in a plain request), a request is never allowed when: the key header comes after 2 KB of
# other headers; the request is written in two segments (TCP_NODELAY, a pause between) with
# the split inside the header name or inside the key; header names are in mixed case;
# Authorization comes twice with different keys (either order: the answer is the one the
# daemon gives with the kernel path off); requests are pipelined behind an allowed one. TLS
# bytes pass the kernel (NOT_HTTP grows) and the daemon, not the kernel, answers them.
#
# Needs root, bpftool, xdp-loader, ethtool, python3; skips without (fails under CI=true).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_net.sh"
. "$(dirname "$0")/lib_kernel.sh"

kern_prereq
kern_setup
kern_start --set kernel.penalty_after_sec=3600 || bail "tollgated with the kernel path on"
# over: one request, then over its limit for the whole script; fresh: 1000/s
kern_key '{"name":"over","owner":"team:e","limits":{"requests_per_second":0.001,"burst":1}}' ||
	bail "creating a key"
over=$KEY
kern_key '{"name":"fresh","owner":"team:e","limits":{"requests_per_second":1000,"burst":1000}}' ||
	bail "creating a key"
fresh=$KEY
CRLF='\r\n'
GET="GET /v1/models HTTP/1.1${CRLF}Host: $host${CRLF}"

# raw DELAY_MS PART...: the answers (JSON array) kclient.py read for those writes
raw() {
	kern_in_client timeout 15 "$KPY" "$KCLIENT" raw "$host" "$port" "$@" 2>>"$tmp/raw.err"
}
# statuses and enforcers of an answer list, "429/daemon 200/daemon ..."
answers() { # JSON
	jq -r '[.[] | "\(.status)/\(.enforcer // "daemon")"] | join(" ")' <<<"$1"
}

case_start "the over-limit key: allowed once, then refused by the kernel on a new connection"
a=$(answers "$(raw 0 "${GET}Authorization: Bearer $over${CRLF}${CRLF}")")
expect test "$a" = 200/daemon
a=$(answers "$(raw 0 "${GET}Authorization: Bearer $over${CRLF}${CRLF}")")
expect test "$a" = 429/kernel
case_end

case_start "key header after 2 KB of other headers: refused (by the daemon)"
pad=""
for ((i = 0; i < 20; i++)); do pad+="X-Pad-$i: $(printf '%0100d' 0)${CRLF}"; done
a=$(answers "$(raw 0 "${GET}${pad}Authorization: Bearer $over${CRLF}${CRLF}")")
expect test "$a" = 429/daemon
case_end

case_start "request split across two segments inside the header name: refused"
a=$(answers "$(raw 100 "${GET}Authori" "zation: Bearer $over${CRLF}${CRLF}")")
expect test "$a" = 429/daemon
case_end

case_start "request split across two segments inside the key: refused"
a=$(answers "$(raw 100 "${GET}Authorization: Bearer ${over:0:20}" "${over:20}${CRLF}${CRLF}")")
expect test "$a" = 429/daemon
case_end

case_start "mixed-case header names and scheme: refused (the kernel reads them too)"
for h in "aUtHoRiZaTiOn: bEaReR $over" "X-Api-KEY: $over" "authorization:	Bearer   $over"; do
	a=$(answers "$(raw 0 "${GET}${h}${CRLF}${CRLF}")")
	expect test "$a" = 429/kernel
done
case_end

# What the daemon alone answers for two Authorization headers, asked on a keep-alive
# connection behind an allowed request (the kernel passes requests on accepted connections).
dup() { # FIRST_KEY SECOND_KEY: "200/daemon" or "429/daemon" or ..., new connection
	answers "$(raw 0 "${GET}Authorization: Bearer $1${CRLF}Authorization: Bearer $2${CRLF}${CRLF}")"
}
dup_daemon() { # FIRST_KEY SECOND_KEY: the daemon's own answer (2nd request on a connection)
	answers "$(raw 0 "${GET}Authorization: Bearer $fresh${CRLF}${CRLF}${GET}Authorization: Bearer $1${CRLF}Authorization: Bearer $2${CRLF}${CRLF}")" |
		cut -d' ' -f2
}
case_start "duplicate Authorization headers with different keys: the daemon's answer, either order"
for order in "over fresh" "fresh over"; do
	set -- $order
	set -- "${!1}" "${!2}"
	want=$(dup_daemon "$1" "$2")
	got=$(dup "$1" "$2")
	echo "# duplicate Authorization ($order): daemon alone $want, first request $got"
	expect test -n "$want"
	# the kernel may answer instead of the daemon only with the daemon's status
	expect test "${got%/*}" = "${want%/*}"
done
case_end

case_start "pipelining behind an allowed request: the over-limit ones are refused by the daemon"
r="${GET}Authorization: Bearer $over${CRLF}${CRLF}"
a=$(answers "$(raw 0 "${GET}Authorization: Bearer $fresh${CRLF}${CRLF}${r}${r}")")
expect test "$a" = "200/daemon 429/daemon 429/daemon"
case_end

case_start "TLS bytes pass the kernel (NOT_HTTP) and get no kernel 429"
nh0=$(kern_stat NOT_HTTP)
ref0=$(kern_stat REFUSED)
hello='\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03'
hello+=$(printf '\\x%02x' {1..32})
hello+='\x00\x00\x02\x13\x01\x01\x00'
a=$(answers "$(raw 0 "$hello")")
expect test "$(kern_stat NOT_HTTP)" -gt "$nh0"
expect test "$(kern_stat REFUSED)" = "$ref0"
expect_not grep -q 'kernel\|200' <<<"$a"
case_end

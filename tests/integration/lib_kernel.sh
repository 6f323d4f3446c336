# SPDX-License-Identifier: BSD-2-Clause
# The kernel fast path end to end, sourced after lib.sh and lib_net.sh by the 9x_kernel_*
# scripts: a client and a gateway on two ends of a veth pair (namespaces the script makes),
# mock-llm beside the daemon, tollgated with kernel.mode full (or tc) on its own pin
# directory, and helpers to read what the kernel did (tg_stats, tg_slots, tg_penalty).
#
#   kern_prereq                  skips the script (a failure under CI=true) without root,
#                                bpftool, xdp-loader, nsenter, ethtool or python3
#   kern_setup                   namespaces, mock-llm in the gateway namespace
#   kern_start [ARGS...]         tollgated, kernel.mode ${TG_KERNEL_MODE:-full}, on the veth
#   kern_stat VERDICT            tg_stats[VERDICT] summed over CPUs (VERDICT: REFUSED, ...)
#   kern_key JSON                creates a key; sets KEY (secret) and KEY_ID
#   kcurl ARGS...                curl in the client namespace (client side of the veth)
#   dp_requests                  the data listener's http_requests_total, all labels summed
#   kern_slot_of ID / kern_slot_tats SLOT   a key's slot; its TATs from the pinned tg_slots
#
# Across machines (vagrant/run-tests.sh): with TG_CLIENT_SSH set (an ssh destination for the
# client host) client commands run there over ssh, the gateway is this host on
# TG_GATEWAY_ADDR, its interface TG_GATEWAY_IF, and no namespace is made. mock-llm then runs
# on this host too, on TG_UPSTREAM_ADDR when given (default loopback). That path cannot be
# run on the development machine (no KVM); the namespace path is what tests/run exercises.
# Known gap there: kdp (dp through curl) writes its answer files on the client host.

TG_PIN=/sys/fs/bpf/tollgate-test-$$
TG_KERNEL_MODE=${TG_KERNEL_MODE:-full}
KCLIENT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kclient.py
KEY="" KEY_ID=""

# verdict names of include/tollgate/abi.h (enum tg_verdict), for kern_stat
declare -A kern_verdict=([SEEN]=0 [NOT_TCP]=1 [NOT_PORT]=2 [NO_PAYLOAD]=3 [NOT_HTTP]=4
	[NO_KEY]=5 [UNKNOWN_KEY]=6 [STALE_KEY]=7 [ESTABLISHED]=8 [NO_SOCKET]=9 [UNDER_LIMIT]=10
	[NOT_REFUSABLE]=11 [REFUSED]=12 [ABSORBED]=13 [FRAGMENT]=14 [IPV6_EXT]=15 [GSO]=16
	[MALFORMED]=17 [REPLY_FAILED]=18 [XDP_SEEN]=19 [XDP_DROPPED]=20 [XDP_ALLOWED]=21
	[PENALISED]=22 [MODE_OFF]=23)

kern_pin_cleanup() {
	# whatever a failed case left: our filter, XDP program and pins (the namespaces go next)
	local real=${TG_TOLLGATED_REAL:-$TOLLGATED}

	[ -x "$real" ] && [ -d "$TG_PIN" ] &&
		kern_in_gw "$real" detach --pin-dir "$TG_PIN" >/dev/null 2>&1
	rm -rf "$TG_PIN" 2>/dev/null
	return 0
}

kern_in_gw() {
	if [ -n "${TG_CLIENT_SSH:-}" ]; then
		"$@"
	else
		tg_in_gw "$@"
	fi
}

# A command on the client host: the client namespace here, the client VM over ssh.
kern_in_client() {
	if [ -n "${TG_CLIENT_SSH:-}" ]; then
		ssh -o BatchMode=yes "$TG_CLIENT_SSH" "$(printf '%q ' "$@")"
	else
		tg_in_client "$@"
	fi
}

kern_prereq() {
	local missing="" t

	[ "$(id -u)" = 0 ] || missing="root"
	for t in bpftool xdp-loader nsenter ethtool python3; do
		command -v "$t" >/dev/null || missing="${missing:+$missing, }$t"
	done
	[ -n "$missing" ] || return 0
	if [ "${CI:-}" = true ]; then
		echo "not ok - $TG_SCRIPT: the kernel path cannot be tested: no $missing"
		exit 1
	fi
	skip "kernel fast path" "needs $missing"
	exit 0
}

kern_setup() {
	# the interpreter itself, not a version manager's shim that takes a second to start
	KPY=$(python3 -c 'import sys; print(sys.executable)') || bail "python3"
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || bail "mounting bpffs"
	tg_cleanup_hooks+=(kern_pin_cleanup)
	if [ -n "${TG_CLIENT_SSH:-}" ]; then
		[ -n "${TG_GATEWAY_IF:-}" ] || bail "TG_CLIENT_SSH given without TG_GATEWAY_IF"
		KERN_GW_IF=$TG_GATEWAY_IF
		KERN_CL_ADDR=${TG_CLIENT_ADDR:?TG_CLIENT_ADDR}
		KERN_CL_IF=${TG_CLIENT_IF:-}
	else
		tg_net_setup || bail "network namespaces for the test"
		tg_net_gateway
		KERN_GW_IF=$TG_NET_GW_IF KERN_CL_IF=$TG_NET_CL_IF KERN_CL_ADDR=$TG_NET_CL_ADDR
		# mock-llm beside the daemon, in the gateway namespace
		printf '#!/bin/sh\nexec nsenter --net=/run/netns/%q %q "$@"\n' "$TG_NET_GW_NS" \
			"$MOCK_LLM" >"$tmp/mock-in-ns"
		chmod +x "$tmp/mock-in-ns"
		MOCK_LLM=$tmp/mock-in-ns
	fi
	tg_start_mock || bail "mock-llm"
}

# kern_start [extra tollgated arguments]: the gateway on the pin dir and interface of this
# test; sets host and port of its data listener.
kern_start() {
	TG_KERNEL_MODE=$TG_KERNEL_MODE tg_start_gateway --set kernel.pin_dir="$TG_PIN" \
		--set kernel.interfaces="$KERN_GW_IF" --set data.rate_slots=4096 "$@" || return
	host=${TG_DATA%:*} port=${TG_DATA##*:}
}

# tg_stats[VERDICT] summed over the CPUs (0 when the map cannot be read).
kern_stat() { # VERDICT
	local i=${kern_verdict[$1]}

	bpftool -j map lookup pinned "$TG_PIN/tg_stats" key "$i" 0 0 0 2>/dev/null |
		jq '[.formatted.values[].value] | add // 0' 2>/dev/null || echo 0
}

# Creates an API key; KEY is its secret, KEY_ID its id. 1 if the API refused.
kern_key() { # JSON
	local j

	j=$(new_key "$1") || return 1
	KEY=$(jq -r .key <<<"$j")
	KEY_ID=$(jq -r .id <<<"$j")
}

# curl from the client side; its stdout is what curl prints.
kcurl() {
	kern_in_client curl "$@"
}

# One request from the client to the data plane on a new connection: sets STATUS, BODY and
# the headers in $HEADERS as dp does, and DP_RC.
kdp() { # METHOD PATH [BODY [KEY]] [-- CURL_ARGS...]
	TG_CURL_NS=${TG_NET_CL_NS:-} dp "$@"
}

# http_requests_total of the data listener, every route and code summed (0 when absent).
dp_requests() {
	local STATUS BODY

	api GET /metrics
	awk '/^http_requests_total\{/ && /listener="data"/ { n += $NF } END { print n + 0 }' \
		<<<"$BODY"
}

# The key's slot index in tg_slots, from the admin API.
kern_slot_of() { # KEY_ID
	local STATUS BODY

	api GET "/api/v1/keys/$1"
	jq -er '.slot | numbers' <<<"$BODY"
}

# The windows' TATs of tg_slots[SLOT], read from the pinned map (no daemon needed), one line.
kern_slot_tats() { # SLOT
	local s=$1

	bpftool -j map lookup pinned "$TG_PIN/tg_slots" key $((s & 255)) $(((s >> 8) & 255)) \
		$(((s >> 16) & 255)) $(((s >> 24) & 255)) |
		jq -c '[.formatted.value.win[].tat_ns]'
}

# Sets TX checksum offload on the gateway's and the client's end of the veth.
kern_offload() { # on|off (gateway end) on|off (client end)
	kern_in_gw ethtool -K "$KERN_GW_IF" tx "$1" >/dev/null 2>&1 &&
		kern_in_client ethtool -K "$KERN_CL_IF" tx "$2" >/dev/null 2>&1
}

# The jq FILTER is true of the JSON TEXT (for expect: expect jqe FILTER TEXT).
jqe() { # FILTER TEXT
	jq -e "$1" >/dev/null 2>&1 <<<"$2"
}

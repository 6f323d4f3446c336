# SPDX-License-Identifier: BSD-2-Clause
# Network namespaces for integration tests, sourced after lib.sh: a gateway namespace and a
# client namespace joined by a veth pair, both made by the test and removed when it exits
# (lib.sh's tg_cleanup runs tg_net_teardown after the daemons it started have stopped).
#
#   tg_net_setup                 creates them; sets TG_NET_GW_NS, TG_NET_CL_NS, TG_NET_GW_IF,
#                                TG_NET_CL_IF, TG_NET_GW_ADDR, TG_NET_CL_ADDR
#   tg_net_gateway               makes lib.sh run tollgated, its admin requests (api) and
#                                tollctl inside the gateway namespace, listening on
#                                TG_NET_GW_ADDR (TG_GATEWAY_ADDR)
#   tg_in_gw CMD... / tg_in_client CMD...   run a command in one of the namespaces
#   TG_CURL_NS=$TG_NET_CL_NS dp ...         a data-plane request from the client namespace
#
# Names carry the script's PID, so scripts running at the same time never meet. The
# addresses are private to the namespaces (nothing is routed outside them).

TG_NET_GW_NS=tg-gw-$$
TG_NET_CL_NS=tg-cl-$$
TG_NET_GW_IF=tgg$$
TG_NET_CL_IF=tgc$$
TG_NET_GW_ADDR=10.77.0.1
TG_NET_CL_ADDR=10.77.0.2
tg_net_made=""

# nsenter switches the network namespace only: `ip netns exec` also remounts /sys in a new
# mount namespace, which hides the bpffs at /sys/fs/bpf (pins made there would vanish with
# the process, and the pins of the host would not be seen).
tg_in_gw() {
	nsenter --net="/run/netns/$TG_NET_GW_NS" "$@"
}

tg_in_client() {
	nsenter --net="/run/netns/$TG_NET_CL_NS" "$@"
}

# Creates both namespaces and the veth pair; 1 (having said why) when it cannot.
tg_net_setup() {
	tg_cleanup_hooks+=(tg_net_teardown)
	tg_net_made=1
	ip netns add "$TG_NET_GW_NS" && ip netns add "$TG_NET_CL_NS" &&
		ip link add "$TG_NET_GW_IF" netns "$TG_NET_GW_NS" type veth \
			peer name "$TG_NET_CL_IF" netns "$TG_NET_CL_NS" &&
		ip -n "$TG_NET_GW_NS" addr add "$TG_NET_GW_ADDR/24" dev "$TG_NET_GW_IF" &&
		ip -n "$TG_NET_CL_NS" addr add "$TG_NET_CL_ADDR/24" dev "$TG_NET_CL_IF" &&
		ip -n "$TG_NET_GW_NS" link set lo up && ip -n "$TG_NET_CL_NS" link set lo up &&
		ip -n "$TG_NET_GW_NS" link set "$TG_NET_GW_IF" up &&
		ip -n "$TG_NET_CL_NS" link set "$TG_NET_CL_IF" up || {
		echo "# cannot create the namespaces and veth pair (root and iproute2 needed)"
		return 1
	}
	# the veth comes up asynchronously: wait until both ends say so (no ping needed)
	for ((i = 0; i < 50; i++)); do
		ip -n "$TG_NET_GW_NS" link show "$TG_NET_GW_IF" | grep -q 'state UP' &&
			ip -n "$TG_NET_CL_NS" link show "$TG_NET_CL_IF" | grep -q 'state UP' && return 0
		sleep 0.1
	done
	echo "# the veth pair $TG_NET_GW_IF/$TG_NET_CL_IF did not come up"
	return 1
}

# Removing a namespace removes its end of the veth, and the pair with it.
tg_net_teardown() {
	[ -n "$tg_net_made" ] || return 0
	ip netns del "$TG_NET_GW_NS" 2>/dev/null
	ip netns del "$TG_NET_CL_NS" 2>/dev/null
	tg_net_made=""
}

# From here on, tollgated (and tollctl, and curl for api/dp) run in the gateway namespace,
# unless TG_CURL_NS names another one for a request.
tg_net_gateway() {
	local wrap=$tmp/tollgated-in-ns real=$TOLLGATED

	printf '#!/bin/sh\nexec nsenter --net=/run/netns/%q %q "$@"\n' "$TG_NET_GW_NS" "$real" >"$wrap"
	printf '#!/bin/sh\nexec nsenter --net=/run/netns/%q %q "$@"\n' "$TG_NET_GW_NS" "$TOLLCTL" \
		>"$tmp/tollctl-in-ns"
	chmod +x "$wrap" "$tmp/tollctl-in-ns"
	TOLLGATED=$wrap
	TOLLCTL=$tmp/tollctl-in-ns
	TG_TOLLGATED_REAL=$real
	TG_GATEWAY_ADDR=$TG_NET_GW_ADDR
	TG_GATEWAY_HOST=$TG_NET_GW_ADDR
}

# curl as api and dp call it: inside the namespace of the request.
curl() {
	if [ -n "${TG_CURL_NS:-}" ]; then
		nsenter --net="/run/netns/$TG_CURL_NS" curl "$@"
	elif [ -n "${TG_TOLLGATED_REAL:-}" ]; then
		tg_in_gw curl "$@"
	else
		command curl "$@"
	fi
}

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The kernel loader on a veth pair between two namespaces this script makes: with
# kernel.mode=full the daemon pins BTF-typed maps under its own pin directory and attaches
# TC ingress and XDP to the gateway's veth; tg_keys follows key creation and revocation;
# programs and maps outlive the daemon; a restart adopts the maps without stacking programs
# and keeps the slots' rate state (a key flooded to its limit is still refused right after);
# pinned maps of another ABI version are migrated (a log line says so), never reused;
# `tollgated detach` leaves no pin, no filter, no XDP program, and says so twice; an
# explicit mode whose interface does not exist is a start-up error naming it.
#
# Needs root, bpffs and bpftool. Without them it skips, except under CI=true, where the
# missing kernel path is a failure (the kernel path is the product).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_net.sh"

TG_PIN=/sys/fs/bpf/tollgate-test-$$
pin_cleanup() {
	# whatever a failed case left: our filter, XDP program and pins (the namespaces go next)
	[ -x "${TG_TOLLGATED_REAL:-}" ] && [ -d "$TG_PIN" ] &&
		tg_in_gw "$TG_TOLLGATED_REAL" detach --pin-dir "$TG_PIN" \
			>/dev/null 2>&1
	rm -rf "$TG_PIN" 2>/dev/null
	return 0
}
tg_cleanup_hooks+=(pin_cleanup)

missing=""
[ "$(id -u)" = 0 ] || missing="root"
command -v bpftool >/dev/null || missing="${missing:+$missing, }bpftool"
command -v xdp-loader >/dev/null || missing="${missing:+$missing, }xdp-loader (xdp-tools)"
command -v nsenter >/dev/null || missing="${missing:+$missing, }nsenter"
if [ -n "$missing" ]; then
	if [ "${CI:-}" = true ]; then
		echo "not ok - $TG_SCRIPT: the kernel path cannot be tested: no $missing"
		exit 1
	fi
	skip "kernel loader" "needs $missing"
	exit 0
fi
tg_net_setup || bail "network namespaces for the test"
tg_net_gateway

start() { # extra tollgated arguments
	TG_KERNEL_MODE=full tg_start_daemon --set kernel.pin_dir="$TG_PIN" \
		--set kernel.interfaces="$TG_NET_GW_IF" --set data.rate_slots=4096 "$@" &&
		TG_DATA=$(jq -er '.data | strings' "$tmp/ready") && TG_DATA_URL=http://$TG_DATA
}

# Lines of the daemon log since the latest start.
log_since_start() {
	awk -v n="$tg_starts" '/^---- start / { s++ } s == n' "$TG_LOG"
}

tc_filters() { # our TC ingress filters on the gateway veth
	tg_in_gw tc filter show dev "$TG_NET_GW_IF" ingress 2>/dev/null | grep -c 'tg_tc_ingress'
}

xdp_progs() { # programs named tg_xdp_penalty on the gateway veth (alone or in a dispatcher)
	tg_in_gw xdp-loader status "$TG_NET_GW_IF" 2>/dev/null | grep -c 'tg_xdp_penalty'
}

le32() { # N: 4 bytes, little-endian, as bpftool wants a key
	echo "$(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $((($1 >> 24) & 255))"
}

keys_entries() {
	bpftool -j map dump pinned "$TG_PIN/tg_keys" | jq length
}

start || bail "tollgated with kernel.mode=full on $TG_NET_GW_IF"

case_start "maps pinned under the pin directory, BTF-typed (bpftool prints field names)"
for m in tg_keys tg_slots tg_config tg_secret tg_stats tg_penalty tg_allow tg_killed; do
	expect test -e "$TG_PIN/$m"
done
bpftool map dump pinned "$TG_PIN/tg_slots" >"$tmp/slots.dump" 2>&1
expect grep -q '"interval_ns"' "$tmp/slots.dump"
expect grep -q '"tat_ns"' "$tmp/slots.dump"
bpftool map dump pinned "$TG_PIN/tg_config" >"$tmp/config.dump" 2>&1
expect grep -q '"abi_version": 2' "$tmp/config.dump"
expect grep -q '"mode": 2' "$tmp/config.dump"
case_end

case_start "programs attached to the gateway veth and pinned: one TC filter, one XDP program"
expect test "$(tc_filters)" = 1
expect test "$(xdp_progs)" = 1
expect test -e "$TG_PIN/tg_tc_ingress"
expect test -e "$TG_PIN/tg_xdp_penalty"
case_end

case_start "GET /api/v1/kernel: mode, ABI, pin directory, interface and how, counters"
api GET /api/v1/kernel
expect_status 200
expect_json .mode full
expect_json .abi_version 2
expect_json .pin_dir "$TG_PIN"
expect_json .maps created
expect_json '.interfaces[0].name' "$TG_NET_GW_IF"
expect_json '.interfaces[0].tc' true
expect_match '.interfaces[0].xdp' '^(native|generic)$'
expect_json '.verdicts | has("refused")' true
expect_json '.penalty_box.entries' 0
case_end

case_start "/metrics has the kernel counters by verdict and the penalty box gauge"
api GET /metrics
expect_status 200
expect grep -q '^tollgate_kernel_packets_total{verdict="refused"} ' <<<"$BODY"
expect grep -q '^tollgate_kernel_penalty_box_entries 0$' <<<"$BODY"
case_end

case_start "tg_keys holds the key's hash after creation and loses it after revocation"
expect test "$(keys_entries)" = 0
key_json=$(new_key '{"name":"kernel","owner":"team:k","tier":"basic","limits":{"requests_per_second":1,"burst":2}}')
key_id=$(jq -r .id <<<"$key_json")
key_slot=$(jq -r .slot <<<"$key_json")
DP_KEY=$(jq -r .key <<<"$key_json")
expect test "$(keys_entries)" = 1
# the entry leads to the key's slot (its "slot" in the admin API), which is active
expect test "$(bpftool -j map dump pinned "$TG_PIN/tg_keys" | jq '.[0].formatted.value.slot')" = "$key_slot"
expect test "$(bpftool -j map lookup pinned "$TG_PIN/tg_slots" key $(le32 "$key_slot") |
	jq '.formatted.value.flags')" = 3
api DELETE "/api/v1/keys/$key_id"
expect_status 200
expect test "$(keys_entries)" = 0
case_end

case_start "a key flooded to its limit from the client namespace is refused"
# one request per 100 s after a burst of 2: still refused after a restart of a few seconds
key_json=$(new_key '{"name":"flood","owner":"team:k","tier":"basic","limits":{"requests_per_second":0.01,"burst":2}}')
DP_KEY=$(jq -r .key <<<"$key_json")
for i in 1 2; do
	TG_CURL_NS=$TG_NET_CL_NS dp GET /v1/models
	expect test "$STATUS" != 429
done
TG_CURL_NS=$TG_NET_CL_NS dp GET /v1/models
expect_status 429
# a new connection over the limit: the listener defers accept, so the TC program saw the
# request while the connection was embryonic and answered it
api GET /api/v1/kernel
expect_jq '.verdicts.refused >= 1'
case_end

tg_stop_daemon
case_start "the daemon stopped: programs stay attached, maps stay pinned"
expect test "$(tc_filters)" = 1
expect test "$(xdp_progs)" = 1
expect test -e "$TG_PIN/tg_slots"
case_end

start || bail "tollgated restarted on the pinned maps"
case_start "a restart adopts the maps and replaces its programs (no second filter or XDP program)"
expect grep -q "adopting the pinned maps under $TG_PIN" <(log_since_start)
api GET /api/v1/kernel
expect_json .maps adopted
expect test "$(tc_filters)" = 1
expect test "$(xdp_progs)" = 1
case_end

case_start "tollctl status shows the mode, maps, interface and attachment, and the penalty box"
ctl status
expect test "$CTL_RC" = 0
expect grep -q '^kernel path: full (ABI version 2)$' <<<"$BODY"
expect grep -q "^maps: adopted under $TG_PIN " <<<"$BODY"
expect grep -Eq "^  $TG_NET_GW_IF  TC ingress, XDP (native|generic)" <<<"$BODY"
expect grep -Eq '^penalty box: [0-9]+ source\(s\)' <<<"$BODY"
case_end

case_start "while it runs, detach is refused and a second daemon cannot take its pin directory"
tg_in_gw "$TG_TOLLGATED_REAL" detach --pin-dir "$TG_PIN" >"$tmp/detach.out" 2>>"$TG_LOG"
expect test $? = 1
expect grep -q "a running tollgated uses it: stop it first" "$tmp/detach.out"
expect test "$(tc_filters)" = 1
expect test -e "$TG_PIN/tg_slots"
first_pid=$TG_PID first_url=$TG_URL
TG_STORE=$tmp/store2 TG_KERNEL_MODE=full tg_start_daemon --set kernel.pin_dir="$TG_PIN" \
	--set kernel.interfaces="$TG_NET_GW_IF" --set data.rate_slots=4096 >/dev/null
tg_stop_daemon
expect test "${TG_EXIT:-0}" != 0
expect grep -q "is used by a running tollgated" <(log_since_start)
TG_PID=$first_pid TG_URL=$first_url
api GET /api/v1/kernel
expect_status 200
case_end

case_start "the heartbeat in tg_config moves once a second"
hb1=$(bpftool -j map lookup pinned "$TG_PIN/tg_config" key 0 0 0 0 | jq '.formatted.value.daemon_heartbeat_ns')
sleep 2.2
hb2=$(bpftool -j map lookup pinned "$TG_PIN/tg_config" key 0 0 0 0 | jq '.formatted.value.daemon_heartbeat_ns')
expect test "$hb2" -gt "$hb1"
case_end

# A penalty-box entry as the programs write it (little-endian bytes): the client's address
# (::ffff:10.77.0.2), 7 refusals, 3 drops, 5 strikes, penalised for 100 s more.
le64() { # N: 8 bytes, little-endian, as bpftool wants them
	local n=$1 i out=""
	for ((i = 0; i < 8; i++)); do out+="$((n & 255)) "; n=$((n >> 8)); done
	echo "$out"
}
until_ns=$(awk '{ printf "%.0f", ($1 + 100) * 1e9 }' /proc/uptime) # ~CLOCK_MONOTONIC + 100 s
bpftool map update pinned "$TG_PIN/tg_penalty" key 0 0 0 0 0 0 0 0 0 0 255 255 10 77 0 2 \
	value $(le64 0) $(le64 "$until_ns") $(le64 7) $(le64 3) 0 0 0 0 5 0 0 0 0 0 0 0 0 0 0 0 ||
	bail "writing a penalty-box entry with bpftool"
case_start "a penalty-box entry shows in the API, tollctl status and /metrics"
api GET /api/v1/kernel
expect_json .penalty_box.entries 1
expect_json '.penalty_box.data[0].address' "$TG_NET_CL_ADDR"
expect_json '.penalty_box.data[0].refusals' 7
expect_json '.penalty_box.data[0].dropped' 3
expect_json '.penalty_box.data[0].strikes' 5
expect_match '.penalty_box.data[0].until' "$TG_TIME_RE"
ctl status
expect grep -Eq "^$TG_NET_CL_ADDR +7 +3 +5 +[0-9]{4}-" <<<"$BODY"
api GET /metrics
expect grep -q '^tollgate_kernel_penalty_box_entries 1$' <<<"$BODY"
api GET '/api/v1/kernel?limit=0'
expect_status 400
case_end
bpftool map delete pinned "$TG_PIN/tg_penalty" key 0 0 0 0 0 0 0 0 0 0 255 255 10 77 0 2

case_start "rate state survived the restart: the flooded key is still refused at once"
TG_CURL_NS=$TG_NET_CL_NS dp GET /v1/models
expect_status 429
# a new connection over the limit: the listener defers accept, so the TC program saw the
# request while the connection was embryonic and answered it
api GET /api/v1/kernel
expect_jq '.verdicts.refused >= 1'
case_end

tg_stop_daemon
# tg_config of another ABI version: bytes 0-3 are abi_version (little-endian), the rest kept
cfg_hex=$(bpftool -j map lookup pinned "$TG_PIN/tg_config" key 0 0 0 0 | jq -r '.value | .[4:] | join(" ")')
bpftool map update pinned "$TG_PIN/tg_config" key 0 0 0 0 value 0x63 0 0 0 $cfg_hex ||
	bail "writing abi_version 99 into the pinned tg_config"
old_id=$(bpftool -j map show pinned "$TG_PIN/tg_config" | jq .id)
start || bail "tollgated on pinned maps of ABI version 99"
case_start "pinned maps of another ABI version are migrated with a log line, not reused"
expect grep -q "ABI version 99, wanted 2" <(log_since_start)
expect grep -q "migrating them to new maps" <(log_since_start)
api GET /api/v1/kernel
expect_json .maps migrated
expect test "$(bpftool -j map show pinned "$TG_PIN/tg_config" | jq .id)" != "$old_id"
bpftool map dump pinned "$TG_PIN/tg_config" >"$tmp/config.dump" 2>&1
expect grep -q '"abi_version": 2' "$tmp/config.dump"
expect test "$(tc_filters)" = 1
case_end
tg_stop_daemon

case_start "tollgated detach removes pins, the TC filter and the XDP program"
tg_in_gw "$TG_TOLLGATED_REAL" detach --pin-dir "$TG_PIN" >"$tmp/detach.out" 2>>"$TG_LOG"
expect test $? = 0
expect_not test -e "$TG_PIN"
expect test "$(tc_filters)" = 0
expect test "$(xdp_progs)" = 0
expect_not grep -q clsact <(tg_in_gw tc qdisc show dev "$TG_NET_GW_IF")
case_end

case_start "detach again: nothing to do, still success"
tg_in_gw "$TG_TOLLGATED_REAL" detach --pin-dir "$TG_PIN" >"$tmp/detach.out" 2>>"$TG_LOG"
expect test $? = 0
expect grep -q "nothing pinned there" "$tmp/detach.out"
case_end

start || bail "tollgated started again after detach"
tg_kill_daemon
rm -rf "$TG_PIN" # the record of attachments is lost with the pins
case_start "pins lost: detach --interfaces still finds our programs by name and removes them"
expect test "$(tc_filters)" = 1
tg_in_gw "$TG_TOLLGATED_REAL" detach --pin-dir "$TG_PIN" --interfaces "$TG_NET_GW_IF" \
	>"$tmp/detach.out" 2>>"$TG_LOG"
expect test $? = 0
expect test "$(tc_filters)" = 0
expect test "$(xdp_progs)" = 0
case_end
tg_in_gw tc qdisc del dev "$TG_NET_GW_IF" clsact 2>/dev/null # left alone by a named detach

case_start "kernel.mode=auto where the kernel path cannot load: runs without it, says why"
TG_KERNEL_MODE=auto tg_start_daemon --set kernel.pin_dir=/proc/tollgate-cannot \
	--set kernel.interfaces="$TG_NET_GW_IF" || fail "tollgated with kernel.mode=auto did not start"
expect grep -q "kernel fast path unavailable" <(log_since_start)
api GET /api/v1/kernel
expect_json .mode off
expect_json '.interfaces | length' 0
expect test "$(tc_filters)" = 0
case_end
tg_stop_daemon

case_start "kernel.mode=tc where the kernel path cannot load: a start-up error"
TG_KERNEL_MODE=tc tg_start_daemon --set kernel.pin_dir=/proc/tollgate-cannot \
	--set kernel.interfaces="$TG_NET_GW_IF" >/dev/null
tg_stop_daemon
expect test "${TG_EXIT:-0}" != 0
expect grep -q "kernel.mode=tc: cannot load the kernel fast path" <(log_since_start)
case_end

case_start "kernel.mode=full on an interface that does not exist: start-up error naming it"
TG_KERNEL_MODE=full tg_start_daemon --set kernel.pin_dir="$TG_PIN" \
	--set kernel.interfaces=nosuch0 >/dev/null
tg_stop_daemon
expect test "${TG_EXIT:-0}" != 0
expect grep -q "no interface 'nosuch0'" <(log_since_start)
expect_not test -e "$TG_PIN/tg_slots"
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# kill -9 of the daemon under load leaves the kernel path in place, on a veth pair between
# two namespaces: while a flood of new connections (an over-limit key, refused by the kernel)
# and a keep-alive client within its limit run, the daemon is killed. With no listener the
# stack resets new connections itself (TCP_DEFER_ACCEPT has nothing to defer to), so what
# can be observed is that the programs stay attached and keep seeing the traffic (tg_stats
# SEEN grows while the daemon is dead), the maps stay pinned, and the slots' state is kept:
# a restarted daemon adopts the maps, every slot's TATs equal what they were at the kill, and
# the over-limit key is refused by the kernel on its very first request after the restart.
#
# Needs root, bpftool, xdp-loader, ethtool, python3; skips without (fails under CI=true).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_net.sh"
. "$(dirname "$0")/lib_kernel.sh"

kern_prereq
kern_setup
kern_start --set kernel.penalty_after_sec=3600 || bail "tollgated with the kernel path on"
kern_key '{"name":"over","owner":"team:x","limits":{"requests_per_second":0.001,"burst":1}}' ||
	bail "creating a key"
over=$KEY over_slot=$(kern_slot_of "$KEY_ID")
kern_key '{"name":"busy","owner":"team:x","limits":{"requests_per_second":50,"burst":50}}' ||
	bail "creating a key"
busy=$KEY busy_slot=$(kern_slot_of "$KEY_ID")
[ -n "$over_slot" ] && [ -n "$busy_slot" ] || bail "the keys' slots in the admin API"

kdp GET /v1/models "" "$over" # its one request: over the limit from now on
tc_filters() {
	tg_in_gw tc filter show dev "$KERN_GW_IF" ingress 2>/dev/null | grep -c 'tg_tc_ingress'
}

ref0=$(kern_stat REFUSED)
busy_tats0=$(kern_slot_tats "$busy_slot")
kern_in_client timeout 20 "$KPY" "$KCLIENT" flood "$host" "$port" "$over" 6 2 close \
	>"$tmp/over.json" 2>&1 &
p1=$!
kern_in_client timeout 20 "$KPY" "$KCLIENT" paced "$host" "$port" "$busy" 6 40 \
	>"$tmp/busy.json" 2>&1 &
p2=$!
# under load: both clients served (the kernel refusing one, the daemon charging the other)
for ((i = 0; i < 100; i++)); do
	[ "$(kern_stat REFUSED)" -gt "$ref0" ] && [ "$(kern_slot_tats "$busy_slot")" != "$busy_tats0" ] &&
		break
	sleep 0.1
done
sleep 0.5
ref1=$(kern_stat REFUSED)
tg_kill_daemon
killed_at_tats="$(kern_slot_tats "$over_slot") $(kern_slot_tats "$busy_slot")"
seen1=$(kern_stat SEEN)
wait "$p1" "$p2"
echo "# before the kill: $(cat "$tmp/over.json") / $(cat "$tmp/busy.json")"

case_start "under load before the kill: the kernel refused the over-limit flood"
expect test "$ref1" -gt "$ref0"
case_end

case_start "the daemon dead: programs attached, maps pinned, traffic still seen by the kernel"
expect test "$TG_EXIT" = 137
expect test "$(tc_filters)" = 1
expect test -e "$TG_PIN/tg_slots"
expect test -e "$TG_PIN/tg_keys"
expect test "$(kern_stat SEEN)" -gt "$seen1"
case_end

case_start "nothing changed the slots while the daemon was dead (TATs as at the kill)"
expect test "$(kern_slot_tats "$over_slot") $(kern_slot_tats "$busy_slot")" = "$killed_at_tats"
case_end

kern_start --set kernel.penalty_after_sec=3600 || bail "tollgated restarted on the pinned maps"
case_start "the restart adopts the maps with nothing lost: same TATs, key still over its limit"
api GET /api/v1/kernel
expect_json .maps adopted
expect test "$(kern_slot_tats "$over_slot") $(kern_slot_tats "$busy_slot")" = "$killed_at_tats"
expect test "$(tc_filters)" = 1
ref2=$(kern_stat REFUSED)
kdp GET /v1/models "" "$over"
expect_status 429
expect_header x-tollgate-enforcer '^kernel$'
expect test "$(kern_stat REFUSED)" = $((ref2 + 1))
case_end

case_start "after the restart the key within its limit is served again"
kdp GET /v1/models "" "$busy"
expect_status 200
case_end

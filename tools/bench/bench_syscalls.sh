#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# System calls per request of tollgated on the data plane's allowed and flood scenarios (the
# same keys, body and load as bench_dataplane.sh's, without nginx): perf counts tollgated's
# system-call tracepoints (syscalls:sys_enter_*, every thread) over a wrk run of BENCH_SEC
# seconds, and each count is divided by the requests wrk completed. Counting tracepoints
# slows tollgated little, unlike strace -c, whose several-fold slowdown changes the path
# itself (an upstream answer is already there when libcurl first looks, so the socket is
# never watched); BENCH_TRACER=strace uses strace -c anyway, e.g. where perf is missing.
#
# usage: tools/bench/bench_syscalls.sh [BUILD_DIR]
# Environment: BENCH_SEC (seconds counted per scenario, default 3), BENCH_SCENARIOS
# ("allowed flood" by default), BENCH_CONNS (wrk connections, default 32), BENCH_TG_ARGS
# (more tollgated arguments). Prints per scenario tollgated's CPU per request (while counted:
# for quick A/Bs of one build against another, not for the nginx comparison) and one line
# per system call:
#   <scenario> <syscall> calls=<n> per_req=<n/requests>
# and a total line (of the calls counted: CALLS below, or all with strace). Run it under the
# shared bench lock like the other benches.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lua=$here/dataplane/post.lua
SEC=${BENCH_SEC:-3}
SCENARIOS=${BENCH_SCENARIOS:-allowed flood}
CONNS=${BENCH_CONNS:-32}
TRACER=${BENCH_TRACER:-perf}
LCPU=0 SCPU=1
TOKEN=tollgate-bench-admin-token-0123456789abcdef
# the calls a forwarded or refused request makes, and the connection churn around them
CALLS="poll epoll_ctl epoll_wait recvfrom sendto sendmsg read write futex accept4 close
shutdown setsockopt getsockopt fcntl connect getrandom msync fdatasync brk mmap munmap"

for t in wrk "$TRACER" taskset jq curl; do
	command -v "$t" >/dev/null || {
		echo "bench_syscalls: $t is not installed" >&2
		exit 1
	}
done

tmp=$(mktemp -d /tmp/bench_syscalls.XXXXXX)
pids=()
BENCH_NAME=bench_syscalls
. "$here/lib.sh"
trap bench_cleanup EXIT
trap 'exit 143' TERM INT HUP

# run NAME KEYS_FILE SECONDS [TRACE]: one wrk run; with TRACE, tollgated's calls counted meanwhile
run() {
	local name=$1 keys=$2 sec=$3 trace=${4:-} spid= ev= c
	if [ -n "$trace" ] && [ "$TRACER" = strace ]; then
		strace -c -f -p "$TG_PID" -o "$tmp/count.$name" 2>"$tmp/count.$name.log" &
		spid=$!
	elif [ -n "$trace" ]; then
		for c in $CALLS; do ev+="${ev:+,}syscalls:sys_enter_$c"; done
		perf stat -x, -e "$ev" -p "$TG_PID" -o "$tmp/count.$name" &
		spid=$!
	fi
	if [ -n "$spid" ]; then
		pids+=("$spid")
		sleep 0.5 # attached to every thread before the load starts
	fi
	local t0 t1
	t0=$(ticks "$TG_PID")
	BENCH_KEYS=$keys BENCH_BODY=$BODY taskset -c $LCPU wrk -t1 -c"$CONNS" -d"${sec}s" \
		--timeout 10s -s "$lua" "http://$TG_DATA" >"$tmp/wrk.$name" 2>&1 || true
	t1=$(ticks "$TG_PID")
	echo $(((t1 - t0) * 1000000 / $(getconf CLK_TCK))) >"$tmp/cpu.$name"
	[ -z "$spid" ] && return 0
	# perf stat writes its counts on SIGINT (SIGTERM kills it silently); strace on either
	kill -INT "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	stop_pid "$spid"
}

# report NAME: the counts divided by the requests of the run
report() {
	local name=$1 line req
	line=$(grep '^RESULT ' "$tmp/wrk.$name") || {
		echo "bench_syscalls: wrk $name failed:" >&2
		cat "$tmp/wrk.$name" >&2
		return 1
	}
	req=$(sed 's/.* requests=\([0-9]*\) .*/\1/' <<<"$line")
	echo "# $name: $req requests in ${SEC}s, counted by $TRACER ($(sed 's/.*status_errors=\([0-9]*\) .*/\1/' <<<"$line") non-2xx), tollgated CPU $(awk -v c="$(cat "$tmp/cpu.$name")" -v r="$req" 'BEGIN {printf "%.1f", c / r}') us per request (while counted)"
	if [ "$TRACER" = strace ]; then
		# strace -c columns: % time, seconds, usecs/call, calls, [errors], syscall
		awk '/^-|^%|total/ {next} NF == 6 || NF == 5 {print $NF, $4}' "$tmp/count.$name"
	else
		# perf stat -x, lines: count,unit,syscalls:sys_enter_NAME,...
		awk -F, '$3 ~ /^syscalls:sys_enter_/ {sub(/^syscalls:sys_enter_/, "", $3); print $3, $1 + 0}' \
			"$tmp/count.$name"
	fi | awk -v n="$name" -v r="$req" '
		{t += $2; if ($2 > 0) printf "%s %s calls=%d per_req=%.2f\n", n, $1, $2, $2 / r}
		END {printf "%s total calls=%d per_req=%.2f\n", n, t, t / r}' | sort -t= -k3 -g -r
}

BODY='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
bench_mock fast --threads 2
bench_tollgated "$tmp/store" --set "data.listen=127.0.0.1:0" \
	--set "upstream.default_url=http://$MOCK_fast/v1" --log-level warn \
	--set "kernel.mode=off" ${BENCH_TG_ARGS:-}
bench_keys 100 enterprise "$tmp/keys.hi"
bench_keys 1 basic "$tmp/keys.lo"
echo "# bench_syscalls: $build at commit $(git -C "$build" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ), tollgated pid $TG_PID, wrk -c$CONNS"
run warm "$tmp/keys.hi" 2 # every key verified once and cached, upstream connections open
for s in $SCENARIOS; do
	case $s in
	allowed) keys=$tmp/keys.hi ;;
	flood) keys=$tmp/keys.lo ;;
	*)
		echo "bench_syscalls: unknown scenario $s (allowed, flood)" >&2
		exit 2
		;;
	esac
	run "$s" "$keys" "$SEC" trace
	report "$s"
done

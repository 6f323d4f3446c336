#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# System calls per request of tollgated on the data plane's allowed and flood scenarios (the
# same keys, body and load as bench_dataplane.sh's, without nginx): strace -c -f attaches to
# tollgated for BENCH_SEC seconds of a wrk run, and each system call's count is divided by
# the requests wrk completed in that time. strace slows tollgated down several times, so the
# requests per second here mean nothing; the counts per request do (each request takes the
# same path, only more slowly).
#
# usage: tools/bench/bench_syscalls.sh [BUILD_DIR]
# Environment: BENCH_SEC (seconds traced per scenario, default 3), BENCH_SCENARIOS
# ("allowed flood" by default), BENCH_CONNS (wrk connections, default 32), BENCH_TG_ARGS
# (more tollgated arguments). Prints per scenario one line per system call:
#   <scenario> <syscall> calls=<n> per_req=<n/requests> errors=<n>
# and a total line. Run it under the shared bench lock like the other benches.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lua=$here/dataplane/post.lua
SEC=${BENCH_SEC:-3}
SCENARIOS=${BENCH_SCENARIOS:-allowed flood}
CONNS=${BENCH_CONNS:-32}
LCPU=0 SCPU=1
TOKEN=tollgate-bench-admin-token-0123456789abcdef

for t in wrk strace taskset jq curl; do
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

# run NAME KEYS_FILE SECONDS [TRACE]: one wrk run; with TRACE, strace -c on tollgated meanwhile
run() {
	local name=$1 keys=$2 sec=$3 trace=${4:-} spid=
	if [ -n "$trace" ]; then
		strace -c -f -p "$TG_PID" -o "$tmp/strace.$name" 2>"$tmp/strace.$name.log" &
		spid=$!
		pids+=("$spid")
		sleep 0.5 # attached to every thread before the load starts
	fi
	BENCH_KEYS=$keys BENCH_BODY=$BODY taskset -c $LCPU wrk -t1 -c"$CONNS" -d"${sec}s" \
		--timeout 10s -s "$lua" "http://$TG_DATA" >"$tmp/wrk.$name" 2>&1 || true
	[ -z "$spid" ] || stop_pid "$spid"
}

# report NAME: the strace summary divided by the requests of the run
report() {
	local name=$1 line req
	line=$(grep '^RESULT ' "$tmp/wrk.$name") || {
		echo "bench_syscalls: wrk $name failed:" >&2
		cat "$tmp/wrk.$name" >&2
		return 1
	}
	req=$(sed 's/.* requests=\([0-9]*\) .*/\1/' <<<"$line")
	echo "# $name: $req requests in ${SEC}s under strace ($(sed 's/.*status_errors=\([0-9]*\) .*/\1/' <<<"$line") non-2xx)"
	# strace -c columns: % time, seconds, usecs/call, calls, [errors], syscall
	awk -v n="$name" -v r="$req" '
		/^-|^%|total/ {next}
		NF == 6 {c = $4; e = $5; s = $6}
		NF == 5 {c = $4; e = 0; s = $5}
		NF == 5 || NF == 6 {t += c; printf "%s %s calls=%d per_req=%.2f errors=%d\n", n, s, c, c / r, e}
		END {printf "%s total calls=%d per_req=%.2f\n", n, t, t / r}' "$tmp/strace.$name" |
		sort -t= -k3 -g -r
}

BODY='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
bench_mock fast --threads 2
bench_tollgated "$tmp/store" --set "data.listen=127.0.0.1:0" \
	--set "upstream.default_url=http://$MOCK_fast/v1" --log-level warn \
	--set "kernel.mode=off" ${BENCH_TG_ARGS:-}
bench_keys 100 enterprise "$tmp/keys.hi"
bench_keys 1 basic "$tmp/keys.lo"
echo "# bench_syscalls: commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ), tollgated pid $TG_PID, wrk -c$CONNS"
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

# SPDX-License-Identifier: BSD-2-Clause
# Process helpers shared by the benchmark scripts (sourced by bench_dataplane.sh and
# bench_kernel.sh). The sourcing script sets BENCH_NAME (for messages) and keeps the PIDs it
# started in the array `pids`, which its cleanup trap stops.

alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

stop_pid() { # PID: SIGTERM, up to 5 s, then SIGKILL; drops PID from pids
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || break
		sleep 0.05
	done
	alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

wait_file() { # FILE PID: up to 10 s for FILE to be non-empty while PID lives
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$1" ] && return 0
		alive "$2" || break
		sleep 0.05
	done
	echo "$BENCH_NAME: $1 did not appear (pid $2)" >&2
	return 1
}

ticks() { # PID...: utime+stime of these processes (all threads), in clock ticks
	local t=0 p f
	for p in "$@"; do
		f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		f=${f##*) }
		set -- $f
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}

nginx_pids() { echo "$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; }

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; } # stdin: numbers
yesno() { awk "BEGIN {exit !($1)}" && echo yes || echo no; }

# bench_cleanup: the EXIT trap of a bench that keeps its processes in pids and its files in
# $tmp: stops every process it started, newest first, by PID, then removes $tmp.
bench_cleanup() {
	local rc=$? i
	trap - EXIT
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[$i]}"
	done
	rm -rf "$tmp"
	exit "$rc"
}

# SPDX-License-Identifier: BSD-2-Clause
# Process helpers shared by the benchmark scripts (sourced by bench_dataplane.sh,
# bench_failover.sh and bench_kernel.sh). The sourcing script sets BENCH_NAME (for
# messages), build (the build directory), tmp (its temporary directory), SCPU (the CPU the
# servers run on) and TOKEN (the admin token its tollgated gets), and keeps the PIDs it
# started in the array `pids`, which its cleanup trap stops. BENCH_RUN, when the script sets
# it, is the command prefix servers and admin calls run under (bench_kernel.sh: nsenter into
# its gateway namespace); empty, they run here.

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

# ---- starting mock-llm and tollgated, creating keys (the block every bench repeated) ----

[ -n "${BENCH_RUN+set}" ] || BENCH_RUN=()

bench_mock() { # NAME [MOCK-LLM ARGS...]: mock-llm on CPU $SCPU; sets MOCK_<NAME> (host:port), MOCK_PID_<NAME>
	local name=$1 pid
	shift
	"${BENCH_RUN[@]}" taskset -c "$SCPU" "$build/mock-llm" --listen 127.0.0.1:0 \
		--ready-file "$tmp/mock.$name.ready" "$@" >/dev/null 2>>"$tmp/mock.$name.log" </dev/null &
	pid=$!
	pids+=("$pid")
	wait_file "$tmp/mock.$name.ready" "$pid"
	printf -v "MOCK_PID_$name" %s "$pid"
	printf -v "MOCK_$name" %s "$(jq -r .listen "$tmp/mock.$name.ready")"
}

# bench_tollgated STORE [TOLLGATED ARGS...]: tollgated on CPU $SCPU with admin token $TOKEN,
# cheap argon2 (keys are made by the hundred), the admin API on 127.0.0.1:0 and its own
# ready file; the caller gives data.listen, the upstream and the rest. Waits until it is
# ready; sets TG_PID, TG_DATA, TG_ADMIN, and tg_n (starts so far: its files are
# $tmp/tg.$tg_n.*). The caller's environment reaches tollgated (TOLLGATE_LIMITS_ENABLED=...).
tg_n=0
bench_tollgated() {
	local store=$1 ready
	shift
	tg_n=$((tg_n + 1))
	ready=$tmp/tg.$tg_n.ready
	"${BENCH_RUN[@]}" env TOLLGATE_ADMIN_TOKEN="$TOKEN" TOLLGATE_KEYS_ARGON2_M_COST_KIB=256 \
		TOLLGATE_KEYS_ARGON2_T_COST=1 TOLLGATE_KEYS_ARGON2_PER_SEC=100000 \
		taskset -c "$SCPU" "$build/tollgated" run --store "$store" --ready-file "$ready" \
		--admin-listen 127.0.0.1:0 "$@" >"$tmp/tg.$tg_n.out" 2>"$tmp/tg.$tg_n.log" </dev/null &
	TG_PID=$!
	pids+=("$TG_PID")
	wait_file "$ready" "$TG_PID" || {
		tail -n 5 "$tmp/tg.$tg_n.log" >&2
		return 1
	}
	TG_DATA=$(jq -r .data "$ready")
	TG_ADMIN=$(jq -r .admin "$ready")
}

bench_key() { # BODY: POST /api/v1/keys with BODY (JSON) to the current tollgated; prints the key
	"${BENCH_RUN[@]}" curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary "$1" \
		"http://$TG_ADMIN/api/v1/keys" | jq -er .key
}

# bench_keys N TIER FILE [LIMITS]: N keys of TIER (owner team:bench, service bench, limits the
# JSON members LIMITS when given), one full key per line in FILE.
bench_keys() {
	local i lim=
	[ -z "${4:-}" ] || lim=",\"limits\":{$4}"
	: >"$3"
	for ((i = 0; i < $1; i++)); do
		bench_key "{\"name\":\"bench-$2-$i\",\"owner\":\"team:bench\",\"service\":\"bench\",\"tier\":\"$2\"$lim}" >>"$3"
	done
}

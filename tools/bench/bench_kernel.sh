#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Kernel fast-path benchmark: tollgated with kernel.mode=full against nginx limit_req, both
# measured in the same run on the same veth pair between two namespaces this script makes
# (client: wrk; gateway: tollgated, mock-llm, nginx). Prints metric lines as tools/bench/run
# does:  metric=<name> value=<v> unit=<u> baseline=<b> ratio=<r> goal=<g> pass=<yes|no|->
# and "# " comment lines with the raw counts behind each.
#
#   1. new_conn_flood: one request per connection (wrk with Connection: close) for a key over
#      its limit. Whole-machine CPU per refusal, tollgate (kernel 429 + RST, TCP_DEFER_ACCEPT)
#      over nginx (limit_req 429, then close). Goal <= 0.5x; the daemon's own CPU near 0.
#   2. noisy_neighbour: 100 keys within their limits (keep-alive wrk, GET /v1/models) with
#      and without one over-limit key flooding new connections beside them: their throughput
#      kept (goal >= 90 %) and p99 growth (goal <= 1.5x), tollgate and nginx side by side.
#      Both wrk share CPU 0; the flooding one runs at nice 19 so that the well-behaved one is
#      not slowed by a faster flood (the kernel refuses ~2x faster than nginx, and a wrk
#      spinning on refusals would take CPU 0 from its neighbour: a client-side artefact).
#      BENCH_NN_FLOOD_CPUS (default "0") lists the CPUs the flooding wrk is run on, one pass
#      each: on CPU 1 it sits with the servers, so everything the flood costs (its client,
#      and the gateway side's receive work, which veth runs in the sender's context) lands
#      on the servers' CPU, as a flood from another machine would, and the neighbours' own
#      client on CPU 0 is not slowed by it; metrics of that pass end in _floodcpu1.
#      That pass has the flood and the neighbours behind ONE client address (the NAT case):
#      tollgated runs it with kernel.penalty_after_sec=3600, so the XDP penalty box never
#      engages (it would hold the neighbours' new connections too). A second pass (metrics
#      ending in _ownaddr, run with BENCH_NN_PASSES containing "ownaddr", the default) has
#      the abuser behind its own address, a second client namespace on a second veth pair,
#      and tollgated restarted with kernel.penalty_after_sec=2 (multiple 2, penalty 120 s),
#      so the whole escalation happens: kernel 429s, then the abuser's SYNs dropped by XDP.
#      The neighbours are measured twice beside that flood: over its first BENCH_SEC s (the
#      flood starts with them: kernel 429s, then the penalty box engaging), metrics
#      *_ownaddr; and over the next BENCH_SEC s, metrics *_ownaddr_penalised for tollgate
#      (the penalty box has engaged: the SYNs it dropped are printed) and *_ownaddr_late
#      for nginx (which has no penalty box: the same flood, later). The abuser's penalty is
#      removed (bpftool) before each run. Each neighbours' run prints both CPUs' busy and
#      softirq shares (/proc/stat, tick-sampled) and its latency distribution.
#      wrk's connections are closed-loop: the faster a server refuses, the larger the flood
#      it gets. BENCH_NN_FLOOD_DELAY_MS paces the flood instead (each of its 32 connections
#      waits that long before each request: about the same refusals per second for both
#      servers); the metrics of a paced run end in _paced.
#   3. keepalive_abuse: a client ignoring Retry-After on keep-alive connections. tollgate:
#      Connection: close after data.close_after_refusals, kernel 429s, then the XDP penalty
#      box drops its SYNs; measured after the escalation (BENCH_WARM s). nginx answers every
#      429. Whole-machine CPU as % of one core (goal < 5 % for tollgate).
#
# CPU accounting (KERNEL-NOTES.md "Measuring"): wrk is pinned to CPU 0, every server to CPU
# 1. veth receive work runs in the sender's context and interrupt time is not accounted
# apart, so "machine minus client" is meaningless here; the figures are whole-machine busy
# time (both CPUs, /proc/stat user+nice+system+irq+softirq) per request, plus each server's
# own utime+stime from /proc/PID/stat. The client's cost is in both sides' figures alike.
#
# usage: tools/bench/bench_kernel.sh [BUILD_DIR]
# Environment: BENCH_SEC (seconds per load run, default 5), BENCH_REPS (runs per figure, the
# median is reported, default 3), BENCH_WARM (seconds of escalation before scenario 3 is
# measured, default 6), BENCH_ONLY (scenarios to run, default "1 2 3"), BENCH_NN_FLOOD_CPUS
# (scenario 2, above), BENCH_NN_FLOOD_DELAY_MS (above), BENCH_NN_PASSES ("nat ownaddr": scenario 2's passes, above),
# BENCH_TG_SET (extra tollgated settings, "name=value ...", for A/B runs of one setting).
# Every load run is bounded (wrk -d, timeout); the trap stops every
# process started here by PID and removes the namespaces, pins and temporary directory.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lua=$here/kernel/get.lua
SEC=${BENCH_SEC:-5}
REPS=${BENCH_REPS:-3}
WARM=${BENCH_WARM:-6}
ONLY=${BENCH_ONLY:-1 2 3}
LCPU=0 SCPU=1
TOKEN=tollgate-bench-admin-token-0123456789abcdef
HZ=$(getconf CLK_TCK)
GW_NS=tgb-gw-$$ CL_NS=tgb-cl-$$ GW_IF=tgbg$$ CL_IF=tgbc$$
GW_ADDR=10.78.0.1 CL_ADDR=10.78.0.2
# the abuser with its own address (scenario 2, pass ownaddr): a second pair and namespace
C2_NS=tgb-c2-$$ GW2_IF=tgbh$$ C2_IF=tgbd$$ GW2_ADDR=10.79.0.1 C2_ADDR=10.79.0.2
PIN=/sys/fs/bpf/tollgate-bench-$$

for t in wrk nginx taskset jq curl bpftool nsenter; do
	command -v "$t" >/dev/null || {
		echo "bench_kernel: $t is not installed" >&2
		exit 1
	}
done
[ "$(id -u)" = 0 ] || {
	echo "bench_kernel: needs root (namespaces, BPF)" >&2
	exit 1
}
NGINX=$(command -v nginx)
tmp=$(mktemp -d /tmp/bench_kernel.XXXXXX)
chmod 755 "$tmp" # nginx workers (user nobody) read the file they serve from here
pids=()
BENCH_NAME=bench_kernel
. "$here/lib.sh"

cleanup() {
	local rc=$? i
	trap - EXIT
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[$i]}"
	done
	[ -d "$PIN" ] && in_gw "$build/tollgated" detach --pin-dir "$PIN" >/dev/null 2>&1
	rm -rf "$PIN"
	ip netns del "$GW_NS" 2>/dev/null
	ip netns del "$CL_NS" 2>/dev/null
	ip netns del "$C2_NS" 2>/dev/null
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Functions, so not for background jobs: $! would be a subshell's PID, not the server's
# (backgrounded servers are started with "nsenter ... &", which execs into the command).
in_gw() { nsenter --net="/run/netns/$GW_NS" "$@"; }
in_cl() { nsenter --net="/run/netns/$CL_NS" "$@"; }
in_c2() { nsenter --net="/run/netns/$C2_NS" "$@"; }

net_setup() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	ip netns add "$GW_NS"
	ip netns add "$CL_NS"
	ip link add "$GW_IF" netns "$GW_NS" type veth peer name "$CL_IF" netns "$CL_NS"
	ip -n "$GW_NS" addr add "$GW_ADDR/24" dev "$GW_IF"
	ip -n "$CL_NS" addr add "$CL_ADDR/24" dev "$CL_IF"
	ip -n "$GW_NS" link set lo up
	ip -n "$CL_NS" link set lo up
	ip -n "$GW_NS" link set "$GW_IF" up
	ip -n "$CL_NS" link set "$CL_IF" up
	ip netns add "$C2_NS"
	ip link add "$GW2_IF" netns "$GW_NS" type veth peer name "$C2_IF" netns "$C2_NS"
	ip -n "$GW_NS" addr add "$GW2_ADDR/24" dev "$GW2_IF"
	ip -n "$C2_NS" addr add "$C2_ADDR/24" dev "$C2_IF"
	ip -n "$C2_NS" link set lo up
	ip -n "$GW_NS" link set "$GW2_IF" up
	ip -n "$C2_NS" link set "$C2_IF" up
	ip -n "$C2_NS" route add default via "$GW2_ADDR"
	# a connection per request: the client's ports recycle faster than TIME_WAIT allows
	in_cl sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
	in_c2 sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
	local i
	for ((i = 0; i < 50; i++)); do
		ip -n "$CL_NS" link show "$CL_IF" | grep -q 'state UP' &&
			ip -n "$C2_NS" link show "$C2_IF" | grep -q 'state UP' && return 0
		sleep 0.1
	done
}

# servers and admin calls (lib.sh) run in the gateway namespace
BENCH_RUN=(nsenter --net="/run/netns/$GW_NS")

start_mock() { # sets MOCK_PID, MOCK (host:port)
	bench_mock gw
	MOCK_PID=$MOCK_PID_gw MOCK=$MOCK_gw
}

TG_SET=() # BENCH_TG_SET as --set options
for kv in ${BENCH_TG_SET:-}; do TG_SET+=(--set "$kv"); done
start_tg() { # [TOLLGATED ARGS...]: sets TG_PID, TG_DATA, TG_ADMIN; same store every time
	bench_tollgated "$tmp/store" --set "data.listen=$GW_ADDR:0" \
		--set "upstream.default_url=http://$MOCK/v1" --set kernel.mode=full \
		--set kernel.pin_dir="$PIN" --set kernel.interfaces="$GW_IF,$GW2_IF" --set data.rate_slots=4096 \
		--log-level warn "${TG_SET[@]}" "$@"
}

stop_tg() {
	stop_pid "$TG_PID"
}

new_key() { # JSON_LIMITS NAME: prints the key
	bench_key "{\"name\":\"$2\",\"owner\":\"team:bench\",\"limits\":$1}"
}

start_nginx() { # sets NGINX_PID, NGINX (host:port); FLOOD_KEY is limited to 1/min, others 1000/s
	local port=18080
	mkdir -p "$tmp/nginx/www/v1"
	cp "$tmp/models.json" "$tmp/nginx/www/v1/models"
	cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log $tmp/nginx/error.log error;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    default_type application/json;
    map_hash_bucket_size 256;
    # the flooding key in a zone of 1 request/min, every other key in one of 1000/s
    map \$http_authorization \$flood_zone_key { "Bearer $FLOOD_KEY" \$http_authorization; default ""; }
    map \$http_authorization \$good_zone_key { "Bearer $FLOOD_KEY" ""; default \$http_authorization; }
    limit_req_zone \$flood_zone_key zone=flood:10m rate=1r/m;
    limit_req_zone \$good_zone_key zone=good:10m rate=1000r/s;
    limit_req_status 429;
    server {
        listen $GW_ADDR:$port;
        root $tmp/nginx/www;
        location / {
            limit_req zone=flood nodelay;
            limit_req zone=good burst=2000 nodelay;
        }
    }
}
EOF
	nsenter --net="/run/netns/$GW_NS" taskset -c $SCPU "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
		-g "daemon off; pid $tmp/nginx/nginx.pid;" >"$tmp/nginx/stdout" 2>&1 </dev/null &
	NGINX_PID=$!
	pids+=("$NGINX_PID")
	wait_file "$tmp/nginx/nginx.pid" "$NGINX_PID" || { cat "$tmp/nginx/stdout" "$tmp/nginx/error.log" >&2; return 1; }
	NGINX=$GW_ADDR:$port
	local i
	for ((i = 0; i < 100; i++)); do
		in_cl curl -s -o /dev/null --max-time 1 "http://$NGINX/v1/models" && break
		sleep 0.05
	done
}

# ---- measuring ----

busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# wrk_run NAME URL KEYS_FILE CONNS CLOSE SECONDS: one bounded wrk from the client namespace on
# CPU 0; sets REQ, NON2XX, ERRS, RPS, P99 (µs), LAT (p50/p90/p99/p99.9/max, ms), WRK_TICKS
# (wrk's user+system time, ticks). CLOSE=1: a connection per request.
wrk_run() {
	local name=$1 url=$2 keys=$3 conns=$4 close=$5 secs=$6 line TIMEFORMAT='%U %S'
	{ time in_cl env BENCH_KEYS="$keys" BENCH_CLOSE="$close" timeout $((secs + 15)) \
		taskset -c $LCPU wrk -t1 -c"$conns" -d"${secs}s" --timeout 2s -s "$lua" "$url" \
		>"$tmp/wrk.$name" 2>&1 || true; } 2>"$tmp/time.$name"
	WRK_TICKS=$(awk -v hz="$HZ" '{printf "%.0f", ($1 + $2) * hz}' "$tmp/time.$name")
	line=$(grep '^RESULT ' "$tmp/wrk.$name") || {
		echo "bench_kernel: wrk $name failed:" >&2
		cat "$tmp/wrk.$name" >&2
		return 1
	}
	eval "$(sed 's/^RESULT //; s/\([a-z0-9_]*\)=/W_\1=/g' <<<"$line")"
	REQ=$W_requests NON2XX=$W_status_errors P99=$W_p99_us
	LAT=$(awk -v a="$W_p50_us" -v b="$W_p90_us" -v c="$W_p99_us" -v d="$W_p999_us" -v e="$W_max_us" \
		'BEGIN {printf "%.2f/%.2f/%.2f/%.2f/%.1f", a / 1e3, b / 1e3, c / 1e3, d / 1e3, e / 1e3}')
	ERRS="$W_connect/$W_read/$W_write/$W_timeout"
	RPS=$(awk -v r="$REQ" -v d="$W_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
}

# flood_cpu NAME URL SERVER_PIDS: one new-connection flood of the flood key; sets, in µs per
# refusal: PROC_US (wrk + the server processes, user+system: the veth's receive work and the
# BPF programs run in the sender's context and are charged there), SERVER_US (the server
# alone) and MACHINE_US (whole machine: includes whatever else runs on it).
per() { awk -v d="$1" -v n="$2" -v hz="$HZ" 'BEGIN {printf "%.2f", d * 1e6 / hz / (n ? n : 1)}'; }
flood_cpu() {
	local name=$1 url=$2 srv=$3 m0 m1 s0 s1
	m0=$(busy_ticks)
	s0=$(ticks $srv)
	wrk_run "$name" "$url" "$tmp/flood.keys" 32 1 "$SEC"
	m1=$(busy_ticks)
	s1=$(ticks $srv)
	MACHINE_US=$(per $((m1 - m0)) "$NON2XX")
	SERVER_US=$(per $((s1 - s0)) "$NON2XX")
	PROC_US=$(per $((s1 - s0 + WRK_TICKS)) "$NON2XX")
	echo "# $name: requests=$REQ non2xx=$NON2XX errors(c/r/w/t)=$ERRS refusals/s=$RPS wrk+server=${PROC_US}us/refusal server=${SERVER_US}us/refusal machine=${MACHINE_US}us/refusal (ticks: wrk $WRK_TICKS server $((s1 - s0)) machine $((m1 - m0)))"
}

# cpu_snap: both CPUs' busy (user+nice+system+irq+softirq+steal), softirq and total ticks
# cpu_share SNAP0 SNAP1: "cpu0 busy B% softirq S%, cpu1 ..." between two snapshots. Softirq
# ticks are sampled (the tick landing in softirq), as everything in /proc/stat here.
cpu_snap() { awk '/^cpu[01] / {printf "%d %d %d ", $2 + $3 + $4 + $7 + $8 + $9, $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
cpu_share() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " ")
		for (c = 0; c < n / 3; c++) {
			t = y[3 * c + 3] - x[3 * c + 3]; if (t <= 0) t = 1
			printf "%scpu%d busy %.0f%% softirq %.0f%%", c ? ", " : "", c,
				100 * (y[3 * c + 1] - x[3 * c + 1]) / t, 100 * (y[3 * c + 2] - x[3 * c + 2]) / t
		}
	}'
}

div() { awk -v a="$1" -v b="$2" -v f="${3:-%.3f}" 'BEGIN {if (b == 0) print "-"; else printf f "\n", a / b}'; }
metric() { # NAME VALUE UNIT BASELINE GOAL PASS
	echo "metric=$1 value=$2 unit=$3 baseline=$4 ratio=$(div "$2" "$4") goal=$5 pass=$6"
}

# ---- setup ----

echo "# bench_kernel: machine $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
net_setup
start_mock
start_tg --set kernel.penalty_after_sec=3600
FLOOD_KEY=$(new_key '{"requests_per_second":0.001,"burst":1}' flood)
echo "$FLOOD_KEY" >"$tmp/flood.keys"
: >"$tmp/good.keys"
for ((i = 0; i < 100; i++)); do
	new_key '{"requests_per_second":1000,"burst":2000}' "good$i" >>"$tmp/good.keys"
done
in_cl curl -s -o "$tmp/models.json" -H "Authorization: Bearer $(head -n1 "$tmp/good.keys")" \
	"http://$TG_DATA/v1/models"
# the flood key's one request: over its limit from now on, on both servers
in_cl curl -s -o /dev/null -H "Authorization: Bearer $FLOOD_KEY" "http://$TG_DATA/v1/models"
start_nginx
in_cl curl -s -o /dev/null -H "Authorization: Bearer $FLOOD_KEY" "http://$NGINX/v1/models"
code=$(in_cl curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $FLOOD_KEY" "http://$NGINX/v1/models")
[ "$code" = 429 ] || echo "# warning: nginx answered the flood key $code, not 429" >&2
code=$(in_cl curl -s -D - -o /dev/null -H "Authorization: Bearer $FLOOD_KEY" "http://$TG_DATA/v1/models" | tr -d '\r' | grep -ci '^x-tollgate-enforcer: kernel' || true)
[ "$code" = 1 ] || echo "# warning: the flood key's 429 on a new connection did not come from the kernel" >&2

# ---- 1. new-connection flood ----
has() { [[ " $ONLY " == *" $1 "* ]]; }
if has 1; then
echo "# 1. new-connection flood, wrk -t1 -c32 -H 'Connection: close', ${SEC}s x $REPS"
tg_m=() tg_s=() tg_p=() ng_m=() ng_s=() ng_p=() tg_r=() ng_r=()
for ((r = 1; r <= REPS; r++)); do
	flood_cpu "tollgate.$r" "http://$TG_DATA/v1/models" "$TG_PID"
	tg_m+=("$MACHINE_US") tg_s+=("$SERVER_US") tg_p+=("$PROC_US") tg_r+=("$RPS")
	flood_cpu "nginx.$r" "http://$NGINX/v1/models" "$(nginx_pids)"
	ng_m+=("$MACHINE_US") ng_s+=("$SERVER_US") ng_p+=("$PROC_US") ng_r+=("$RPS")
done
tm=$(echo "${tg_m[*]}" | median) nm=$(echo "${ng_m[*]}" | median)
ts=$(echo "${tg_s[*]}" | median) ns=$(echo "${ng_s[*]}" | median)
tp=$(echo "${tg_p[*]}" | median) np=$(echo "${ng_p[*]}" | median)
echo "# refusals/s (median): tollgate $(echo "${tg_r[*]}" | median), nginx $(echo "${ng_r[*]}" | median)"
metric new_conn_flood_cpu_per_refusal "$tp" us "$np" "<=0.5x" "$(yesno "$tp <= 0.5 * $np")"
metric new_conn_flood_machine_cpu_per_refusal "$tm" us "$nm" "<=0.5x" "$(yesno "$tm <= 0.5 * $nm")"
metric new_conn_flood_server_cpu_per_refusal "$ts" us "$ns" "daemon~0" "$(yesno "$ts <= 0.05 * $np")"
fi

# ---- 2. noisy neighbour ----

echo "# 2. noisy neighbour: 100 keys keep-alive wrk -t1 -c16 ${SEC}s, alone and beside a new-connection flood (-c32) of the flood key"
# nn_warm NAME URL: 2 s of the neighbours' load, not measured: after a (re)start the first use
# of each of the 100 keys verifies it (argon2) and fills the caches; "alone" must not pay that.
nn_warm() {
	wrk_run "$1.warm" "$2" "$tmp/good.keys" 16 0 2
}
nn() { # NAME URL: sets NN_RPS0 NN_P990 (alone) NN_RPS1 NN_P991 (beside the flood), medians
	local name=$1 url=$2 a=() b=() c=() d=() fp
	nn_warm "$name" "$url"
	for ((r = 1; r <= REPS; r++)); do
		local c0 c1 l0
		c0=$(cpu_snap)
		wrk_run "$name.alone.$r" "$url" "$tmp/good.keys" 16 0 "$SEC"
		c1=$(cpu_snap)
		a+=("$RPS") b+=("$P99")
		local e0=$ERRS s0 l0=$LAT
		s0=$(cpu_share "$c0" "$c1")
		nsenter --net="/run/netns/$CL_NS" env BENCH_KEYS="$tmp/flood.keys" BENCH_CLOSE=1 BENCH_DELAY_MS="$NN_DELAY" timeout $((SEC + 20)) taskset -c "$NN_FCPU" nice -n 19 \
			wrk -t1 -c32 -d"$((SEC + 2))s" --timeout 2s -s "$lua" "$url" >"$tmp/wrk.$name.flood.$r" 2>&1 &
		fp=$!
		sleep 1
		c0=$(cpu_snap)
		wrk_run "$name.flooded.$r" "$url" "$tmp/good.keys" 16 0 "$SEC"
		c1=$(cpu_snap)
		wait "$fp" || true
		c+=("$RPS") d+=("$P99")
		echo "# $name run $r: alone ${a[-1]} req/s p99 ${b[-1]}us errors(c/r/w/t) $e0; beside the flood ${c[-1]} req/s p99 ${d[-1]}us errors $ERRS non2xx $NON2XX; flood: $(grep '^RESULT' "$tmp/wrk.$name.flood.$r" | cut -d' ' -f2-4)"
		echo "#   latency p50/p90/p99/p99.9/max ms: alone $l0, beside the flood $LAT; alone: $s0; beside the flood: $(cpu_share "$c0" "$c1")"
	done
	NN_RPS0=$(echo "${a[*]}" | median) NN_P990=$(echo "${b[*]}" | median)
	NN_RPS1=$(echo "${c[*]}" | median) NN_P991=$(echo "${d[*]}" | median)
}
# kernel verdict counter V (enum tg_verdict) summed over CPUs; 0 when the map is not there
kstat() { bpftool -j map lookup pinned "$PIN/tg_stats" key "$1" 0 0 0 2>/dev/null | jq '[.formatted.values[].value] | add' 2>/dev/null || echo 0; }
# the abuser's address out of the penalty box (key: ::ffff:10.79.0.2, as the ABI stores IPv4)
penalty_clear() {
	bpftool map delete pinned "$PIN/tg_penalty" key 0 0 0 0 0 0 0 0 0 0 255 255 \
		$(tr . ' ' <<<"$C2_ADDR") >/dev/null 2>&1 || true
}
# nn_own NAME URL: the neighbours alone, then beside a flood from the abuser's own address
# (second client namespace) over its first SEC s and its next SEC s; sets medians NO_RPS0
# NO_P990 (alone), NO_RPS1 NO_P991 (first), NO_RPS2 NO_P992 (next).
nn_own() {
	local name=$1 url=$2 a=() b=() c=() d=() e=() f=() fp c0 c1 c2 l0 l1 s0 s1 e0 e1 k0 k1 k2 q0 q1
	nn_warm "$name" "$url"
	for ((r = 1; r <= REPS; r++)); do
		c0=$(cpu_snap)
		wrk_run "$name.alone.$r" "$url" "$tmp/good.keys" 16 0 "$SEC"
		c1=$(cpu_snap)
		a+=("$RPS") b+=("$P99")
		l0=$LAT e0=$ERRS s0=$(cpu_share "$c0" "$c1")
		penalty_clear
		k0=$(kstat 20) q0=$(kstat 12)
		nsenter --net="/run/netns/$C2_NS" env BENCH_KEYS="$tmp/flood.keys" BENCH_CLOSE=1 BENCH_DELAY_MS="$NN_DELAY" timeout $((2 * SEC + 25)) taskset -c "$NN_FCPU" nice -n 19 \
			wrk -t1 -c32 -d"$((2 * SEC + 2))s" --timeout 2s -s "$lua" "$url" >"$tmp/wrk.$name.flood.$r" 2>&1 &
		fp=$!
		sleep 0.2
		c0=$(cpu_snap)
		wrk_run "$name.first.$r" "$url" "$tmp/good.keys" 16 0 "$SEC"
		c1=$(cpu_snap)
		k1=$(kstat 20) q1=$(kstat 12)
		c+=("$RPS") d+=("$P99")
		l1=$LAT e1=$ERRS s1=$(cpu_share "$c0" "$c1")
		wrk_run "$name.next.$r" "$url" "$tmp/good.keys" 16 0 "$SEC"
		c2=$(cpu_snap)
		k2=$(kstat 20)
		wait "$fp" || true
		e+=("$RPS") f+=("$P99")
		echo "# $name run $r: alone ${a[-1]} req/s p99 ${b[-1]}us errors(c/r/w/t) $e0; flood's first ${SEC}s ${c[-1]} req/s p99 ${d[-1]}us errors $e1; next ${SEC}s ${e[-1]} req/s p99 ${f[-1]}us errors $ERRS non2xx $NON2XX; flood (whole run): $(grep '^RESULT' "$tmp/wrk.$name.flood.$r" | cut -d' ' -f2-4)"
		echo "#   latency p50/p90/p99/p99.9/max ms: alone $l0, first $l1, next $LAT; alone: $s0; first: $s1; next: $(cpu_share "$c1" "$c2")"
		if [ "$name" = tollgate ]; then
			echo "#   tollgate kernel: 429s sent in the first ${SEC}s $((q1 - q0)); SYNs dropped by the penalty box: first ${SEC}s $((k1 - k0)), next ${SEC}s $((k2 - k1))"
		fi
	done
	NO_RPS0=$(echo "${a[*]}" | median) NO_P990=$(echo "${b[*]}" | median)
	NO_RPS1=$(echo "${c[*]}" | median) NO_P991=$(echo "${d[*]}" | median)
	NO_RPS2=$(echo "${e[*]}" | median) NO_P992=$(echo "${f[*]}" | median)
}
NN_PASSES=${BENCH_NN_PASSES:-nat ownaddr}
NN_DELAY=${BENCH_NN_FLOOD_DELAY_MS:-}
NN_PACED=${NN_DELAY:+_paced}
[ -z "$NN_DELAY" ] || echo "# the flood is paced: each of its connections waits ${NN_DELAY} ms before each request"
if has 2 && [[ " $NN_PASSES " == *" nat "* ]]; then
for NN_FCPU in ${BENCH_NN_FLOOD_CPUS:-$LCPU}; do
	sfx= && [ "$NN_FCPU" = "$LCPU" ] || sfx=_floodcpu$NN_FCPU
	sfx=$sfx$NN_PACED
	echo "# flooding wrk on CPU $NN_FCPU (neighbours' wrk on CPU $LCPU, servers on CPU $SCPU)"
	nn "tollgate$sfx" "http://$TG_DATA/v1/models"
	metric "noisy_neighbour_tollgate_throughput$sfx" "$NN_RPS1" req/s "$NN_RPS0" ">=0.9x" "$(yesno "$NN_RPS1 >= 0.9 * $NN_RPS0")"
	metric "noisy_neighbour_tollgate_p99$sfx" "$NN_P991" us "$NN_P990" "<=1.5x" "$(yesno "$NN_P991 <= 1.5 * $NN_P990")"
	nn "nginx$sfx" "http://$NGINX/v1/models"
	metric "noisy_neighbour_nginx_throughput$sfx" "$NN_RPS1" req/s "$NN_RPS0" ">=0.9x" "$(yesno "$NN_RPS1 >= 0.9 * $NN_RPS0")"
	metric "noisy_neighbour_nginx_p99$sfx" "$NN_P991" us "$NN_P990" "<=1.5x" "$(yesno "$NN_P991 <= 1.5 * $NN_P990")"
done
fi
if has 2 && [[ " $NN_PASSES " == *" ownaddr "* ]]; then
	echo "# 2b. noisy neighbour, the abuser behind its own address ($C2_ADDR, second client namespace); tollgated with the penalty box engaging after 2 s"
	stop_tg
	start_tg --set kernel.penalty_after_sec=2 --set kernel.penalty_multiple=2 --set kernel.penalty_sec=120
	for NN_FCPU in ${BENCH_NN_FLOOD_CPUS:-$LCPU}; do
		sfx=_ownaddr && [ "$NN_FCPU" = "$LCPU" ] || sfx=_ownaddr_floodcpu$NN_FCPU
		sfx=$sfx$NN_PACED
		echo "# flooding wrk (own address) on CPU $NN_FCPU (neighbours' wrk on CPU $LCPU, servers on CPU $SCPU)"
		nn_own tollgate "http://$TG_DATA/v1/models"
		metric "noisy_neighbour_tollgate_throughput$sfx" "$NO_RPS1" req/s "$NO_RPS0" ">=0.9x" "$(yesno "$NO_RPS1 >= 0.9 * $NO_RPS0")"
		metric "noisy_neighbour_tollgate_p99$sfx" "$NO_P991" us "$NO_P990" "<=1.5x" "$(yesno "$NO_P991 <= 1.5 * $NO_P990")"
		metric "noisy_neighbour_tollgate_throughput${sfx}_penalised" "$NO_RPS2" req/s "$NO_RPS0" ">=0.9x" "$(yesno "$NO_RPS2 >= 0.9 * $NO_RPS0")"
		metric "noisy_neighbour_tollgate_p99${sfx}_penalised" "$NO_P992" us "$NO_P990" "<=1.5x" "$(yesno "$NO_P992 <= 1.5 * $NO_P990")"
		nn_own nginx "http://$NGINX/v1/models"
		metric "noisy_neighbour_nginx_throughput$sfx" "$NO_RPS1" req/s "$NO_RPS0" ">=0.9x" "$(yesno "$NO_RPS1 >= 0.9 * $NO_RPS0")"
		metric "noisy_neighbour_nginx_p99$sfx" "$NO_P991" us "$NO_P990" "<=1.5x" "$(yesno "$NO_P991 <= 1.5 * $NO_P990")"
		metric "noisy_neighbour_nginx_throughput${sfx}_late" "$NO_RPS2" req/s "$NO_RPS0" ">=0.9x" "$(yesno "$NO_RPS2 >= 0.9 * $NO_RPS0")"
		metric "noisy_neighbour_nginx_p99${sfx}_late" "$NO_P992" us "$NO_P990" "<=1.5x" "$(yesno "$NO_P992 <= 1.5 * $NO_P990")"
	done
	penalty_clear # scenario 3 lists the penalty box: only its own abuser there
fi
has 3 || exit 0

# ---- 3. keep-alive abuse ignoring Retry-After ----

echo "# 3. keep-alive abuse: wrk -t1 -c8 keep-alive with the over-limit key; measured ${SEC}s after ${WARM}s of escalation"
stop_tg
start_tg --set kernel.penalty_after_sec=2 --set kernel.penalty_multiple=2 --set kernel.penalty_sec=120 \
	--set data.close_after_refusals=20
# abuse NAME URL SERVER_PIDS: the abusing wrk for BENCH_WARM + BENCH_SEC s, measured over
# the last BENCH_SEC s; sets ABUSE_PCT (wrk + server, user+system, % of one core: where the
# veth and BPF work is charged), ABUSE_SRV_PCT (the server alone), ABUSE_MACHINE_PCT.
pct() { awk -v d="$1" -v hz="$HZ" -v s="$SEC" 'BEGIN {printf "%.1f", 100 * d / hz / s}'; }
abuse() {
	local name=$1 url=$2 srv=$3 wp m0 m1 s0 s1 w0 w1
	nsenter --net="/run/netns/$CL_NS" env BENCH_KEYS="$tmp/flood.keys" BENCH_CLOSE=0 \
		taskset -c $LCPU timeout $((WARM + SEC + 20)) \
		wrk -t1 -c8 -d"$((WARM + SEC + 2))s" --timeout 2s -s "$lua" "$url" >"$tmp/wrk.$name" 2>&1 &
	wp=$!
	sleep "$WARM"
	m0=$(busy_ticks) s0=$(ticks $srv) w0=$(ticks $(pgrep -P "$wp"))
	sleep "$SEC"
	m1=$(busy_ticks) s1=$(ticks $srv) w1=$(ticks $(pgrep -P "$wp"))
	wait "$wp" || true
	ABUSE_PCT=$(pct $((s1 - s0 + w1 - w0)))
	ABUSE_SRV_PCT=$(pct $((s1 - s0)))
	ABUSE_MACHINE_PCT=$(pct $((m1 - m0)))
	echo "# $name: wrk+server ${ABUSE_PCT}% of one core, server ${ABUSE_SRV_PCT}%, machine ${ABUSE_MACHINE_PCT}%; wrk (whole run): $(grep '^RESULT' "$tmp/wrk.$name" | cut -c8-100)"
}
dropped0=$(bpftool -j map lookup pinned "$PIN/tg_stats" key 20 0 0 0 | jq '[.formatted.values[].value] | add')
abuse tollgate "http://$TG_DATA/v1/models" "$TG_PID"
tga=$ABUSE_PCT tgs=$ABUSE_SRV_PCT tgm=$ABUSE_MACHINE_PCT
dropped1=$(bpftool -j map lookup pinned "$PIN/tg_stats" key 20 0 0 0 | jq '[.formatted.values[].value] | add')
echo "# tollgate: SYNs dropped by the penalty box during the run: $((dropped1 - dropped0)); penalty box: $(in_gw curl -s -H "Authorization: Bearer $TOKEN" "http://$TG_ADMIN/api/v1/kernel" | jq -c '.penalty_box.entries')"
abuse nginx "http://$NGINX/v1/models" "$(nginx_pids)"
metric keepalive_abuse_cpu_pct "$tga" "%core" "$ABUSE_PCT" "<5%" "$(yesno "$tga < 5")"
metric keepalive_abuse_server_cpu_pct "$tgs" "%core" "$ABUSE_SRV_PCT" "-" -
metric keepalive_abuse_machine_cpu_pct "$tgm" "%core" "$ABUSE_MACHINE_PCT" "-" -

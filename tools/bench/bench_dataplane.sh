#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Data-plane benchmark: tollgated in front of mock-llm, against its baselines measured in the
# same run (mock-llm called directly; nginx limit_req proxying the same mock with upstream
# keep-alive). Prints metric lines as tools/bench/run does:
#   metric=<name> value=<v> unit=<u> baseline=<b> ratio=<r> goal=<g> pass=<yes|no|->
# and "# " comment lines with the raw counts behind each metric.
#
# usage: tools/bench/bench_dataplane.sh [BUILD_DIR]
# Environment: BENCH_SEC (seconds per load run, default 5), BENCH_STREAMS (concurrent
# streaming calls of the last scenario, space-separated, default "2000 10000"; empty skips it),
# BENCH_ONLY=streams (that scenario alone), BENCH_STREAM_H2=1 (its upstream over HTTP/2,
# through tools/h2-front.sh), BENCH_VARIANTS (1 by default: also measure latency and throughput with
# store.sync_interval_ms=0 and with store.sync=none, each labelled), BENCH_LIMITS (1 by
# default: the allowed path with every limit of issue 5 configured on the keys and their
# owner, against TOLLGATE_LIMITS_ENABLED=false, same keys and load; BENCH_LIMITS_REPS runs
# of each, alternating, default 3; BENCH_LIMITS_ONLY=1 runs only that and the streams; with
# perf installed, also the engine's share of tollgated's CPU in each limits-on run),
# BENCH_PAIRS (tollgated and nginx runs of the allowed and flood scenarios, alternating,
# default 3: each figure is the median of its runs, since this VM's speed moves by ±20 %
# between runs minutes apart and one pair's ratio moves with it), BENCH_PROFILE=DIR (with perf
# installed: one extra, profiled tollgated run after the pairs of the allowed and of the flood
# scenario; DIR/allowed.txt and DIR/flood.txt get perf's flat profile by library and symbol,
# DIR/*.callers.txt the call graphs, DIR/*.data the samples; the profiled runs count in no
# figure).
#
# Pinning (KERNEL-NOTES.md "Measuring"): wrk runs on CPU 0, every server (tollgated, nginx,
# mock-llm) on CPU 1. Server CPU is read from /proc/<pid>/stat (utime+stime) of each server
# separately, and both CPUs' busy time from /proc/stat. Everything talks to 127.0.0.1 only,
# every load run is bounded by wrk -d, and the trap stops every process started here by PID
# and removes the temporary directory.
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
lua=$here/dataplane/post.lua
SEC=${BENCH_SEC:-5}
STREAMS=${BENCH_STREAMS-2000 10000}
VARIANTS=${BENCH_VARIANTS:-1}
LIMITS=${BENCH_LIMITS:-1}
LIMITS_REPS=${BENCH_LIMITS_REPS:-3}
PAIRS=${BENCH_PAIRS:-3}
LCPU=0 SCPU=1 # load generator CPU, server CPU
TOKEN=tollgate-bench-admin-token-0123456789abcdef
HZ=$(getconf CLK_TCK)

for t in wrk nginx taskset jq curl; do
	command -v "$t" >/dev/null || {
		echo "bench_dataplane: $t is not installed" >&2
		exit 1
	}
done
NGINX=$(command -v nginx)

tmp=$(mktemp -d /tmp/bench_dataplane.XXXXXX)
pids=()
BENCH_NAME=bench_dataplane
. "$here/lib.sh"

trap bench_cleanup EXIT
trap 'exit 143' TERM INT HUP

# raise the open-file limit for the many-streams scenario (servers and wrk inherit it)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- processes ----

start_mock() { bench_mock "$@"; } # NAME [MOCK ARGS...]: sets MOCK_PID_<NAME>, MOCK_<NAME>

start_tg() { # UPSTREAM(host:port) [TOLLGATED ARGS...]: sets TG_PID, TG_DATA, TG_ADMIN
	local up=$1
	shift
	bench_tollgated "$tmp/store.$((tg_n + 1))" --set "data.listen=127.0.0.1:0" \
		--set "upstream.default_url=http://$up/v1" --log-level warn \
		--set "kernel.mode=${BENCH_KERNEL_MODE:-off}" "$@"
}

new_keys() { bench_keys "$@"; } # N TIER FILE: N keys of TIER, one full key per line in FILE

start_nginx() { # UPSTREAM(host:port): sets NGINX_PID, NGINX_HI, NGINX_LO (host:port)
	local p_hi p_lo
	p_hi=$(free_port)
	p_lo=$(free_port "$p_hi")
	mkdir -p "$tmp/nginx"
	# Zones mirror the tollgate tiers used here: hi = enterprise (1000 r/s, burst 2000),
	# lo = basic (10 r/s, burst 20); both keyed by the Authorization header.
	cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log $tmp/nginx/error.log warn;
events { worker_connections 20000; }
http {
    access_log $tmp/nginx/access.log combined buffer=64k flush=1s;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    limit_req_zone \$http_authorization zone=hi:10m rate=1000r/s;
    limit_req_zone \$http_authorization zone=lo:10m rate=10r/s;
    limit_req_status 429;
    upstream mock {
        server $1;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$p_hi;
        location / {
            limit_req zone=hi burst=2000 nodelay;
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
    server {
        listen 127.0.0.1:$p_lo;
        location / {
            limit_req zone=lo burst=20 nodelay;
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
	taskset -c $SCPU "$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
		-g "daemon off; pid $tmp/nginx/nginx.pid;" >"$tmp/nginx/stdout" 2>&1 </dev/null &
	NGINX_PID=$!
	pids+=("$NGINX_PID")
	wait_file "$tmp/nginx/nginx.pid" "$NGINX_PID"
	local i
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p_hi/v1/models" && break
		sleep 0.05
	done
	NGINX_HI=127.0.0.1:$p_hi
	NGINX_LO=127.0.0.1:$p_lo
}

free_port() { # [EXCLUDE]: a TCP port on 127.0.0.1 where nothing listens
	local p
	for ((p = 20000 + RANDOM % 5000; p < 40000; p++)); do
		[ "$p" = "${1:-}" ] && continue
		[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && {
			echo "$p"
			return 0
		}
	done
	return 1
}

# ---- measuring ----

cpustat() { awk '/^cpu[01] / {printf "%d %d ", $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
busy() { # BEFORE AFTER (cpustat outputs): "cpu0 X% cpu1 Y%" busy over the interval (all processes)
	awk -v a="$1" -v b="$2" 'BEGIN {split(a, x); split(b, y)
		printf "cpu0 %.0f%% cpu1 %.0f%%", 100 * (y[1] - x[1]) / (y[1] - x[1] + y[2] - x[2] + 1e-9),
			100 * (y[3] - x[3]) / (y[3] - x[3] + y[4] - x[4] + 1e-9)}'
}

# load NAME URL KEYS_FILE CONNS [WRK ARGS...]: one bounded wrk run from CPU 0 while the
# server-side PIDs in SRV_A (the server under test) and SRV_B (the mock) are accounted.
# Sets REQ, OK (non-error answers), SERR (non-2xx/3xx), P50, P99 (µs), RPS, CPU_A, CPU_B (µs).
load() {
	local name=$1 url=$2 keys=$3 conns=$4
	shift 4
	local a0 b0 a1 b1 c0 c1 line
	a0=$(ticks $SRV_A)
	b0=$(ticks $SRV_B)
	c0=$(cpustat)
	BENCH_KEYS=$keys BENCH_PATH=${BENCH_PATH:-/v1/chat/completions} taskset -c $LCPU \
		wrk -t1 -c"$conns" -d"${SEC}s" --timeout 10s -s "$lua" "$@" "$url" >"$tmp/wrk.$name" 2>&1 || true
	a1=$(ticks $SRV_A)
	b1=$(ticks $SRV_B)
	c1=$(cpustat)
	line=$(grep '^RESULT ' "$tmp/wrk.$name") || {
		echo "bench_dataplane: wrk $name failed:" >&2
		cat "$tmp/wrk.$name" >&2
		return 1
	}
	eval "$(sed 's/^RESULT //; s/\([a-z0-9_]*\)=/W_\1=/g' <<<"$line")"
	REQ=$W_requests
	SERR=$W_status_errors
	OK=$((REQ - SERR))
	P50=$W_p50_us P99=$W_p99_us
	RPS=$(awk -v r="$REQ" -v d="$W_duration_us" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
	CPU_A=$(((a1 - a0) * 1000000 / HZ))
	CPU_B=$(((b1 - b0) * 1000000 / HZ))
	echo "# $name: requests=$REQ non2xx=$SERR errors(connect/read/write/timeout)=$W_connect/$W_read/$W_write/$W_timeout rps=$RPS p50=${P50}us p99=${P99}us server_cpu=${CPU_A}us mock_cpu=${CPU_B}us busy(all processes): $(busy "$c0" "$c1")"
}

div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN {if (b == 0) print "-"; else printf f "\n", a / b}'; }
metric() { # NAME VALUE UNIT BASELINE GOAL_TEXT PASS [RATIO]
	local ratio=${7:-$(div "$2" "$4" %.3f)}
	echo "metric=$1 value=$2 unit=$3 baseline=$4 ratio=$ratio goal=$5 pass=$6"
}

echo "# bench_dataplane: machine $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "# date $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# wrk on CPU $LCPU, servers on CPU $SCPU, $SEC s per run, open-file limit $(ulimit -n)"

# ---- 4. many concurrent streaming calls against a slow mock ----
# (a function: BENCH_ONLY=streams runs this scenario alone, right after the header)
streams() {
	# 20 tokens, token_ms apart: each call lasts about 2 s by default. One server CPU carries
	# ~700 such calls/s, fewer than 2,000 concurrent 2-s calls need, so not every stream is
	# in flight upstream at the sample; a slower upstream (BENCH_STREAM_TOKEN_MS=500: 10-s
	# calls) keeps them all in flight, for the memory figures.
	local tms=${BENCH_STREAM_TOKEN_MS:-100} extra up per=2 h2args=()
	start_mock slow --threads 2 --token-ms "$tms"
	up=$MOCK_slow
	echo "# streams: mock-llm pid $MOCK_PID_slow (token_ms $tms, 20 tokens/call); a fresh tollgated per level with upstream.max_host_connections=20000 (default 256 would queue the calls)"
	if [ "${BENCH_STREAM_H2:-0}" = 1 ]; then
		# the upstream over HTTP/2: tools/h2-front.sh (nginx, TLS) in front of the mock, on
		# CPU 0 with wrk; tollgated then holds one descriptor per stream, not two
		local fport
		fport=$(free_port)
		taskset -c $LCPU "$here/../h2-front.sh" "127.0.0.1:$fport" "$MOCK_slow" "$tmp/front" \
			>"$tmp/front.out" 2>&1 &
		pids+=($!)
		for ((i = 0; i < 100; i++)); do
			curl -s -o /dev/null --max-time 1 --cacert "$tmp/front/cert.pem" \
				"https://127.0.0.1:$fport/v1/models" && break
			sleep 0.05
		done
		up=127.0.0.1:$fport per=1
		h2args=(--set "upstream.default_url=https://$up/v1" --set upstream.http=2
			--set "upstream.ca_file=$tmp/front/cert.pem")
		echo "# streams over HTTP/2: tollgated -> h2-front (nginx pid ${pids[-1]}, TLS) -> mock-llm"
	fi
	# BENCH_STREAM_PROMPT_BYTES: a longer user message (real calls carry the conversation)
	local prompt=hi
	[ -z "${BENCH_STREAM_PROMPT_BYTES:-}" ] || prompt=$(head -c "$BENCH_STREAM_PROMPT_BYTES" /dev/zero | tr '\0' x)
	export BENCH_BODY='{"model":"gpt-4o-mini","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"'$prompt'"}]}'
	for n in $STREAMS; do
		# over HTTP/1.1 tollgated holds two descriptors per stream (client and upstream): a
		# level the open-file hard limit cannot hold is capped (raising the hard limit needs
		# root with CAP_SYS_RESOURCE; tollgated tries at start)
		cap=$((($(ulimit -Hn) - 256) / per))
		if [ "$n" -gt "$cap" ]; then
			echo "# streams-$n: capped to $cap (open-file hard limit $(ulimit -Hn), $per per stream in tollgated)"
			n=$cap
		fi
		[ -z "${TG_PID:-}" ] || stop_pid "$TG_PID"
		start_tg "$up" --set upstream.max_host_connections=20000 --set data.max_connections=20000 \
			"${h2args[@]}" ${BENCH_STREAM_TG_ARGS:-}
		new_keys 100 enterprise "$tmp/keys.st"
		sleep 1
		rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$TG_PID/status")
		# about 2 s per call, but 10,000 connections take a while to open and to fill on one
		# server CPU: the run lasts 8 s plus 1.5 s per 1,000 calls, sampled at 60 % of it
		# (plus two call lengths beyond 2 s, so that a slower upstream's calls also complete)
		extra=$((tms > 100 ? 2 * 20 * (tms - 100) / 1000 : 0))
		SEC_SAVE=$SEC SEC=$((8 + n * 3 / 2000 + extra)) sample=$(((8 + n * 3 / 2000 + extra) * 6 / 10))
		(
			sleep "$sample"
			awk '/^VmRSS/ {print $2}' "/proc/$TG_PID/status" >"$tmp/rss.$n"
			cat "/proc/$TG_PID/smaps_rollup" >"$tmp/smaps.$n" 2>/dev/null || true
			curl -s --max-time 5 "http://$MOCK_slow/_mock/stats" >"$tmp/mstats.$n" || true
			ls "/proc/$TG_PID/fd" | wc -l >"$tmp/fds.$n"
		) &
		sampler=$!
		SRV_A=$TG_PID SRV_B=$MOCK_PID_slow load "streams-$n" "http://$TG_DATA" "$tmp/keys.st" "$n" --timeout "$((30 + extra))s" || true
		wait "$sampler" || true
		SEC_RUN=$SEC SEC=$SEC_SAVE
		rss1=$(cat "$tmp/rss.$n")
		inflight=$(jq -r '.streams_in_flight // empty' "$tmp/mstats.$n" 2>/dev/null || true)
		inflight=${inflight:-$n}
		errs=$((SERR + W_connect + W_read + W_write + W_timeout))
		echo "# streams-$n: tollgated VmRSS idle ${rss0} KiB, at ${sample} s of ${SEC_RUN} s ${rss1} KiB with $inflight streams in flight at the mock, $(cat "$tmp/fds.$n") fds; completed $REQ calls, p50 ${P50}us"
		echo "# streams-$n: at the sample $(awk '/^(Anonymous|Rss):/ {printf "%s %d KiB ", $1, $2}' "$tmp/smaps.$n" 2>/dev/null)(smaps_rollup), tollgated threads $(ls "/proc/$TG_PID/task" | wc -l)"
		metric "streams_${n}_errors" "$errs" errors 0 "0" "$(yesno "$errs == 0")" -
		metric "streams_${n}_rss" "$((rss1 / 1024))" MiB - "-" - -
		metric "streams_${n}_bytes_per_inflight" "$(div "$(((rss1 - rss0) * 1024))" "$inflight" %.0f)" bytes - "-" - -
		# per client connection held open (wrk keeps all n connected, each a call in flight
		# or waiting for tollgated; upstream streams active at the sample: $inflight)
		metric "streams_${n}_bytes_per_client_conn" "$(div "$(((rss1 - rss0) * 1024))" "$n" %.0f)" bytes - "-" - -
		metric "streams_${n}_calls_per_sec" "$RPS" calls/s "$(div "$n" 2 %.0f)" "ideal n/2s" - "$(div "$RPS" "$(div "$n" 2 %.0f)" %.2f)"
	done
}
if [ "${BENCH_ONLY:-}" = streams ]; then
	streams
	echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	exit 0
fi

BODY='{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
export BENCH_BODY=$BODY

start_mock fast --threads 2
start_tg "$MOCK_fast"
echo "# mock-llm pid $MOCK_PID_fast at $MOCK_fast; tollgated pid $TG_PID data $TG_DATA (defaults: store.sync=meta; data.threads=0, one loop per usable CPU: 1 here, pinned to one)"
if [ "${BENCH_LIMITS_ONLY:-0}" != 1 ]; then
new_keys 100 enterprise "$tmp/keys.hi"
new_keys 1 basic "$tmp/keys.lo"
start_nginx "$MOCK_fast"
echo "# nginx pid $NGINX_PID (1 worker) hi=$NGINX_HI lo=$NGINX_LO"

# warm up: every key verified once (argon2) and cached, upstream connections open
SEC_SAVE=$SEC SEC=2
SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load warm-tg "http://$TG_DATA" "$tmp/keys.hi" 32 >/dev/null
SRV_A="$(nginx_pids)" SRV_B=$MOCK_PID_fast load warm-nginx "http://$NGINX_HI" "$tmp/keys.hi" 32 >/dev/null
SEC=$SEC_SAVE

# ---- 1. added latency at concurrency 1 ----
latency() { # LABEL
	SRV_A=$MOCK_PID_fast SRV_B= load "lat-direct$1" "http://$MOCK_fast" "" 1 --latency
	local d50=$P50 d99=$P99
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "lat-tollgated$1" "http://$TG_DATA" "$tmp/keys.hi" 1 --latency
	[ "$SERR" = 0 ] || echo "# WARNING: $SERR non-2xx answers through tollgated"
	local t50=$P50 t99=$P99 a50 a99
	a50=$(awk -v a="$t50" -v b="$d50" 'BEGIN {printf "%.1f", a - b}')
	a99=$(awk -v a="$t99" -v b="$d99" 'BEGIN {printf "%.1f", a - b}')
	echo "metric=added_latency_p50_c1$1 value=$a50 unit=us baseline=$d50 ratio=$(div "$t50" "$d50") goal=<100 pass=$(yesno "$a50 < 100")"
	echo "metric=added_latency_p99_c1$1 value=$a99 unit=us baseline=$d99 ratio=$(div "$t99" "$d99") goal=<500 pass=$(yesno "$a99 < 500")"
	echo "# (value = tollgated percentile minus direct; tollgated p50=${t50}us p99=${t99}us; direct p50=${d50}us p99=${d99}us)"
	[ -n "$1" ] && return 0
	# context for the p99, which moves with this VM: nginx's own added latency, same run
	SRV_A="$(nginx_pids)" SRV_B=$MOCK_PID_fast load "lat-nginx" "http://$NGINX_HI" "$tmp/keys.hi" 1 --latency
	echo "metric=nginx_added_latency_p50_c1 value=$(awk -v a="$P50" -v b="$d50" 'BEGIN {printf "%.1f", a - b}') unit=us baseline=$d50 ratio=$(div "$P50" "$d50") goal=- pass=-"
	echo "metric=nginx_added_latency_p99_c1 value=$(awk -v a="$P99" -v b="$d99" 'BEGIN {printf "%.1f", a - b}') unit=us baseline=$d99 ratio=$(div "$P99" "$d99") goal=- pass=-"
}
latency ""

# profile_run NAME KEYS_FILE: with BENCH_PROFILE, one more tollgated run of the scenario,
# sampled by perf (cpu-clock, DWARF call stacks); its flat profile goes to BENCH_PROFILE/NAME.txt
profile_run() {
	[ -n "${BENCH_PROFILE:-}" ] || return 0
	command -v perf >/dev/null || {
		echo "# BENCH_PROFILE: perf is not installed, no profile"
		return 0
	}
	mkdir -p "$BENCH_PROFILE"
	local data=$BENCH_PROFILE/$1.data
	perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$TG_PID" -o "$data" \
		-- sleep "$SEC" >/dev/null 2>&1 &
	local perf_pid=$!
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "$1-tollgated-profiled" "http://$TG_DATA" "$2" 32
	wait "$perf_pid" 2>/dev/null || true
	# the whole report to a file first: head closing a pipe would end this script (pipefail)
	perf report -i "$data" --no-children --sort dso,sym --stdio -g none >"$BENCH_PROFILE/$1.txt" \
		2>/dev/null || true
	perf report -i "$data" --no-children --sort sym --stdio -g caller,0.5,callee \
		>"$BENCH_PROFILE/$1.callers.txt" 2>/dev/null || true
	echo "# profile of $1-tollgated-profiled: $BENCH_PROFILE/$1.txt"
}

# ---- 2. allowed traffic: 100 enterprise keys, keep-alive, 32 connections ----
# tollgated and nginx alternate PAIRS times; each figure is the median of its side's runs.
runs_tg_rps="" runs_tg_cpu="" runs_tg_mcpu="" runs_ng_rps="" runs_ng_cpu="" runs_ng_mcpu=""
for ((pair = 1; pair <= PAIRS; pair++)); do
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "allowed-tollgated-$pair" "http://$TG_DATA" "$tmp/keys.hi" 32
	[ "$SERR" = 0 ] || echo "# WARNING: $SERR non-2xx answers through tollgated"
	runs_tg_rps+="$RPS " runs_tg_cpu+="$(div "$CPU_A" "$OK" %.1f) " runs_tg_mcpu+="$(div "$CPU_B" "$OK" %.1f) "
	SRV_A="$(nginx_pids)" SRV_B=$MOCK_PID_fast load "allowed-nginx-$pair" "http://$NGINX_HI" "$tmp/keys.hi" 32
	[ "$SERR" = 0 ] || echo "# WARNING: $SERR non-2xx answers through nginx"
	runs_ng_rps+="$RPS " runs_ng_cpu+="$(div "$CPU_A" "$OK" %.1f) " runs_ng_mcpu+="$(div "$CPU_B" "$OK" %.1f) "
done
profile_run allowed "$tmp/keys.hi"
tg_rps=$(median <<<"$runs_tg_rps") tg_cpu=$(median <<<"$runs_tg_cpu") tg_mcpu=$(median <<<"$runs_tg_mcpu")
ng_rps=$(median <<<"$runs_ng_rps") ng_cpu=$(median <<<"$runs_ng_cpu") ng_mcpu=$(median <<<"$runs_ng_mcpu")
echo "# allowed, per run: tollgated $runs_tg_rps req/s, $runs_tg_cpu us/req; nginx $runs_ng_rps req/s, $runs_ng_cpu us/req"
metric allowed_throughput_c32 "$tg_rps" req/s "$ng_rps" ">=1.0x nginx" "$(yesno "$tg_rps >= $ng_rps")"
metric allowed_cpu_per_request "$tg_cpu" us/req "$ng_cpu" "ratio reported" -
echo "# (medians of $PAIRS runs each; server CPU per allowed request: tollgated vs nginx worker+master; the mock behind them used ${tg_mcpu} vs ${ng_mcpu} us/req)"

# ---- 3. one key flooding (basic tier: 10 r/s, burst 20), keep-alive ----
runs_tg_fcpu="" runs_tg_ref="" runs_ng_fcpu="" runs_ng_ref=""
for ((pair = 1; pair <= PAIRS; pair++)); do
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "flood-tollgated-$pair" "http://$TG_DATA" "$tmp/keys.lo" 32
	runs_tg_fcpu+="$(div "$CPU_A" "$SERR" %.2f) " runs_tg_ref+="$SERR "
	SRV_A="$(nginx_pids)" SRV_B=$MOCK_PID_fast load "flood-nginx-$pair" "http://$NGINX_LO" "$tmp/keys.lo" 32
	runs_ng_fcpu+="$(div "$CPU_A" "$SERR" %.2f) " runs_ng_ref+="$SERR "
done
profile_run flood "$tmp/keys.lo"
tg_fcpu=$(median <<<"$runs_tg_fcpu") tg_ref=$(median <<<"$runs_tg_ref")
ng_fcpu=$(median <<<"$runs_ng_fcpu") ng_ref=$(median <<<"$runs_ng_ref")
echo "# flood, per run: tollgated $runs_tg_fcpu us/refusal; nginx $runs_ng_fcpu us/refusal"
metric flood_cpu_per_refusal "$tg_fcpu" us/refusal "$ng_fcpu" "<=1.0x nginx" "$(yesno "$tg_fcpu <= $ng_fcpu")"
metric flood_refusals_per_sec "$(div "$tg_ref" "$SEC" %.0f)" refusals/s "$(div "$ng_ref" "$SEC" %.0f)" "-" -
echo "# (medians of $PAIRS runs each; refusals per run: tollgated $runs_tg_ref, nginx $runs_ng_ref)"

# ---- variants: where the added latency goes ----
# store.sync_interval_ms=0: every usage batch fdatasynced before the answer is released (the
# behaviour before the syncer). store.sync=none: no fsync at all, not even for admin changes.
variant() { # LABEL TOLLGATED_ARGS...
	local label=$1
	shift
	stop_pid "$TG_PID"
	start_tg "$MOCK_fast" "$@"
	new_keys 100 enterprise "$tmp/keys.hi"
	SEC_SAVE=$SEC SEC=2
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "warm$label" "http://$TG_DATA" "$tmp/keys.hi" 32 >/dev/null
	SEC=$SEC_SAVE
	echo "# variant $label: tollgated $* (pid $TG_PID)"
	latency "$label"
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "allowed-tollgated$label" "http://$TG_DATA" "$tmp/keys.hi" 32
	[ "$SERR" = 0 ] || echo "# WARNING: $SERR non-2xx answers through tollgated"
	local rps=$RPS
	metric "allowed_throughput_c32$label" "$rps" req/s "$ng_rps" ">=1.0x nginx" "$(yesno "$rps >= $ng_rps")"
	metric "allowed_cpu_per_request$label" "$(div "$CPU_A" "$OK" %.1f)" us/req "$ng_cpu" "ratio reported" -
}
# data.close_after_refusals=0: the flood on connections tollgated keeps open, as nginx keeps
# them. With the default (20) every 20th refusal closes the connection (rung 1 of the
# escalation) and wrk reconnects, so the default figure above includes a connection set-up
# and teardown per 20 refusals, which the kernel path takes over when it is on.
flood_variant() { # LABEL TOLLGATED_ARGS...
	local label=$1
	shift
	stop_pid "$TG_PID"
	start_tg "$MOCK_fast" "$@"
	new_keys 1 basic "$tmp/keys.lo"
	echo "# variant $label: tollgated $* (pid $TG_PID)"
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "flood-tollgated$label" "http://$TG_DATA" "$tmp/keys.lo" 32
	local fcpu
	fcpu=$(div "$CPU_A" "$SERR" %.2f)
	metric "flood_cpu_per_refusal$label" "$fcpu" us/refusal "$ng_fcpu" "<=1.0x nginx" "$(yesno "$fcpu <= $ng_fcpu")"
}
if [ "$VARIANTS" = 1 ]; then
	flood_variant _keepconn --set data.close_after_refusals=0
	variant _synceach --set store.sync_interval_ms=0
	variant _syncnone --set store.sync=none
fi
fi # BENCH_LIMITS_ONLY

# ---- limits on vs off (issue 5): gateway CPU per allowed request ----
# Every limit set on each key (overrides) and on its owner team:bench, all far above what a
# run uses (every call is checked, reserved, settled and allowed), against the same setup
# with TOLLGATE_LIMITS_ENABLED=false. The two alternate LIMITS_REPS times; the figure is the
# median of each side's CPU per allowed request (goal: on < 1.05 x off).
LIMITS_ALL='"requests_per_day":1000000000,"requests_per_month":1000000000,"tokens_per_minute":1000000000,"tokens_per_hour":1000000000,"tokens_per_day":1000000000,"tokens_per_month":1000000000,"cost_per_hour":1000000,"cost_per_day":1000000,"cost_per_month":1000000,"bytes_per_month":1000000000000,"compute_seconds_per_month":1000000000,"max_concurrent":100000'
limits_keys() { # N FILE: enterprise keys of team:bench with every limit set
	bench_keys "$1" enterprise "$2" "$LIMITS_ALL"
	local code
	code=$(curl -sS --max-time 10 -o "$tmp/limits.put" -w '%{http_code}' -X PUT \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "{$LIMITS_ALL}" "http://$TG_ADMIN/api/v1/limits/team:bench")
	case $code in
	200) ;;
	404) echo "# (no PUT /api/v1/limits in this build: the owner team:bench has no limits, the keys have all)" ;;
	*)
		echo "bench_dataplane: PUT /api/v1/limits/team:bench: $code $(cat "$tmp/limits.put")" >&2
		return 1
		;;
	esac
}
limits_side() { # on|off REP: a fresh tollgated, keys, warm-up, one allowed-path run; sets
	# LCPU_<side>_<rep>; REP "profile": the run is profiled (engine_profile_*), LSHARE set
	local side=$1 rep=$2
	stop_pid "$TG_PID"
	if [ "$side" = off ]; then
		TOLLGATE_LIMITS_ENABLED=false start_tg "$MOCK_fast"
	else
		start_tg "$MOCK_fast"
	fi
	limits_keys 100 "$tmp/keys.lim" || {
		echo "bench_dataplane: setting the limits failed" >&2
		return 1
	}
	SEC_SAVE=$SEC SEC=2
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "warm-limits-$side" "http://$TG_DATA" "$tmp/keys.lim" 32 >/dev/null
	SEC=$SEC_SAVE
	[ "$rep" = profile ] && engine_profile_start "$TG_PID" "$tmp/perf.lim"
	SRV_A=$TG_PID SRV_B=$MOCK_PID_fast load "allowed-limits-$side-$rep" "http://$TG_DATA" "$tmp/keys.lim" 32
	[ "$rep" = profile ] && engine_profile_end "$tmp/perf.lim" LSHARE
	[ "$SERR" = 0 ] || echo "# WARNING: $SERR non-2xx answers with limits $side"
	printf -v "LCPU_${side}_$rep" %s "$(div "$CPU_A" "$OK" %.2f)"
}
# The limits engine's share of tollgated's CPU during a limits-on run, from a profile of that
# same run (an extra run: profiling costs CPU, so the A/B runs are not profiled): the per-run
# CPU of two separate runs moves with the VM's speed by more than the engine costs
# (RESULTS.md), a share within one run does not. TOLLGATE_LIMITS_ENABLED=false still meters
# every call into the windows (so switching limits back on finds them right), which is
# another reason the A/B shows little. perf samples tollgated's
# threads (cpu-clock, DWARF call stacks); a sample counts for the engine when any frame on
# its stack is one of the engine's entry points: the data plane's reserve, settle and
# headers (dataplane_budget.c, which call budget.c and windows.c) and the usage writer's
# bucket flush (usage.c: about once a second, the records since the last flush added to the
# stored buckets, their LMDB writes included). Without perf the figure is skipped.
ENGINE_SYMS="dp_budget_reserve dp_budget_settle dp_budget_headers dp_budget_peek_headers budget_release buckets_flush"
engine_profile_start() { # PID FILE: samples PID for SEC s in the background
	PERF_PID=""
	command -v perf >/dev/null || return 0
	perf record -q -e cpu-clock -F 499 --call-graph dwarf,8192 -p "$1" -o "$2" -- sleep "$SEC" \
		>/dev/null 2>&1 &
	PERF_PID=$!
}
engine_profile_end() { # FILE VAR: VAR = the engine's % of the samples ("" without perf)
	printf -v "$2" %s ""
	[ -n "$PERF_PID" ] || return 0
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=""
	printf -v "$2" %s "$(perf script -i "$1" -F ip,sym 2>/dev/null | awk -v syms="$ENGINE_SYMS" '
		BEGIN { n = split(syms, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 }
		/^[[:space:]]*$/ { if (in_s) { total++; hit += eng } in_s = 0; eng = 0; next }
		{ in_s = 1; s = $NF; sub(/\+0x[0-9a-f]+$/, "", s); if (s in want) eng = 1 }
		END { if (in_s) { total++; hit += eng } if (total) printf "%.2f %d\n", 100 * hit / total, total }')"
	rm -f "$1"
}
if [ "$LIMITS" = 1 ]; then
	on_all="" off_all=""
	for ((rep = 1; rep <= LIMITS_REPS; rep++)); do
		limits_side on "$rep"
		limits_side off "$rep"
		on_v=LCPU_on_$rep off_v=LCPU_off_$rep
		on_all+="${!on_v} " off_all+="${!off_v} "
	done
	on_med=$(median <<<"$on_all") off_med=$(median <<<"$off_all")
	echo "# limits on: $on_all us/req; off: $off_all us/req (tollgated CPU per allowed request, per run)"
	metric limits_cpu_per_request "$on_med" us/req "$off_med" "<1.05x off" \
		"$(yesno "$on_med < 1.05 * $off_med")"
	limits_side on profile
	if [ -n "$LSHARE" ]; then
		echo "# limits engine share of tollgated's CPU in a profiled limits-on run: ${LSHARE% *}% of ${LSHARE#* } samples"
		metric limits_engine_cpu_share "${LSHARE% *}" % 100 "<5% of tollgated's CPU" \
			"$(yesno "${LSHARE% *} < 5")" "$(div "${LSHARE% *}" 100 %.4f)"
	else
		echo "# limits_engine_cpu_share skipped: perf is not installed (apt-get install linux-perf)"
	fi
fi

if [ -n "$STREAMS" ]; then
	stop_pid "$TG_PID"
	stop_pid "$NGINX_PID"
	stop_pid "$MOCK_PID_fast"
	streams
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

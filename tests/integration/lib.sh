# SPDX-License-Identifier: BSD-2-Clause
# Sourced by every integration script (tests/integration/NN_<what_it_proves>.sh): a temporary
# directory per script, the real tollgated started and stopped by PID, curl against its admin
# API, and the one-line-per-case protocol tests/run counts:
#
#   ok - SCRIPT: CASE          not ok - SCRIPT: CASE          skip - SCRIPT: CASE: WHY
#
# A failed case is preceded by "# " lines saying what was expected and what came. On any
# exit (a failed case, an error, a signal) every daemon the script started is stopped by its
# PID and the directory removed; the script exits 1 if a case failed.
#
# Inputs: TG_TOP (repository, default: this checkout), TG_BUILD (default TG_TOP/build, holds
# tollgated and tollctl), TG_GATEWAY_ADDR (default 127.0.0.1, IPv6 allowed): the address the
# daemon under test listens on and the only address the scripts talk to.
#
# A case is either one line,        check "NAME" COMMAND...
# or a block of expectations:       case_start "NAME"; api ...; expect_status 200; ...; case_end
# Requests go through api (curl, admin API) or ctl (tollctl); both set STATUS and BODY.

set -u -o pipefail
export LC_ALL=C # byte order for sort (ids), plain ASCII messages

TG_TOP=${TG_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TG_BUILD=${TG_BUILD:-$TG_TOP/build}
TG_BUILD=$(cd "$TG_BUILD" 2>/dev/null && pwd || echo "$TG_BUILD")
TG_GATEWAY_ADDR=${TG_GATEWAY_ADDR:-127.0.0.1}
# The address as the host of HOST:PORT and of URLs: an IPv6 address goes in brackets.
TG_GATEWAY_HOST=$TG_GATEWAY_ADDR
[[ $TG_GATEWAY_ADDR == *:* && $TG_GATEWAY_ADDR != \[* ]] && TG_GATEWAY_HOST="[$TG_GATEWAY_ADDR]"
TG_SCRIPT=$(basename "$0" .sh)
TOLLGATED=$TG_BUILD/tollgated
TOLLCTL=$TG_BUILD/tollctl

# The bootstrap admin token every daemon gets (TOLLGATE_ADMIN_TOKEN): 48 characters.
TG_TOKEN=tollgate-integration-test-admin-token-0123456789

# Formats the contract promises (docs/admin-api.md).
TG_KEY_RE='^tg_[a-z0-9]{12}_[A-Za-z0-9]{43}$'
TG_TOKEN_RE='^tgadm_[a-z0-9]{12}_[A-Za-z0-9]{32,}$'
TG_TIME_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'

# Whatever the caller's shell exports must not steer the daemon or tollctl under test, nor
# send a request (and a token) anywhere but to the daemon under test.
while IFS= read -r tg_var; do unset "$tg_var"; done < <(compgen -e | grep '^TOLLGATE_')
# Daemons started by scripts leave the kernel alone (no programs on lo, no pins under the
# default pin directory); the kernel tests ask for it (TG_KERNEL_MODE, tg_start_daemon).
export TOLLGATE_KERNEL_MODE=off
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*' NO_PROXY='*'

tmp=$(mktemp -d "${TMPDIR:-/tmp}/itest-$TG_SCRIPT.XXXXXX") || exit 1
TG_LOG=$tmp/daemon.log # stderr of every daemon this script started, appended
TG_STDOUT=""           # stdout of the latest start ($tmp/stdout.N)
TG_PID="" TG_URL="" TG_ADMIN="" TG_EXIT=""
tg_pids=()      # every daemon started
tg_waiter=()    # start number -> PID of the subshell waiting for that daemon
declare -A tg_start_of # daemon PID -> start number
tg_starts=0
tg_failed=0
tg_case_name=""
tg_case_fails=0
STATUS="" BODY="" HEADERS=$tmp/headers
tg_last_request=""

# ---- cases ----

# Opens a case; the expect_* calls that follow count towards it until case_end.
case_start() {
	[ -n "$tg_case_name" ] && case_end
	tg_case_name=$1
	tg_case_fails=0
}

# Prints the case's line: ok, or the diagnostics and not ok.
case_end() {
	local name=$tg_case_name

	[ -n "$name" ] || return 0
	tg_flush
	tg_case_name=""
	if [ "$tg_case_fails" -eq 0 ]; then
		echo "ok - $TG_SCRIPT: $name"
		return 0
	fi
	if [ -n "$tg_last_request" ]; then
		echo "# last request: $tg_last_request -> ${STATUS:-no status}"
		echo "# body: $(printf '%s' "$BODY" | head -c 800 | tr '\n' ' ')"
	fi
	[ -s "$tmp/ctl.err" ] && echo "# stderr: $(head -c 800 "$tmp/ctl.err" | tr '\n' ' ')"
	echo "not ok - $TG_SCRIPT: $name"
	tg_failed=$((tg_failed + 1))
	return 1
}

# One-line case: passes when COMMAND... succeeds.
check() {
	local name=$1
	shift
	case_start "$name"
	expect "$@"
	case_end
}

skip() { # NAME WHY
	echo "skip - $TG_SCRIPT: $1: $2"
}

# Records a failed expectation of the open case, with what was expected and what came.
fail() {
	local line

	while IFS= read -r line; do echo "# $line"; done <<<"$*"
	if [ -z "$tg_case_name" ]; then
		echo "not ok - $TG_SCRIPT: expectation outside a case"
		tg_failed=$((tg_failed + 1))
		return 1
	fi
	tg_case_fails=$((tg_case_fails + 1))
	return 1
}

# Stops the script: what cannot go on (the daemon did not start) is reported as a case.
bail() {
	[ -n "$tg_case_name" ] && case_end
	echo "# daemon log (last lines):"
	tail -n 20 "$TG_LOG" 2>/dev/null | sed 's/^/#   /'
	echo "not ok - $TG_SCRIPT: $1"
	tg_failed=$((tg_failed + 1))
	exit 1
}

# ---- expectations (inside a case) ----

expect() { # COMMAND...: succeeds
	"$@" || fail "expected to succeed: $(printf '%q ' "$@")"
}

expect_not() { # COMMAND...: fails
	! "$@" || fail "expected to fail: $(printf '%q ' "$@")"
}

expect_status() { # CODE
	[ "$STATUS" = "$1" ] || fail "expected status $1, got ${STATUS:-none}"
}

# Expectations on the JSON body are queued and checked together, with one jq for all the
# expectations on one body (jq's start-up dominates a run): before the next request, when
# the case ends, or when an expectation comes for another body. Each failure names the
# request it is about.
tg_q_kind=() tg_q_filter=() tg_q_want=()
tg_q_body="" tg_q_request=""

tg_queue() { # KIND (json|match|jq) FILTER WANT
	[ "${#tg_q_kind[@]}" -gt 0 ] && [ "$tg_q_body" != "$BODY" ] && tg_flush
	tg_q_body=$BODY tg_q_request=$tg_last_request
	tg_q_kind+=("$1") tg_q_filter+=("$2") tg_q_want+=("$3")
}

tg_flush() {
	local n=${#tg_q_kind[@]} prog="" i got=() g about=""

	# Not from a subshell ($(snapshot)): its failures would be lost; the script flushes later.
	[ "$n" -gt 0 ] && [ "$BASHPID" = "$$" ] || return 0
	# Each result as text ("null" for null, JSON for non-strings), NUL-terminated.
	for ((i = 0; i < n; i++)); do
		prog+="${prog:+, }(try ([${tg_q_filter[$i]}] | if length == 1 then .[0] else . end
			| if type == \"string\" then . else tojson end) catch \"jq error: \\(.)\"), \"\\u0000\""
	done
	mapfile -t -d '' got < <(jq -j "$prog" <<<"$tg_q_body" 2>/dev/null)
	[ -n "$tg_q_request" ] && about=" (answer to $tg_q_request)"
	for ((i = 0; i < n; i++)); do
		g=${got[$i]-}
		case ${tg_q_kind[$i]} in
		json) [ "$g" = "${tg_q_want[$i]}" ] ||
			fail "expected ${tg_q_filter[$i]} to be '${tg_q_want[$i]}', got '$g'$about" ;;
		match) [[ $g =~ ${tg_q_want[$i]} ]] ||
			fail "expected ${tg_q_filter[$i]} to match /${tg_q_want[$i]}/, got '$g'$about" ;;
		jq) [ "$g" = true ] || fail "expected the body to satisfy: ${tg_q_filter[$i]}$about" ;;
		esac
	done
	tg_q_kind=() tg_q_filter=() tg_q_want=()
}

# The jq FILTER applied to the last body gives exactly VALUE (null for null or missing).
expect_json() { # FILTER VALUE
	tg_queue json "$1" "$2"
}

# The jq FILTER applied to the last body gives text matching the extended REGEX.
expect_match() { # FILTER REGEX
	tg_queue match "$1" "$2"
}

# The jq FILTER applied to the last body is true. jq options (--arg a v) may come first.
expect_jq() { # [JQ_OPTIONS...] FILTER
	local filter=${!#}

	if [ $# -eq 1 ]; then
		tg_queue jq "$filter" true
		return 0
	fi
	jq -e "${@:1:$#-1}" "$filter" >/dev/null 2>&1 <<<"$BODY" ||
		fail "expected the body to satisfy: $filter"
}

# An error in the contract's shape: status, error.type, error.code, a message, and param
# (the string "null" for a JSON null) when given.
expect_error() { # STATUS TYPE CODE [PARAM]
	expect_status "$1"
	expect_json .error.type "$2"
	expect_json .error.code "$3"
	expect_jq '.error.message | type == "string" and length > 0'
	[ $# -lt 4 ] || expect_json .error.param "$4"
}

# WHAT is the same before and after (two texts); a diff otherwise.
expect_same() { # WHAT BEFORE AFTER
	[ "$2" = "$3" ] || fail "expected $1 to be unchanged; diff before/after:
$(diff <(printf '%s\n' "$2" | jq -S . 2>/dev/null || printf '%s\n' "$2") \
		<(printf '%s\n' "$3" | jq -S . 2>/dev/null || printf '%s\n' "$3") | head -n 20)"
}

# The last response has header NAME (case-insensitive), whose value matches REGEX if given.
expect_header() { # NAME [REGEX]
	local v

	if ! v=$(header "$1"); then
		fail "expected a $1 header; headers were: $(tr -d '\r' <"$HEADERS" | tr '\n' '|')"
		return 1
	fi
	[ $# -lt 2 ] || [[ $v =~ $2 ]] || fail "expected header $1 to match /$2/, got '$v'"
}

# ---- the admin API ----

# api METHOD PATH [BODY [TOKEN]] [-- CURL_ARGS...]
# Sends one request to the daemon under test and sets STATUS and BODY, with the response
# headers in $HEADERS. BODY is JSON text, or @FILE; it goes as application/json unless CT
# names another type (CT=text/plain api POST ...; CT=none: no Content-Type). TOKEN defaults to the bootstrap admin
# token; "" sends no Authorization header. CURL_ARGS are extra curl options (headers).
api() {
	local pos=()

	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		pos+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	local method=${pos[0]} path=${pos[1]} body=${pos[2]-} token=${pos[3]-$TG_TOKEN}
	[ -d "$tmp" ] || bail "the temporary directory $tmp still exists (something else removed it)"
	tg_flush # the expectations on the previous answer, so diagnostics come in order
	local args=(-sS --globoff --max-time 10 -X "$method" -o "$tmp/body" -D "$HEADERS" -w '%{http_code}')

	[ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
	if [ -n "$body" ] && [ "${CT-}" = none ]; then
		args+=(-H 'Content-Type:' --data-binary "$body")
	elif [ -n "$body" ]; then
		args+=(-H "Content-Type: ${CT:-application/json}" --data-binary "$body")
	fi
	: >"$tmp/body"
	: >"$HEADERS"
	: >"$tmp/ctl.err"
	tg_last_request="$method $path"
	if curl "${args[@]}" "$@" "$TG_URL$path" >"$tmp/status" 2>"$tmp/curl.err"; then
		read -r STATUS <"$tmp/status"
	else
		STATUS="curl failed: $(cat "$tmp/curl.err")"
	fi
	IFS= read -r -d '' BODY <"$tmp/body"
}

# Prints the value of response header NAME of the last request; fails if absent.
header() { # NAME
	local v

	v=$(tr -d '\r' <"$HEADERS" | grep -i "^$1:" | tail -n 1) || return 1
	v=${v#*:}
	v=${v# }
	printf '%s\n' "$v"
}

# Prints the jq FILTER of the last body (raw).
json() { # FILTER
	jq -r "$1" <<<"$BODY"
}

# Creates an API key as the admin; prints the whole create response (key object plus key).
new_key() { # JSON_BODY
	api POST /api/v1/keys "$1"
	[ "$STATUS" = 201 ] || {
		echo "# new_key $1: status $STATUS: $BODY" >&2
		return 1
	}
	printf '%s\n' "$BODY"
}

# Creates an admin token as the admin; prints the whole create response (with token).
new_token() { # JSON_BODY
	api POST /api/v1/admin/tokens "$1"
	[ "$STATUS" = 201 ] || {
		echo "# new_token $1: status $STATUS: $BODY" >&2
		return 1
	}
	printf '%s\n' "$BODY"
}

# ---- tollctl ----

# ctl [TOLLCTL_ARGS...]: runs tollctl against the daemon under test (TOLLGATE_ADMIN_URL) with
# the bootstrap token in TOLLGATE_ADMIN_TOKEN (CTL_TOKEN overrides it; CTL_TOKEN= sends none).
# Sets CTL_RC, BODY (stdout) and CTL_ERR (stderr; also appended to $tmp/ctl.stderr.all);
# STATUS reads "exit N".
ctl() {
	local token=${CTL_TOKEN-$TG_TOKEN} envs=(-u TOLLGATE_ADMIN_TOKEN "TOLLGATE_ADMIN_URL=$TG_URL")

	[ -n "$token" ] && envs+=("TOLLGATE_ADMIN_TOKEN=$token")
	tg_flush
	tg_last_request="tollctl $*"
	timeout 30 env "${envs[@]}" "$TOLLCTL" "$@" >"$tmp/ctl.out" 2>"$tmp/ctl.err" </dev/null
	CTL_RC=$?
	STATUS="exit $CTL_RC"
	BODY=$(cat "$tmp/ctl.out")
	CTL_ERR=$(cat "$tmp/ctl.err")
	cat "$tmp/ctl.err" >>"$tmp/ctl.stderr.all"
}

expect_exit() { # N: tollctl's exit status
	[ "$CTL_RC" = "$1" ] || fail "expected tollctl to exit $1, got $CTL_RC"
}

# ---- the daemon ----

tg_alive() { # PID: running and not a zombie
	local st

	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# Waits until FILE is non-empty: up to TRIES checks STEP seconds apart, giving up early once
# PID (when given, non-empty) has exited. 0 when the file has content.
tg_wait_file() { # FILE TRIES STEP [PID]
	local i
	for ((i = 0; i < $2; i++)); do
		[ -s "$1" ] && return 0
		[ -n "${4:-}" ] && ! tg_alive "$4" && break
		sleep "$3"
	done
	[ -s "$1" ]
}

# tg_start_daemon [TOLLGATED_ARGS...]
# Starts build/tollgated in the background on store ${TG_STORE:-$tmp/store}, admin API on
# ${TG_LISTEN-$TG_GATEWAY_HOST:0} (TG_LISTEN= leaves --admin-listen out), with the bootstrap
# token TG_TOKEN (TG_NO_ADMIN_TOKEN=1: none) and cheap argon2 parameters. stdout goes to
# $TG_STDOUT, stderr is appended to $TG_LOG. Waits up to 10 s for the ready file; sets
# TG_PID, TG_ADMIN (host:port) and TG_URL. Returns 1, having said why, if it is not ready.
tg_start_daemon() {
	local store=${TG_STORE:-$tmp/store} listen=${TG_LISTEN-$TG_GATEWAY_HOST:0}
	local ready=$tmp/ready i
	local args=(run --store "$store" --ready-file "$ready")
	local envs=(TOLLGATE_KEYS_ARGON2_M_COST_KIB=256 TOLLGATE_KEYS_ARGON2_T_COST=1
		"TOLLGATE_KERNEL_MODE=${TG_KERNEL_MODE:-off}"
		TOLLGATE_KEYS_ARGON2_PER_SEC=100000 "TOLLGATE_DATA_LISTEN=$TG_GATEWAY_HOST:0")

	# The global argon2 budget is raised so that only keys.fail_limit throttles here. The
	# data plane gets a free port (options given to a test override it), so scripts never
	# compete for 8080 with each other or with a running gateway.
	[ -n "$listen" ] && args+=(--admin-listen "$listen")
	[ -z "${TG_NO_ADMIN_TOKEN:-}" ] && envs+=("TOLLGATE_ADMIN_TOKEN=$TG_TOKEN")
	rm -f "$ready"
	tg_starts=$((tg_starts + 1))
	TG_STDOUT=$tmp/stdout.$tg_starts
	echo "---- start $tg_starts: tollgated ${args[*]} $*" >>"$TG_LOG"
	# A subshell waits for the daemon and keeps its exit status, so that a daemon killed on
	# purpose is reaped there, without bash printing "Killed" into the test output.
	(
		env -u TOLLGATE_ADMIN_TOKEN "${envs[@]}" "$TOLLGATED" "${args[@]}" "$@" \
			>"$TG_STDOUT" 2>>"$TG_LOG" </dev/null &
		echo "$!" >"$tmp/pid.$tg_starts"
		wait "$!"
		echo "$?" >"$tmp/exit.$tg_starts"
	) 2>/dev/null &
	tg_waiter[$tg_starts]=$!
	tg_wait_file "$tmp/pid.$tg_starts" 200 0.01
	TG_PID=$(cat "$tmp/pid.$tg_starts")
	tg_start_of[$TG_PID]=$tg_starts
	tg_pids+=("$TG_PID")
	tg_wait_file "$ready" 200 0.05 "$TG_PID"
	if ! [ -s "$ready" ] || ! TG_ADMIN=$(jq -er .admin "$ready"); then
		echo "# tollgated (pid $TG_PID) did not write its ready file within 10 s"
		tg_alive "$TG_PID" || echo "# it exited"
		return 1
	fi
	[ "$(jq -r .pid "$ready")" = "$TG_PID" ] || echo "# ready file pid is not $TG_PID"
	TG_URL=http://$TG_ADMIN
}

# SIGTERM to the current daemon, up to 10 s to exit, then SIGKILL. TG_EXIT gets its status.
tg_stop_daemon() {
	tg_stop_pid "$TG_PID" TERM
}

# SIGKILL to the current daemon (a crash), reaped.
tg_kill_daemon() {
	tg_stop_pid "$TG_PID" KILL
}

tg_stop_pid() { # PID SIGNAL
	local pid=$1 i n

	[ -n "$pid" ] || return 0
	kill -"$2" "$pid" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		tg_alive "$pid" || break
		sleep 0.05
	done
	if tg_alive "$pid"; then
		echo "# pid $pid still runs 10 s after SIG$2: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
	fi
	n=${tg_start_of[$pid]}
	wait "${tg_waiter[$n]}"
	TG_EXIT=$(cat "$tmp/exit.$n" 2>/dev/null)
}

# A TCP port on 127.0.0.1 where nothing listens (for "unreachable" cases).
tg_closed_port() {
	local p

	for ((p = 29000 + RANDOM % 1000; p < 31000; p++)); do
		[ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && {
			echo "$p"
			return 0
		}
	done
	return 1
}

# ---- the data plane (docs/data-plane.md) and its upstream, mock-llm (docs/mock-llm.md) ----
#
# A data-plane script starts mock-llm (tg_start_mock), then tollgated with its data listener
# on $TG_GATEWAY_ADDR and the built-in provider pointing at the mock (tg_start_gateway), and
# sends requests with an API key through dp. Costs are computed here from the default price
# table (userspace/providers.c) and token counts from mock-llm's rule, so every expected
# number is known before the request is sent.

MOCK_LLM=$TG_BUILD/mock-llm
MOCK_PID="" MOCK_URL="" MOCK_EXIT=""
TG_DATA="" TG_DATA_URL=""
DP_KEY=""  # the API key dp sends when none is given
DP_RC=0    # curl's exit status of the last dp request (18: body cut, 28: timed out)
tg_mock_pids=()
declare -A tg_mock_waiter # mock PID -> PID of the subshell waiting for it
tg_mock_starts=0

# tg_start_mock [MOCK_LLM_ARGS...]
# Starts build/mock-llm on 127.0.0.1, any free port, stderr appended to $tmp/mock.log; waits
# up to 5 s for its ready file. Sets MOCK_PID and MOCK_URL (http://host:port, no /v1).
tg_start_mock() {
	local ready=$tmp/mock.ready n i

	[ -x "$MOCK_LLM" ] || {
		echo "# $MOCK_LLM is not built"
		return 1
	}
	tg_mock_starts=$((tg_mock_starts + 1))
	n=$tg_mock_starts
	rm -f "$ready"
	echo "---- mock start $n: mock-llm $*" >>"$tmp/mock.log"
	(
		"$MOCK_LLM" --listen 127.0.0.1:0 --ready-file "$ready" "$@" \
			>/dev/null 2>>"$tmp/mock.log" </dev/null &
		echo "$!" >"$tmp/mock.pid.$n"
		wait "$!"
		echo "$?" >"$tmp/mock.exit.$n"
	) 2>/dev/null &
	local waiter=$!
	tg_wait_file "$tmp/mock.pid.$n" 200 0.01
	MOCK_PID=$(cat "$tmp/mock.pid.$n")
	tg_mock_waiter[$MOCK_PID]=$waiter
	tg_mock_pids+=("$MOCK_PID")
	tg_wait_file "$ready" 100 0.05 "$MOCK_PID"
	if ! [ -s "$ready" ] || ! MOCK_URL=http://$(jq -er .listen "$ready"); then
		echo "# mock-llm (pid $MOCK_PID) did not write its ready file within 5 s:"
		tail -n 5 "$tmp/mock.log" | sed 's/^/#   /'
		return 1
	fi
}

# SIGTERM to the current mock-llm, up to 5 s to exit, then SIGKILL. MOCK_EXIT: its status.
tg_stop_mock() {
	local pid=$MOCK_PID i

	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		tg_alive "$pid" || break
		sleep 0.05
	done
	tg_alive "$pid" && kill -KILL "$pid" 2>/dev/null
	wait "${tg_mock_waiter[$pid]}" 2>/dev/null
	MOCK_EXIT=$(cat "$tmp/mock.exit.$tg_mock_starts" 2>/dev/null)
}

# mock METHOD PATH [BODY]: one request to the mock's control API (/_mock/...); prints the
# answer's body, fails unless it is a 200.
mock() {
	local args=(-sS --max-time 5 -X "$1" -o "$tmp/mock.body" -w '%{http_code}')
	local code

	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	code=$(curl "${args[@]}" "$MOCK_URL$2" 2>>"$tmp/mock.log") || code="curl failed"
	cat "$tmp/mock.body" 2>/dev/null
	[ "$code" = 200 ] || {
		echo "# mock $1 $2 ${3-}: $code" >&2
		return 1
	}
}

mock_config() { mock PUT /_mock/config "$1" >/dev/null; } # JSON: faults and delays from now on
mock_reset() { mock POST /_mock/reset >/dev/null; }      # faults off, counters zeroed
mock_stats() { mock GET /_mock/stats; }                  # prints the counters
# Prints one counter of the mock's stats (a jq path such as .requests.chat_completions).
mock_stat() { mock GET /_mock/stats | jq -r "$1"; }

# Waits up to 10 s for the mock to have no stream and no hung request in flight (its
# counters of a stream are final a moment after the client read its end).
mock_settle() {
	local i

	for ((i = 0; i < 100; i++)); do
		mock_stats | jq -e '.streams_in_flight == 0 and .hung_in_flight == 0' >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# tg_start_gateway [TOLLGATED_ARGS...]
# tg_start_daemon with the data plane on $TG_GATEWAY_ADDR (any free port) and the built-in
# provider at the mock ($MOCK_URL/v1); sets TG_DATA (host:port, the ready file's "data") and
# TG_DATA_URL, besides what tg_start_daemon sets. Returns 1, having said why, if not ready.
tg_start_gateway() {
	tg_start_daemon --set "upstream.default_url=$MOCK_URL/v1" \
		--set "data.listen=$TG_GATEWAY_ADDR:0" "$@" || return 1
	if ! TG_DATA=$(jq -er '.data | strings' "$tmp/ready" 2>/dev/null); then
		echo "# the ready file has no \"data\" address: $(cat "$tmp/ready" 2>/dev/null)"
		return 1
	fi
	TG_DATA_URL=http://$TG_DATA
}

# dp METHOD PATH [BODY [KEY]] [-- CURL_ARGS...]
# One request to the data plane, like api: sets STATUS (the HTTP status, or "curl failed:
# ..." when none came), BODY, the headers in $HEADERS, and DP_RC (curl's exit status: a
# stream cut mid-way still has its status and the body received). BODY goes as
# application/json unless CT says otherwise (CT=none: no Content-Type). KEY defaults to
# $DP_KEY and goes as Authorization: Bearer; "" sends no key. DP_MAX_TIME bounds the request
# (default 10 s).
dp() {
	local pos=()

	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		pos+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	local method=${pos[0]} path=${pos[1]} body=${pos[2]-} key=${pos[3]-$DP_KEY}
	local args=(-sS --max-time "${DP_MAX_TIME:-10}" -X "$method" -o "$tmp/body" -D "$HEADERS"
		-w '%{http_code}')

	[ -d "$tmp" ] || bail "the temporary directory $tmp still exists (something else removed it)"
	[ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
	if [ -n "$body" ] && [ "${CT-}" = none ]; then
		args+=(-H 'Content-Type:' --data-binary "$body")
	elif [ -n "$body" ]; then
		args+=(-H "Content-Type: ${CT:-application/json}" --data-binary "$body")
	fi
	: >"$tmp/body"
	: >"$HEADERS"
	: >"$tmp/ctl.err"
	tg_last_request="$method $TG_DATA_URL$path"
	curl "${args[@]}" "$@" "$TG_DATA_URL$path" >"$tmp/status" 2>"$tmp/curl.err"
	DP_RC=$?
	read -r STATUS <"$tmp/status"
	if [ -z "$STATUS" ] || [ "$STATUS" = 000 ]; then
		STATUS="curl failed: $(cat "$tmp/curl.err")"
	fi
	IFS= read -r -d '' BODY <"$tmp/body"
}

# The data payloads of the server-sent events in BODY, one per line ("[DONE]" included).
sse_data() {
	printf '%s' "$BODY" | tr -d '\r' | sed -n 's/^data: \{0,1\}//p'
}

# The SSE payloads of BODY as one JSON array (text payloads such as [DONE] as strings), so
# that expect_jq can look at a whole stream: BODY=$(sse_json); expect_jq ...
sse_json() {
	sse_data | jq -R '. as $l | try fromjson catch $l' | jq -sc .
}

# usage_of SERVICE [KEY [QUERY]]: prints GET /api/v1/usage/SERVICE?QUERY (default days=1)
# as KEY (default $DP_KEY); fails unless it answers 200. Leaves STATUS and BODY alone.
usage_of() {
	local STATUS BODY tg_last_request=$tg_last_request

	dp GET "/api/v1/usage/$1?${3:-days=1}" "" "${2-$DP_KEY}"
	[ "$STATUS" = 200 ] || {
		echo "# usage_of $1: $STATUS $BODY" >&2
		return 1
	}
	printf '%s\n' "$BODY"
}

# Prompt tokens by mock-llm's rule: ceil(bytes / 4) summed over TEXTs (plus 3 per chat
# message: chat_tokens).
text_tokens() { # TEXT...
	local t n=0 b

	for t in "$@"; do
		b=$(printf '%s' "$t" | wc -c)
		n=$((n + (b + 3) / 4))
	done
	echo "$n"
}
chat_tokens() { # MESSAGE_CONTENT...
	echo $(($(text_tokens "$@") + 3 * $#))
}

# cost_nano MODEL PROMPT_TOKENS COMPLETION_TOKENS: the cost in USD 1e-9 from the default
# price table (USD per 1M tokens: gpt-4o-mini 0.15/0.60, gpt-4o 2.50/10, gpt-3.5-turbo
# 0.50/1.50, text-embedding-3-small 0.02/0), each part rounded up to a nano-dollar.
cost_nano() {
	local p c

	case $1 in
	gpt-4o-mini) p=150000 c=600000 ;;
	gpt-4o) p=2500000 c=10000000 ;;
	gpt-3.5-turbo) p=500000 c=1500000 ;;
	text-embedding-3-small) p=20000 c=0 ;;
	*) return 1 ;;
	esac
	echo $((($2 * p + 999) / 1000 + ($3 * c + 999) / 1000))
}

# The jq FILTER of the last body is a number of USD equal to NANO nano-dollars (within half
# a nano-dollar, or one part in a million for rounding in the number's text).
expect_usd() { # FILTER NANO
	jq -e --argjson n "$2" "($1) as \$v | (\$v | type) == \"number\" and
		((\$v * 1e9 - \$n) | if . < 0 then -. else . end) as \$d |
		(\$d < 0.5 or \$d <= 1e-6 * \$n)" >/dev/null 2>&1 <<<"$BODY" ||
		fail "expected $1 to be $2e-9 USD, got $(jq -c "$1" <<<"$BODY" 2>/dev/null)${tg_last_request:+ (answer to $tg_last_request)}"
}

# What a script expects GET /api/v1/usage to show for its key, summed as it goes: each call
# that should be metered is noted with metered MODEL PROMPT_TOKENS COMPLETION_TOKENS [STATUS].
m_calls=0 m_prompt=0 m_completion=0 m_nano=0 m_errors=0
metered() {
	m_calls=$((m_calls + 1)) m_prompt=$((m_prompt + $2)) m_completion=$((m_completion + $3))
	m_nano=$((m_nano + $(cost_nano "$1" "$2" "$3")))
	[ "${4:-200}" -lt 400 ] || m_errors=$((m_errors + 1))
}
metered_reset() { m_calls=0 m_prompt=0 m_completion=0 m_nano=0 m_errors=0; }

# expect_metered SERVICE [KEY]: GET /api/v1/usage/SERVICE?days=1 as KEY (default $DP_KEY)
# shows exactly the calls noted with metered: requests, tokens, cost and error rate. Leaves
# the usage answer in BODY.
expect_metered() {
	local u

	if ! u=$(usage_of "$1" "${2-$DP_KEY}"); then
		fail "GET /api/v1/usage/$1?days=1 did not answer 200"
		return 1
	fi
	BODY=$u
	expect_json .requests "$m_calls"
	expect_json .prompt_tokens "$m_prompt"
	expect_json .completion_tokens "$m_completion"
	expect_json .total_tokens "$((m_prompt + m_completion))"
	expect_usd .cost "$m_nano"
	expect_json .currency USD
	if [ "$m_calls" -gt 0 ]; then
		expect_jq --argjson e "$m_errors" --argjson n "$m_calls" \
			'(.error_rate - $e / $n) | (. < 1e-6 and . > -1e-6)' ||
			fail "(expected error_rate $m_errors/$m_calls)"
	fi
}

# Functions run by tg_cleanup after every daemon and mock has stopped (lib_net.sh adds the
# removal of its namespaces here).
tg_cleanup_hooks=()

tg_cleanup() {
	local rc=$? pid hook

	[ -n "$tg_case_name" ] && case_end
	for pid in "${tg_pids[@]}"; do
		tg_alive "$pid" && tg_stop_pid "$pid" TERM
	done
	for pid in "${tg_mock_pids[@]}"; do
		tg_alive "$pid" && MOCK_PID=$pid tg_stop_mock
	done
	for hook in "${tg_cleanup_hooks[@]}"; do
		"$hook"
	done
	rm -rf "$tmp"
	[ "$tg_failed" -gt 0 ] && rc=1
	exit "$rc"
}
trap tg_cleanup EXIT
trap 'exit 143' TERM INT HUP

[ -x "$TOLLGATED" ] || bail "tollgated is built ($TOLLGATED missing)"

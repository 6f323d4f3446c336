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
# tollgated and tollctl), TG_GATEWAY_ADDR (default 127.0.0.1): the address the daemon under
# test listens on and the only address the scripts talk to.
#
# A case is either one line,        check "NAME" COMMAND...
# or a block of expectations:       case_start "NAME"; api ...; expect_status 200; ...; case_end

set -u -o pipefail
export LC_ALL=C # byte order for sort (ids), plain ASCII messages

TG_TOP=${TG_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TG_BUILD=${TG_BUILD:-$TG_TOP/build}
TG_BUILD=$(cd "$TG_BUILD" 2>/dev/null && pwd || echo "$TG_BUILD")
TG_GATEWAY_ADDR=${TG_GATEWAY_ADDR:-127.0.0.1}
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
# expectations on one body (jq's start-up dominates a run): when the case ends, or when an
# expectation comes for another body. Each failure names the request it is about.
tg_q_kind=() tg_q_filter=() tg_q_want=()
tg_q_body="" tg_q_request=""

tg_queue() { # KIND (json|match|jq) FILTER WANT
	[ "${#tg_q_kind[@]}" -gt 0 ] && [ "$tg_q_body" != "$BODY" ] && tg_flush
	tg_q_body=$BODY tg_q_request=$tg_last_request
	tg_q_kind+=("$1") tg_q_filter+=("$2") tg_q_want+=("$3")
}

tg_flush() {
	local n=${#tg_q_kind[@]} prog="" i got=() g about=""

	[ "$n" -gt 0 ] || return 0
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
	local args=(-sS --max-time 10 -X "$method" -o "$tmp/body" -D "$HEADERS" -w '%{http_code}')

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

# tg_start_daemon [TOLLGATED_ARGS...]
# Starts build/tollgated in the background on store ${TG_STORE:-$tmp/store}, admin API on
# ${TG_LISTEN-$TG_GATEWAY_ADDR:0} (TG_LISTEN= leaves --admin-listen out), with the bootstrap
# token TG_TOKEN (TG_NO_ADMIN_TOKEN=1: none) and cheap argon2 parameters. stdout goes to
# $TG_STDOUT, stderr is appended to $TG_LOG. Waits up to 10 s for the ready file; sets
# TG_PID, TG_ADMIN (host:port) and TG_URL. Returns 1, having said why, if it is not ready.
tg_start_daemon() {
	local store=${TG_STORE:-$tmp/store} listen=${TG_LISTEN-$TG_GATEWAY_ADDR:0}
	local ready=$tmp/ready i
	local args=(run --store "$store" --ready-file "$ready")
	local envs=(TOLLGATE_KEYS_ARGON2_M_COST_KIB=256 TOLLGATE_KEYS_ARGON2_T_COST=1
		TOLLGATE_KEYS_ARGON2_PER_SEC=100000)

	# The global argon2 budget is raised so that only keys.fail_limit throttles here.
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
	for ((i = 0; i < 200; i++)); do
		[ -s "$tmp/pid.$tg_starts" ] && break
		sleep 0.01
	done
	TG_PID=$(cat "$tmp/pid.$tg_starts")
	tg_start_of[$TG_PID]=$tg_starts
	tg_pids+=("$TG_PID")
	for ((i = 0; i < 200; i++)); do
		[ -s "$ready" ] && break
		tg_alive "$TG_PID" || break
		sleep 0.05
	done
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

tg_cleanup() {
	local rc=$? pid

	[ -n "$tg_case_name" ] && case_end
	for pid in "${tg_pids[@]}"; do
		tg_alive "$pid" && tg_stop_pid "$pid" TERM
	done
	rm -rf "$tmp"
	[ "$tg_failed" -gt 0 ] && rc=1
	exit "$rc"
}
trap tg_cleanup EXIT
trap 'exit 143' TERM INT HUP

[ -x "$TOLLGATED" ] || bail "tollgated is built ($TOLLGATED missing)"

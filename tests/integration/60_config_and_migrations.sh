#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves configuration and store migrations from the outside (README "Configuration" and
# "Store and migrations", userspace/main.c): `tollgated --check` accepts a good file and
# refuses, naming the field, an unknown field, a wrong type, an out-of-range value, and
# malformed JSON; TOLLGATE_* environment overrides apply, with defaults < file < environment
# < options; `migrate --status` reports a missing store without creating it, and an up-to-date
# one with the latest version; a store whose schema_version is newer than this build is
# refused by the daemon and by migrate, with both versions named, and left byte for byte.
. "$(dirname "$0")/lib.sh"

# Runs tollgated in the foreground (bounded), from $tmp so a stray default store would show.
# Sets RC, OUT and ERR.
run_tollgated() { # [ENV=VALUE...] -- TOLLGATED_ARGS...
	local envs=()

	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	(cd "$tmp" && timeout 10 env "${envs[@]}" "$TOLLGATED" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null)
	RC=$?
	OUT=$(cat "$tmp/out")
	ERR=$(cat "$tmp/err")
	tg_last_request="tollgated $*"
	STATUS="exit $RC"
	BODY="stdout: $OUT | stderr: $ERR"
}
expect_rc() { # N
	[ "$RC" = "$1" ] || fail "expected tollgated to exit $1, got $RC"
}
expect_failed() { # tollgated exited non-zero, but not by the timeout
	[ "$RC" != 0 ] && [ "$RC" != 124 ] || fail "expected tollgated to fail at once, got exit $RC"
}
expect_err() { # FIXED_STRING: in stderr
	grep -qF -- "$1" <<<"$ERR" || fail "expected stderr to mention '$1', got '$ERR'"
}
# Grace of a rotation without a body on the current daemon: keys.rotation_grace_sec.
grace_now() {
	local id

	api POST /api/v1/keys '{"name":"g","owner":"team:g"}'
	id=$(json .id)
	api POST "/api/v1/keys/$id/rotate"
	json '(.previous_valid_until | fromdateiso8601) - (.rotated_at | fromdateiso8601)'
}
conf() { # NAME JSON: writes $tmp/NAME.json
	printf '%s\n' "$2" >"$tmp/$1.json"
}

# ---- --check ----
conf good '{"store":{"path":"/var/lib/tollgate","sync":"full"},"admin":{"listen":"127.0.0.1:9999","threads":4},
  "keys":{"fail_limit":7,"rotation_grace_sec":500},"log":{"level":"debug"}}'
case_start "--check on a good file exits 0, says ok and prints the effective configuration"
run_tollgated -- --check "$tmp/good.json"
expect_rc 0
expect grep -qF "$tmp/good.json: ok" <<<"$OUT"
expect_not test -e "$tmp/var"
BODY=$(sed -n '/^{/,$p' <<<"$OUT")
expect_json .keys.fail_limit 7
expect_json .admin.listen 127.0.0.1:9999
expect_json .store.sync full
expect_json .keys.argon2_t_cost 2
case_end

conf empty '{}'
case_start "--check on an empty object exits 0 (defaults need no file)"
run_tollgated -- --check "$tmp/empty.json"
expect_rc 0
expect grep -qF "$tmp/empty.json: ok" <<<"$OUT"
case_end

bad_case() { # WHAT JSON FIELD_NAMED
	conf bad "$2"
	case_start "--check refuses $1 and names $3"
	run_tollgated -- --check "$tmp/bad.json"
	expect_failed
	expect_err "$3"
	case_end
}
bad_case "an unknown field" '{"admin":{"listn":"127.0.0.1:1"}}' admin.listn
bad_case "an unknown section" '{"colour":{"red":1}}' colour.red
bad_case "a string for a number" '{"admin":{"threads":"two"}}' admin.threads
bad_case "a number for a string" '{"store":{"path":5}}' store.path
bad_case "a fraction for an integer" '{"keys":{"fail_limit":2.5}}' keys.fail_limit
bad_case "a value below the range" '{"keys":{"fail_limit":0}}' keys.fail_limit
bad_case "a value above the range" '{"admin":{"max_body_bytes":999999999}}' admin.max_body_bytes
bad_case "a value not in the enum" '{"store":{"sync":"sometimes"}}' store.sync
bad_case "a bad field after good ones" '{"admin":{"threads":2},"keys":{"argon2_t_cost":0}}' keys.argon2_t_cost

case_start "--check refuses malformed JSON, naming the file"
conf bad '{"admin": {"threads": 2'
run_tollgated -- --check "$tmp/bad.json"
expect_failed
expect_err "$tmp/bad.json"
expect_err malformed
case_end

case_start "--check refuses a file whose top level is not an object, and a missing file"
conf bad '[1, 2]'
run_tollgated -- --check "$tmp/bad.json"
expect_failed
expect_err "$tmp/bad.json"
run_tollgated -- --check "$tmp/no-such.json"
expect_failed
expect_err "$tmp/no-such.json"
case_end

# ---- environment and precedence ----
case_start "TOLLGATE_ADMIN_LISTEN sets the admin address when no option does"
TG_LISTEN='' TOLLGATE_ADMIN_LISTEN="$TG_GATEWAY_HOST:0" tg_start_daemon
expect test -n "$TG_URL"
expect test "${TG_ADMIN%:*}" = "$TG_GATEWAY_HOST"
expect test "${TG_ADMIN##*:}" != 8081
api GET /health "" ""
expect_status 200
tg_stop_daemon
case_end

case_start "defaults < config file < TOLLGATE_* environment < --set"
TG_STORE=$tmp/prec tg_start_daemon || fail "tollgated did not start"
grace=$(grace_now)
[ "$grace" = 86400 ] || fail "defaults: expected 86400, got $grace"
tg_stop_daemon
TG_STORE=$tmp/prec tg_start_daemon -c "$tmp/good.json"
grace=$(grace_now)
[ "$grace" = 500 ] || fail "file: expected 500, got $grace"
tg_stop_daemon
TG_STORE=$tmp/prec TOLLGATE_KEYS_ROTATION_GRACE_SEC=600 tg_start_daemon -c "$tmp/good.json"
grace=$(grace_now)
[ "$grace" = 600 ] || fail "file + environment: expected 600, got $grace"
tg_stop_daemon
TG_STORE=$tmp/prec TOLLGATE_KEYS_ROTATION_GRACE_SEC=600 tg_start_daemon -c "$tmp/good.json" \
	--set keys.rotation_grace_sec=700
grace=$(grace_now)
[ "$grace" = 700 ] || fail "file + environment + --set: expected 700, got $grace"
tg_stop_daemon
case_end

case_start "TOLLGATE_CONFIG names the config file"
TG_STORE=$tmp/prec TOLLGATE_CONFIG=$tmp/good.json tg_start_daemon
grace=$(grace_now)
[ "$grace" = 500 ] || fail "TOLLGATE_CONFIG: expected 500, got $grace"
tg_stop_daemon
case_end

case_start "TOLLGATE_ADMIN_MAX_BODY_BYTES applies: a larger body gets 413"
TG_STORE=$tmp/prec TOLLGATE_ADMIN_MAX_BODY_BYTES=2048 tg_start_daemon
printf '{"name":"big","owner":"team:g"}%3000s' '' >"$tmp/big.json"
api POST /api/v1/keys "@$tmp/big.json"
expect_error 413 invalid_request_error body_too_large
tg_stop_daemon
case_end

# data_loops: the listener loops of the running daemon (threads named data-N)
data_loops() { cat /proc/"$TG_PID"/task/*/comm 2>/dev/null | grep -c '^data-[0-9]*$'; }
case_start "data.threads: by default one listener loop per CPU the daemon may run on; a number sets it"
TG_STORE=$tmp/prec tg_start_daemon || fail "tollgated did not start"
n=$(data_loops)
[ "$n" = "$(nproc)" ] || fail "default: expected $(nproc) listener loops (nproc), got $n"
tg_stop_daemon
# narrowed the way taskset or a cpuset narrows it: this shell's mask, inherited by the daemon
mask=$(taskset -p $$ | awk '{print $NF}')
taskset -p -c 0 $$ >/dev/null
TG_STORE=$tmp/prec tg_start_daemon
taskset -p "$mask" $$ >/dev/null
n=$(data_loops)
[ "$n" = 1 ] || fail "on one CPU: expected 1 listener loop, got $n"
tg_stop_daemon
TG_STORE=$tmp/prec tg_start_daemon --set data.threads=3
n=$(data_loops)
[ "$n" = 3 ] || fail "data.threads=3: expected 3 listener loops, got $n"
tg_stop_daemon
case_end

case_start "a bad TOLLGATE_* value stops tollgated at once, naming the variable"
run_tollgated TOLLGATE_KEYS_FAIL_LIMIT=abc -- run --store "$tmp/envbad" --admin-listen "$TG_GATEWAY_HOST:0"
expect_failed
expect_err TOLLGATE_KEYS_FAIL_LIMIT
run_tollgated TOLLGATE_ADMIN_THREADS=0 -- run --store "$tmp/envbad" --admin-listen "$TG_GATEWAY_HOST:0"
expect_failed
expect_err TOLLGATE_ADMIN_THREADS
case_end

case_start "a bad --set stops tollgated at once, naming the field"
run_tollgated -- run --store "$tmp/envbad" --admin-listen "$TG_GATEWAY_HOST:0" --set keys.no_such=1
expect_failed
expect_err keys.no_such
run_tollgated -- run --store "$tmp/envbad" --admin-listen "$TG_GATEWAY_HOST:0" --set keys.fail_limit=-3
expect_failed
expect_err keys.fail_limit
case_end

# ---- migrations ----
case_start "migrate --status on a missing store says it does not exist yet, and creates nothing"
run_tollgated -- migrate --status --store "$tmp/fresh"
expect_rc 0
expect grep -q 'does not exist yet' <<<"$OUT"
expect_not test -e "$tmp/fresh/data.mdb"
case_end
latest=$(grep -oE 'schema version [0-9]+' <<<"$OUT" | grep -oE '[0-9]+$')

case_start "migrate creates a store at the latest version; --status then says up to date"
run_tollgated -- migrate --store "$tmp/migrated"
expect_rc 0
expect test -s "$tmp/migrated/data.mdb"
run_tollgated -- migrate --status --store "$tmp/migrated"
expect_rc 0
expect grep -qE "schema version $latest of $latest \(up to date\)" <<<"$OUT"
expect_not grep -q pending <<<"$OUT"
case_end

case_start "after a start, migrate --status says up to date at the version /ready reports"
tg_start_daemon
api GET /ready "" ""
ready_version=$(json .schema_version)
api POST /api/v1/keys '{"name":"kept","owner":"team:m"}'
tg_stop_daemon
expect test "$ready_version" = "$latest"
run_tollgated -- migrate --status --store "$tmp/store"
expect_rc 0
expect grep -qE "schema version $latest of $latest \(up to date\)" <<<"$OUT"
case_end

newer=4242
case_start "a store can be given a newer schema_version with lmdb-utils (test setup)"
expect grep -q '736368656d615f76657273696f6e' < <(mdb_dump -s meta "$tmp/store" 2>&1)
printf 'schema_version\n\\92\\10\\00\\00\n' | mdb_load -s meta -T "$tmp/store" 2>"$tmp/mdb.err"
expect test $? = 0
dump=$(mdb_dump -s meta "$tmp/store" 2>&1)
expect grep -qx ' 92100000' <<<"$(grep -A1 -x ' 736368656d615f76657273696f6e' <<<"$dump")"
case_end
sum_before=$(sha256sum <"$tmp/store/data.mdb")

case_start "tollgated refuses a store newer than it knows, naming both versions"
run_tollgated TOLLGATE_ADMIN_TOKEN="$TG_TOKEN" -- run --store "$tmp/store" --admin-listen "$TG_GATEWAY_HOST:0" --ready-file "$tmp/ready.newer"
expect_failed
expect_not test -e "$tmp/ready.newer"
expect grep -qw "$newer" <<<"$ERR"
expect grep -qw "$latest" <<<"$ERR"
case_end

case_start "migrate --status refuses it too, naming both versions"
run_tollgated -- migrate --status --store "$tmp/store"
expect_failed
expect grep -qw "$newer" <<<"$OUT $ERR"
expect grep -qw "$latest" <<<"$OUT $ERR"
case_end

case_start "migrate refuses it too"
run_tollgated -- migrate --store "$tmp/store"
expect_failed
expect grep -qw "$newer" <<<"$OUT $ERR"
case_end

case_start "the refused store is left byte for byte as it was"
expect test "$(sha256sum <"$tmp/store/data.mdb")" = "$sum_before"
case_end

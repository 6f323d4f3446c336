#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves that the store is the truth across restarts, and the bootstrap of the first admin
# token (docs/admin-api.md, "Bootstrap"): keys (with overrides, expiry, revocation, rotation),
# tiers and admin tokens are the same after SIGTERM and a new start on the same store, and
# after SIGKILL (what was answered was committed); tokens keep working and revoked ones keep
# failing. Without TOLLGATE_ADMIN_TOKEN, a fresh store gets a generated tgadm_ token printed
# once on stdout, never on the log, and it works; later starts print none;
# TOLLGATE_ADMIN_TOKEN becomes (and, when changed, replaces) the bootstrap token; a revoked
# bootstrap token stays revoked while the value is the same; a too short one stops the
# daemon without being logged.
. "$(dirname "$0")/lib.sh"

TOKEN_RE='tgadm_[a-z0-9]{12}_[A-Za-z0-9]+'
state() { # keys, tiers and tokens as an admin sees them (last_used_at aside: it may lag)
	api GET '/api/v1/keys?limit=1000'
	jq -c '.data | map(del(.last_used_at))' <<<"$BODY"
	api GET /api/v1/tiers
	printf '%s\n' "$BODY"
	api GET /api/v1/admin/tokens
	jq -c '.data | map(del(.last_used_at))' <<<"$BODY"
}

tg_start_daemon || bail "tollgated starts and becomes ready"

# ---- build up state ----
k_plain=$(new_key '{"name":"plain","owner":"team:p"}' | jq -r .id)
k_rich=$(new_key '{"name":"rich","owner":"user:r","service":"chat","tier":"premium",
  "limits":{"requests_per_second":1.5,"max_concurrent":2},"expires_at":"2099-01-01T00:00:00Z"}' | jq -r .id)
k_revoked=$(new_key '{"name":"gone","owner":"team:p"}' | jq -r .id)
k_rotated=$(new_key '{"name":"rot","owner":"team:p"}' | jq -r .id)
api DELETE "/api/v1/keys/$k_revoked"
api POST "/api/v1/keys/$k_rotated/rotate" '{"grace_period_sec":3600}'
api PUT /api/v1/tiers/gold '{"requests_per_second":7.25,"burst":9,"requests_per_minute":1,"requests_per_hour":2,"requests_per_day":3,"tokens_per_minute":4,"tokens_per_month":5,"max_concurrent":6}'
api PUT /api/v1/tiers/basic '{"requests_per_second":11,"burst":21,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":100001,"max_concurrent":0}'
viewer=$(new_token '{"name":"v","role":"viewer"}' | jq -r .token)
consumer=$(new_token '{"name":"c","role":"consumer","consumer":"acme","tier":"gold"}' | jq -r .token)
revoked_resp=$(new_token '{"name":"r","role":"admin"}')
revoked=$(jq -r .token <<<"$revoked_resp")
api DELETE "/api/v1/admin/tokens/$(jq -r .id <<<"$revoked_resp")"
[ -n "$k_plain" ] && [ -n "$k_rich" ] && [ -n "$k_rotated" ] && [ -n "$viewer" ] && [ -n "$consumer" ] ||
	bail "the admin creates the state this script needs"
before=$(state)

case_start "SIGTERM stops tollgated with exit status 0"
tg_stop_daemon
expect test "$TG_EXIT" = 0
case_end

case_start "after SIGTERM and a new start on the same store, keys, tiers and tokens are the same"
tg_start_daemon || fail "tollgated did not start again"
expect_same "keys, tiers and tokens" "$before" "$(state)"
case_end

case_start "after the restart the tokens still work and the revoked one still fails"
api GET /api/v1/keys "" "$viewer"
expect_status 200
api GET /api/v1/keys
expect_status 200
api GET /api/v1/keys "" "$revoked"
expect_error 401 authentication_error invalid_token
api POST /api/v1/keys '{"name":"after-restart"}' "$consumer"
expect_status 201
expect_json .tier gold
expect_json .owner consumer:acme
case_end

case_start "after the restart, changes refused before are still refused (the revoked key)"
api DELETE "/api/v1/keys/$k_revoked"
expect_error 409 conflict_error key_revoked
case_end

# What was answered before a SIGKILL must be in the store.
api POST /api/v1/keys '{"name":"last-words","owner":"team:k"}'
k_last=$(json .id)
api DELETE "/api/v1/keys/$k_plain"
api PATCH "/api/v1/keys/$k_rich" '{"name":"rich-renamed"}'
api PUT /api/v1/tiers/gold '{"requests_per_second":8,"burst":9,"requests_per_minute":1,"requests_per_hour":2,"requests_per_day":3,"tokens_per_minute":4,"tokens_per_month":5,"max_concurrent":6}'
before=$(state)
case_start "after SIGKILL and a new start, every answered change is there"
tg_kill_daemon
tg_start_daemon || fail "tollgated did not start after SIGKILL"
expect_same "keys, tiers and tokens" "$before" "$(state)"
api GET "/api/v1/keys/$k_last"
expect_status 200
api GET "/api/v1/keys/$k_plain"
expect_json .status revoked
api GET "/api/v1/keys/$k_rich"
expect_json .name rich-renamed
case_end

case_start "after SIGKILL and a new start, the tokens still work"
api GET /api/v1/keys "" "$viewer"
expect_status 200
api GET /api/v1/keys "" "$consumer"
expect_status 200
case_end
tg_stop_daemon

# ---- bootstrap ----
export TG_STORE=$tmp/boot

case_start "first start without TOLLGATE_ADMIN_TOKEN prints one generated tgadm_ token on stdout"
TG_NO_ADMIN_TOKEN=1 tg_start_daemon || fail "tollgated did not start"
generated=$(grep -oE "$TOKEN_RE" "$TG_STDOUT" | sort -u)
expect test "$(grep -oE "$TOKEN_RE" "$TG_STDOUT" | wc -l)" = 1
case_end

case_start "the generated token is an admin token that works"
api GET /api/v1/admin/tokens "" "$generated"
expect_status 200
expect_jq '(.data | length) == 1 and .data[0].role == "admin"'
api POST /api/v1/keys '{"name":"by-generated","owner":"team:b"}' "$generated"
expect_status 201
case_end

case_start "the generated token is not in the log, nor in the store"
expect test -n "$generated"
expect_not grep -qF "$generated" "$TG_LOG"
expect_not grep -qF "${generated##*_}" "$TG_LOG"
expect_not grep -qaF "${generated##*_}" "$TG_STORE/data.mdb"
case_end

case_start "a second start on that store prints no token, and the generated one still works"
tg_stop_daemon
TG_NO_ADMIN_TOKEN=1 tg_start_daemon || fail "tollgated did not start"
expect_not grep -qE 'tgadm_' "$TG_STDOUT"
api GET /api/v1/keys "" "$generated"
expect_status 200
case_end

case_start "TOLLGATE_ADMIN_TOKEN on that store becomes the bootstrap admin token; nothing is printed"
tg_stop_daemon
tg_start_daemon || fail "tollgated did not start"
expect_not grep -qE 'tgadm_' "$TG_STDOUT"
api GET /api/v1/admin/tokens
expect_status 200
expect_jq '[.data[] | select(.id == "bootstrap")] | length == 1 and .[0].role == "admin"'
api GET /api/v1/keys "" "$generated"
expect_status 200
case_end

case_start "a changed TOLLGATE_ADMIN_TOKEN replaces the earlier bootstrap value"
tg_stop_daemon
old_token=$TG_TOKEN
TG_TOKEN=tollgate-integration-test-second-token-abcdefghij
tg_start_daemon || fail "tollgated did not start"
api GET /api/v1/keys "" "$old_token"
expect_error 401 authentication_error invalid_token
api GET /api/v1/keys
expect_status 200
api GET /api/v1/admin/tokens
expect_jq '[.data[] | select(.id == "bootstrap")] | length == 1'
tg_stop_daemon
case_end

case_start "a revoked bootstrap token stays revoked when tollgated starts again with the same value"
tg_start_daemon || fail "tollgated did not start"
api DELETE /api/v1/admin/tokens/bootstrap "" "$generated"
expect_status 200
tg_stop_daemon
tg_start_daemon || fail "tollgated did not start"
api GET /api/v1/keys
expect_error 401 authentication_error invalid_token
case_end

case_start "a new TOLLGATE_ADMIN_TOKEN value replaces the revoked bootstrap token and works"
tg_stop_daemon
TG_TOKEN=tollgate-integration-test-third-token-0123456789
tg_start_daemon || fail "tollgated did not start"
api GET /api/v1/keys
expect_status 200
api GET /api/v1/admin/tokens
expect_jq '[.data[] | select(.id == "bootstrap")] | length == 1 and .[0].status == "active"'
tg_stop_daemon
case_end

case_start "a fresh store with TOLLGATE_ADMIN_TOKEN generates and prints no token"
TG_STORE=$tmp/boot2 tg_start_daemon || fail "tollgated did not start"
expect_not grep -qE 'tgadm_' "$TG_STDOUT"
api GET /api/v1/admin/tokens
expect_jq '[.data[].id] == ["bootstrap"]'
tg_stop_daemon
case_end

case_start "a TOLLGATE_ADMIN_TOKEN under 32 characters stops tollgated, and is not logged"
short=short-token-$RANDOM
(cd "$tmp" && timeout 10 env TOLLGATE_ADMIN_TOKEN="$short" "$TOLLGATED" run --store "$tmp/boot3" \
	--admin-listen "$TG_GATEWAY_HOST:0" >"$tmp/short.out" 2>"$tmp/short.err" </dev/null)
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "expected tollgated to fail at once, got exit $rc"
expect grep -q 32 "$tmp/short.err"
expect_not grep -qF "$short" "$tmp/short.err" "$tmp/short.out"
case_end

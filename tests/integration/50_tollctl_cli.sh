#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves tollctl does what docs/tollctl.md says against the real daemon: keys create, list
# (pages, --all), show, update, revoke, rotate; tiers list and set; tokens create, list and
# revoke; health and ready; --json output that jq parses; human tables with their header;
# the new secret printed once on stdout and never on stderr; --token-file; and the exit
# statuses 0, 2 (usage), 3 (not found), 4 (auth), 5 (rejected), 6 (unreachable). What each
# command changed is checked on the server through the admin API, not by tollctl's word.
. "$(dirname "$0")/lib.sh"

[ -x "$TOLLCTL" ] || bail "tollctl is built ($TOLLCTL missing)"
tg_start_daemon || bail "tollgated starts and becomes ready"

# The line of the last stdout that starts with NAME: (a field view), value only.
field() { grep -E "^$1: " <<<"$BODY" | head -n 1 | sed -E "s/^$1: +//"; }
expect_field() { # NAME VALUE
	local got

	got=$(field "$1")
	[ "$got" = "$2" ] || fail "expected the line '$1: $2', got '$1: $got'"
}
expect_stdout() { # EXTENDED_REGEX: some line of stdout matches
	grep -qE "$1" <<<"$BODY" || fail "expected stdout to have a line matching /$1/"
}
expect_stderr() { # [--] EXTENDED_REGEX
	[ "$1" = -- ] && shift
	grep -qE -- "$1" <<<"$CTL_ERR" || fail "expected stderr to match /$1/, got '$CTL_ERR'"
}

case_start "--version prints the version and exits 0"
ctl --version
expect_exit 0
expect_stdout '^tollctl [0-9]+\.[0-9]+\.[0-9]+$'
case_end

case_start "health and ready need no token and print field lines"
CTL_TOKEN='' ctl health
expect_exit 0
expect_field status ok
CTL_TOKEN='' ctl ready
expect_exit 0
expect_field status ready
expect_stdout '^schema_version: +[0-9]+$'
expect_stdout '^keys: +0$'
case_end

# ---- keys ----
case_start "keys create prints the key once on stdout under 'Save this key now', then its fields"
ctl keys create --name cli-bot --owner team:cli --service chat --limit requests_per_second=5 --expires +30d
expect_exit 0
expect_stdout '^Save this key now; it will not be shown again:$'
key=$(grep -oE 'tg_[a-z0-9]{12}_[A-Za-z0-9]{43}' <<<"$BODY" | head -n 1)
expect test "$(grep -oE 'tg_[a-z0-9]{12}_[A-Za-z0-9]{43}' <<<"$BODY" | wc -l)" = 1
expect_stdout "^ +$key\$"
expect_field owner team:cli
expect_field service chat
expect_field status active
expect_stdout '^limits:$'
expect_stdout '^  requests_per_second: +5$'
expect_not grep -q 'tg_' <<<"$CTL_ERR"
case_end
key_id=$(field id)

case_start "keys create made the key on the server as asked (expires +30d)"
api GET "/api/v1/keys/$key_id"
expect_status 200
expect_json .name cli-bot
expect_json .limits.requests_per_second 5
expect_jq '(.expires_at | fromdateiso8601) - now | . > 29 * 86400 and . < 31 * 86400'
expect test "$key" != ""
expect_jq --arg k "$key" '.prefix as $p | $k | startswith($p)'
case_end

case_start "--json keys create prints the server's JSON: jq reads the key"
ctl --json keys create --name json-bot --owner team:cli --tier premium
expect_exit 0
expect_json .object api_key
expect_match .key "$TG_KEY_RE"
expect_json .tier premium
case_end
json_id=$(json .id)

for i in 1 2 3; do ctl --json keys create --name "more-$i" --owner team:more >/dev/null; done

case_start "keys list prints a table with its header and one row per key"
ctl keys list --owner team:cli
expect_exit 0
expect test "$(head -n 1 <<<"$BODY" | tr -s ' ')" = "ID NAME OWNER SERVICE TIER STATUS SLOT CREATED LAST USED"
expect_stdout "^$key_id +cli-bot +team:cli +chat +basic +active +[0-9]+ +[0-9T:Z-]+ +-\$"
expect_stdout "^$json_id +json-bot +team:cli +default +premium +active "
expect test "$(wc -l <<<"$BODY")" = 3
case_end

case_start "keys list --json prints the server's list"
ctl --json keys list --owner team:cli
expect_exit 0
expect_json .object list
expect_jq --arg a "$key_id" --arg b "$json_id" '[.data[].id] == ([$a, $b] | sort)'
case_end

case_start "keys list --limit pages: says on stderr that more follow; --after goes on"
ctl keys list --owner team:more --limit 2
expect_exit 0
expect test "$(wc -l <<<"$BODY")" = 3
expect_stderr '^tollctl: more keys follow: add --after [a-z0-9]{12}, or --all'
after=$(grep -oE -- '--after [a-z0-9]{12}' <<<"$CTL_ERR" | cut -d' ' -f2)
ctl keys list --owner team:more --limit 2 --after "$after"
expect_exit 0
expect test "$(wc -l <<<"$BODY")" = 2
case_end

case_start "keys list --all follows the pages; with --json it is one list of every key"
ctl keys list --owner team:more --limit 1 --all
expect_exit 0
expect test "$(wc -l <<<"$BODY")" = 4
ctl --json keys list --owner team:more --limit 1 --all
expect_exit 0
expect_jq '.object == "list" and (.data | length) == 3 and ([.data[].name] | sort) == ["more-1","more-2","more-3"]'
case_end

case_start "keys show prints every field; --json prints the key object"
ctl keys show "$key_id"
expect_exit 0
expect_field id "$key_id"
expect_field name cli-bot
expect_stdout '^effective_limits:$'
expect_stdout '^  burst: +20$'
expect_not grep -q "$key" <<<"$BODY"
ctl --json keys show "$key_id"
expect_exit 0
expect_json .id "$key_id"
expect_jq 'has("key") | not'
case_end

case_start "keys update changes the key on the server: name, tier, limits, expiry"
ctl keys update "$key_id" --name cli-bot-2 --tier premium --limit burst=7 --expires never
expect_exit 0
expect_field name cli-bot-2
api GET "/api/v1/keys/$key_id"
expect_json .name cli-bot-2
expect_json .tier premium
expect_jq '.limits == {"requests_per_second":5,"burst":7}'
expect_json .expires_at null
case_end

case_start "keys update --clear-limit and --limit FIELD=null remove overrides"
ctl keys update "$key_id" --clear-limit burst --limit requests_per_second=null
expect_exit 0
api GET "/api/v1/keys/$key_id"
expect_jq '.limits == {}'
expect_json .effective_limits.burst 200
case_end

case_start "keys update --limit takes every limit field keys create and the admin API take"
ctl keys update "$key_id" --limit tokens_per_day=5000 --limit cost_per_day=0.25 \
	--limit cost_window=rolling --limit compute_seconds_per_month=1.5 --limit mode=soft \
	--limit action=alert --limit alert_threshold=0.9 --limit token_quota_days=7
expect_exit 0
api GET "/api/v1/keys/$key_id"
expect_jq '.limits == {"tokens_per_day":5000,"cost_per_day":0.25,"cost_window":"rolling","compute_seconds_per_month":1.5,"mode":"soft","action":"alert","alert_threshold":0.9,"token_quota_days":7}'
ctl keys update "$key_id" --limit mode=lenient
expect_exit 2
expect_stderr "^tollctl: --limit mode: 'lenient' is not one of hard, soft$"
ctl keys update "$key_id" --limit cost_per_day=0.1234567891
expect_exit 2
expect_stderr "--limit cost_per_day: '0.1234567891' is not an amount in USD"
ctl keys update "$key_id" --clear-limit tokens_per_day --clear-limit cost_per_day \
	--clear-limit cost_window --clear-limit compute_seconds_per_month --limit mode=null \
	--limit action=null --limit alert_threshold=null --limit token_quota_days=null
expect_exit 0
api GET "/api/v1/keys/$key_id"
expect_jq '.limits == {}'
ctl keys create --name x2 --owner team:cli --limit requests_per_month=10 --limit bytes_per_month=4096
expect_exit 0
api GET "/api/v1/keys?owner=team:cli&limit=100"
expect_jq '[.data[] | select(.name == "x2") | .limits] == [{"requests_per_month":10,"bytes_per_month":4096}]'
case_end

case_start "keys rotate prints the new key once and until when the previous one works"
ctl keys rotate "$key_id" --grace 3600
expect_exit 0
expect_stdout '^Save this key now; it will not be shown again:$'
new_key=$(grep -oE 'tg_[a-z0-9]{12}_[A-Za-z0-9]{43}' <<<"$BODY" | head -n 1)
expect test -n "$new_key"
expect test "$new_key" != "$key"
expect_stdout '^The previous key stays valid until [0-9T:Z-]+\.$'
api GET "/api/v1/keys/$key_id"
expect_jq '(.previous_valid_until | fromdateiso8601) - (.rotated_at | fromdateiso8601) == 3600'
case_end

case_start "keys rotate --json gives the new key to jq"
ctl --json keys rotate "$key_id" --grace 0
expect_exit 0
expect_match .key "$TG_KEY_RE"
expect_json .id "$key_id"
case_end

case_start "keys revoke revokes on the server and prints status: revoked"
ctl keys revoke "$json_id"
expect_exit 0
expect_field status revoked
api GET "/api/v1/keys/$json_id"
expect_json .status revoked
case_end

# ---- tiers ----
case_start "tiers list prints the default tiers in a table with its header"
ctl tiers list
expect_exit 0
expect test "$(head -n 1 <<<"$BODY" | tr -s ' ')" = "NAME RPS BURST RPM RPH RPD TPM TOKENS/MONTH MAX CONC ACTIONS"
expect_stdout '^basic +10 +20 +0 +0 +0 +0 +100000 +0 +-$'
expect_stdout '^enterprise +1000 +2000 +0 +0 +0 +0 +1000000000 +0 +-$'
expect_stdout '^premium +100 +200 +0 +0 +0 +0 +10000000 +0 +-$'
case_end

case_start "tiers set creates a tier with --rps and --burst, other limits 0"
ctl tiers set gold --rps 50 --burst 100 --tokens-per-month 5000000
expect_exit 0
expect_field name gold
api GET /api/v1/tiers/gold
expect_status 200
expect_jq '. == {"object":"tier","name":"gold","requests_per_second":50,"burst":100,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":5000000,"max_concurrent":0}'
case_end

case_start "tiers set merges into an existing tier"
ctl tiers set basic --rps 0.5
expect_exit 0
api GET /api/v1/tiers/basic
expect_jq '.requests_per_second == 0.5 and .burst == 20 and .tokens_per_month == 100000'
case_end

case_start "tiers set --limit takes any limit field; tiers list shows each tier's actions"
ctl tiers set gold --limit tokens_per_day=9000 --action tokens_per_month=alert \
	--action requests_per_day=queue
expect_exit 0
api GET /api/v1/tiers/gold
expect_jq '.tokens_per_day == 9000 and .actions == {"requests_per_day":"queue","tokens_per_month":"alert"}'
ctl tiers list
expect_exit 0
expect_stdout '^gold +50 +100 +0 +0 +0 +0 +5000000 +0 +requests_per_day=queue,tokens_per_month=alert$'
expect_stdout '^basic +0.5 +20 +0 +0 +0 +0 +100000 +0 +-$'
ctl tiers set gold --action requests_per_day=null
expect_exit 0
ctl tiers list
expect_stdout '^gold +50 +100 +0 +0 +0 +0 +5000000 +0 +tokens_per_month=alert$'
case_end

case_start "tiers list --json prints the server's list"
ctl --json tiers list
expect_exit 0
expect_jq '[.data[].name] == ["basic","enterprise","gold","premium"]'
case_end

# ---- tokens ----
case_start "tokens create prints the token once, then its fields"
ctl tokens create --name ci-acme --role consumer --consumer acme
expect_exit 0
expect_stdout '^Save this token now; it will not be shown again:$'
consumer=$(grep -oE 'tgadm_[a-z0-9]{12}_[A-Za-z0-9]+' <<<"$BODY" | head -n 1)
expect_field role consumer
expect_field consumer acme
expect_field tier basic
expect_not grep -q tgadm_ <<<"$CTL_ERR"
case_end
consumer_id=$(field id)

case_start "tokens create --json gives the token to jq"
ctl --json tokens create --name watcher --role viewer
expect_exit 0
expect_match .token "$TG_TOKEN_RE"
expect_json .role viewer
case_end
viewer=$(json .token)
viewer_id=$(json .id)

case_start "tokens list prints a table with its header and no secret"
ctl tokens list
expect_exit 0
expect test "$(head -n 1 <<<"$BODY" | tr -s ' ')" = "ID NAME ROLE CONSUMER TIER STATUS CREATED LAST USED"
expect_stdout "^$consumer_id +ci-acme +consumer +acme +basic +active "
expect_stdout "^$viewer_id +watcher +viewer +- +- +active "
expect_stdout '^bootstrap +'
expect_not grep -qE 'tgadm_[a-z0-9]{12}_' <<<"$BODY"
case_end

case_start "a token read from --token-file (trailing newline and all) works"
printf '%s\n' "$viewer" >"$tmp/viewer.token"
CTL_TOKEN='' ctl --token-file "$tmp/viewer.token" --json keys list
expect_exit 0
expect_json .object list
case_end

case_start "a --token-file with CRLF works; one with blanks in the token is refused (exit 2)"
printf '%s\r\n' "$viewer" >"$tmp/crlf.token"
CTL_TOKEN='' ctl --token-file "$tmp/crlf.token" keys list
expect_exit 0
printf 'tgadm_x y\n' >"$tmp/blank.token"
CTL_TOKEN='' ctl --token-file "$tmp/blank.token" keys list
expect_exit 2
case_end

case_start "--url with a trailing slash works, and so does TOLLGATE_ADMIN_URL"
ctl --url "$TG_URL/" health
expect_exit 0
ctl health
expect_exit 0
case_end

case_start "a list with no entries prints only the header"
ctl keys list --owner team:nobody
expect_exit 0
expect test "$(wc -l <<<"$BODY")" = 1
expect_stdout '^ID +NAME +OWNER'
case_end

case_start "tokens revoke revokes on the server"
ctl tokens revoke "$viewer_id"
expect_exit 0
expect_field status revoked
api GET /api/v1/keys "" "$viewer"
expect_status 401
case_end

# ---- exit statuses ----
case_start "exit 2: unknown command, missing or bad arguments, options after the command"
ctl frobnicate
expect_exit 2
ctl keys frobnicate
expect_exit 2
ctl keys create --owner team:cli
expect_exit 2
expect_stderr '^tollctl: '
ctl keys create --name x --owner team:cli --limit burst=abc
expect_exit 2
ctl keys create --name x --owner team:cli --expires soon
expect_exit 2
ctl keys show
expect_exit 2
ctl tiers set platinum --rps 5
expect_exit 2
ctl --url file:///etc/passwd keys list
expect_exit 2
case_end

case_start "exit 2: what tollctl itself checks before any request"
ctl keys list --json
expect_exit 2
expect_stderr -- '--json'
ctl keys update "$key_id"
expect_exit 2
ctl tiers set gold
expect_exit 2
ctl tokens create --name t --role consumer
expect_exit 2
ctl tokens create --name t --role viewer --consumer acme
expect_exit 2
ctl tokens create --name t --role root
expect_exit 2
ctl keys create --name x --owner team:cli --limit burst=5 --limit burst=6
expect_exit 2
ctl keys update "$key_id" --limit burst=5 --clear-limit burst
expect_exit 2
ctl keys list --status sleeping
expect_exit 2
ctl keys list --limit 0
expect_exit 2
ctl --timeout 0 health
expect_exit 2
ctl keys rotate "$key_id" --grace soon
expect_exit 2
case_end

case_start "exit 2: no admin token, or an unreadable --token-file"
CTL_TOKEN='' ctl keys list
expect_exit 2
expect_stderr 'TOLLGATE_ADMIN_TOKEN'
CTL_TOKEN='' ctl --token-file "$tmp/no-such-file" keys list
expect_exit 2
case_end

case_start "the usage errors sent nothing: no key x was created"
api GET '/api/v1/keys?owner=team:cli'
expect_jq '[.data[].name] | index("x") == null'
case_end

case_start "exit 3: not found (key, token, another consumer's key)"
ctl keys show zzzzzzzzzzzz
expect_exit 3
expect_stderr '^tollctl: 404: .*key_not_found'
ctl tokens revoke zzzzzzzzzzzz
expect_exit 3
CTL_TOKEN=$consumer ctl keys show "$key_id"
expect_exit 3
case_end

case_start "--json on an error also prints the server's error body on stdout"
ctl --json keys show zzzzzzzzzzzz
expect_exit 3
expect_json .error.code key_not_found
case_end

case_start "exit 4: a wrong token (401) or a role that may not (403)"
CTL_TOKEN="${TG_TOKEN}wrong" ctl keys list
expect_exit 4
ctl tokens create --name v2 --role viewer
viewer2=$(grep -oE 'tgadm_[a-z0-9]{12}_[A-Za-z0-9]+' <<<"$BODY" | head -n 1)
CTL_TOKEN=$viewer2 ctl keys create --name nope --owner team:cli
expect_exit 4
CTL_TOKEN=$consumer ctl tiers list
expect_exit 4
case_end

case_start "exit 5: the server rejects the request (400, 409)"
ctl keys create --name x --owner org:cli
expect_exit 5
expect_stderr '^tollctl: 400: .*param owner.*code invalid_value'
ctl keys create --name x --owner team:cli --limit burst=0
expect_exit 5
ctl keys revoke "$json_id"
expect_exit 5
expect_stderr 'key_revoked'
ctl keys update "$json_id" --name again
expect_exit 5
case_end

case_start "exit 6: the admin API is unreachable"
port=$(tg_closed_port)
ctl --url "http://127.0.0.1:$port" --timeout 5 health
expect_exit 6
expect_stderr "^tollctl: request to http://127.0.0.1:$port/health failed"
ctl --url "http://127.0.0.1:$port" --timeout 5 keys list
expect_exit 6
case_end

case_start "limits and quota: every mistake is a usage error (exit 2) before any request"
# against a closed port: a request would end in exit 6, so exit 2 proves none was sent
port=$(tg_closed_port)
bad=(
	"limits set"
	"limits set team:ml"
	"limits set org:ml cost_per_day=1"
	"limits set key:abcdefabcdef actions.burst=alert"
	"limits set key:abcdefabcdef actions.tokens_per_minute=warn"
	"limits set team:ml foo=1"
	"limits set team:ml cost_per_day=-1"
	"limits set team:ml cost_per_day=1.1234567891"
	"limits set team:ml alert_threshold=0"
	"limits set team:ml alert_threshold=1.5"
	"limits set team:ml mode=lenient"
	"limits set team:ml action=drop"
	"limits set team:ml cost_window=weekly"
	"limits set team:ml actions.mode=block"
	"limits set team:ml actions.cost_per_day=drop"
	"limits set team:ml tokens_per_day=1 tokens_per_day=2"
	"limits set team:ml tokens_per_day"
	"limits clear"
	"limits clear key:abcdefabcdef"
	"limits list extra"
	"quota"
	"quota team:"
	"quota tenant:bad/slash"
	"quota user:a b"
)
for args in "${bad[@]}"; do
	# shellcheck disable=SC2086 # each row is its words
	ctl --url "http://127.0.0.1:$port" --timeout 5 $args
	[ "$CTL_RC" = 2 ] || fail "tollctl $args: exit $CTL_RC, expected 2 ($CTL_ERR)"
done
ctl --url "http://127.0.0.1:$port" --timeout 5 limits set team:ml cost_window=weekly
expect_stderr "cost_window: 'weekly' is not one of calendar, rolling"
ctl --url "http://127.0.0.1:$port" --timeout 5 limits clear key:abcdefabcdef
expect_stderr "tollctl keys update"
ctl --url "http://127.0.0.1:$port" --timeout 5 limits set key:abcdefabcdef actions.burst=alert
expect_stderr "actions.burst: 'burst' is not a limit that takes an action"
# well-formed: they do try the server (unreachable here: exit 6)
ctl --url "http://127.0.0.1:$port" --timeout 5 limits set tenant:acme.eu-1 cost_per_day=0.000000001 \
	tokens_per_day=null mode=soft actions.cost_per_day=alert
expect_exit 6
# a key's limits and actions go to the key (PATCH /api/v1/keys/ID)
ctl --url "http://127.0.0.1:$port" --timeout 5 limits set key:abcdefabcdef cost_per_day=1 \
	actions.tokens_per_minute=alert
expect_exit 6
expect_stderr "/api/v1/keys/abcdefabcdef failed"
ctl --url "http://127.0.0.1:$port" --timeout 5 quota abcdefabcdef
expect_exit 6
expect_stderr "/api/v1/limits/key%3Aabcdefabcdef failed"
case_end

case_start "limits set, list, quota and clear against the admin API"
ctl limits set team:lim cost_per_day=25 cost_window=rolling tokens_per_month=5000000 \
	actions.cost_per_day=alert
expect_exit 0
expect grep -q '^subject: team:lim  mode: hard$' <<<"$BODY"
expect grep -qE '^LIMIT +WINDOW +USED +RESERVED +VALUE +REMAINING +RESETS +ACTION +MODE$' <<<"$BODY"
expect grep -qE '^cost_per_day +day +0 +0 +25 +25 +[0-9T:Z-]+ +alert +hard$' <<<"$BODY"
expect grep -qE '^tokens_per_month +month +0 +0 +5000000 +5000000 +[0-9T:Z-]+ +block +hard$' <<<"$BODY"
ctl limits set tenant:acme.eu requests_per_day=10000 mode=soft
expect_exit 0
expect grep -qE '^requests_per_day +day +0 +0 +10000 +10000 +[0-9T:Z-]+ +block +soft$' <<<"$BODY"
ctl limits
expect_exit 0
expect grep -qE '^team:lim +tokens_per_month=5000000 cost_per_day=25 cost_window=rolling +cost_per_day=alert$' <<<"$BODY"
expect grep -qE '^tenant:acme.eu +requests_per_day=10000 mode=soft +-$' <<<"$BODY"
ctl --json limits list
expect_exit 0
expect_jq '[.data[].subject] | index("team:lim") != null'
lim_key=$(new_key '{"name":"lim","owner":"team:lim","limits":{"tokens_per_day":1000,"cost_per_day":2.5}}' | jq -r .id)
ctl quota "$lim_key"
expect_exit 0
expect grep -q "^subject: key:$lim_key  mode: hard$" <<<"$BODY"
expect grep -qE '^cost_per_day +day +0 +0 +2.5 +2.5 ' <<<"$BODY"
expect grep -qE '^tokens_per_day +day +0 +0 +1000 +1000 ' <<<"$BODY"
ctl limits set team:lim cost_per_day=null
expect_exit 0
expect_not grep -q '^cost_per_day' <<<"$BODY"
ctl limits set team:lim cost_per_day=100000000000
expect_exit 5
expect_stderr 'limits.cost_per_day'
ctl limits clear tenant:acme.eu
expect_exit 0
expect grep -q '^limits of tenant:acme.eu cleared$' <<<"$BODY"
ctl limits
expect_not grep -q '^tenant:acme.eu' <<<"$BODY"
case_end

case_start "no command printed a key or token on stderr"
expect test -s "$tmp/ctl.stderr.all"
expect_not grep -qE 'tg_[a-z0-9]{12}_[A-Za-z0-9]{43}|tgadm_[a-z0-9]{12}_[A-Za-z0-9]' "$tmp/ctl.stderr.all"
expect_not grep -qF "$TG_TOKEN" "$tmp/ctl.stderr.all"
case_end

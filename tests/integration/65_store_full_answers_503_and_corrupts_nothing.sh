#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves what happens when the store reaches store.max_map_size_mb (docs/admin-api.md, 503
# store_full; README "Configuration"): with a 1 MiB cap, key creations succeed until the
# store is full, then every change gets 503 store_full (never a 500) and changes nothing;
# exactly the keys that were answered 201 exist; reads and /health go on; the full store
# opens again after a restart with every key intact; and with a higher cap the map grows
# and creation works again.
. "$(dirname "$0")/lib.sh"

# Sends N key creations over one keep-alive connection (one curl), one status per line.
fill() { # N OWNER
	local i

	for ((i = 1; i <= $1; i++)); do
		printf 'url = "%s/api/v1/keys"\nrequest = "POST"\n' "$TG_URL"
		printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$TG_TOKEN"
		printf 'data = "{\\"name\\":\\"fill-%d\\",\\"owner\\":\\"%s\\"}"\n' "$i" "$2"
		printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n'
	done >"$tmp/fill.cfg"
	curl -sS --max-time 60 -K "$tmp/fill.cfg" 2>"$tmp/fill.err"
}
count_keys() { # OWNER: keys of OWNER in the store, following the pages
	local after="" n=0 page

	while :; do
		api GET "/api/v1/keys?owner=$1&limit=1000${after:+&after=$after}"
		[ "$STATUS" = 200 ] || {
			echo "error"
			return
		}
		n=$((n + $(json '.data | length')))
		[ "$(json .has_more)" = true ] || break
		after=$(json .next_after)
	done
	echo "$n"
}
snapshot() {
	api GET /api/v1/tiers
	printf '%s\n' "$BODY"
	api GET /api/v1/admin/tokens
	jq -c '.data | map(del(.last_used_at))' <<<"$BODY"
}

TG_STORE=$tmp/full
tg_start_daemon --set store.map_size_mb=1 --set store.max_map_size_mb=1 ||
	bail "tollgated starts with a 1 MiB store"

statuses=$(fill 4000 team:fill | sort | uniq -c)
created=$(awk '$2 == 201 {print $1}' <<<"$statuses")
full=$(awk '$2 == 503 {print $1}' <<<"$statuses")

case_start "creations succeed until the store is full, then get 503 (nothing else)"
expect test "${created:-0}" -gt 100
expect test "${full:-0}" -gt 0
expect test "$(awk '$2 != 201 && $2 != 503' <<<"$statuses")" = ""
case_end

case_start "the answer is 503 server_error store_full"
# LMDB reuses pages freed by earlier transactions, so a full store may still take a record
# or two after its first refusal: ask until it refuses again, counting what it took.
for i in $(seq 1 50); do
	api POST /api/v1/keys "{\"name\":\"one-more-$i\",\"owner\":\"team:fill\"}"
	[ "$STATUS" = 201 ] || break
	created=$((created + 1))
done
expect_error 503 server_error store_full null
case_end

case_start "exactly the keys answered 201 exist, and /ready counts them"
expect test "$(count_keys team:fill)" = "$created"
api GET /ready "" ""
expect_json .keys "$created"
case_end

case_start "other changes on a full store succeed or get 503 store_full (never a 500), and a refused one changes nothing"
before=$(snapshot)
api PUT /api/v1/tiers/bigger '{"requests_per_second":1,"burst":1,"requests_per_minute":0,"requests_per_hour":0,"requests_per_day":0,"tokens_per_minute":0,"tokens_per_month":0,"max_concurrent":0}'
if [ "$STATUS" = 200 ]; then before=$(snapshot); else expect_error 503 server_error store_full; fi
api POST /api/v1/admin/tokens '{"name":"late","role":"viewer"}'
if [ "$STATUS" = 201 ]; then before=$(snapshot); else expect_error 503 server_error store_full; fi
expect_same "tiers and tokens" "$before" "$(snapshot)"
case_end

case_start "a full store still serves reads"
api GET /health "" ""
expect_status 200
api GET '/api/v1/keys?owner=team:fill&limit=1'
expect_status 200
api GET "/api/v1/keys/$(json '.data[0].id')"
expect_status 200
case_end

api GET '/api/v1/keys?owner=team:fill&limit=1000'
first_page=$(jq -c '.data | map(del(.last_used_at))' <<<"$BODY")

case_start "after a restart the full store opens with every key intact"
tg_stop_daemon
expect test "$TG_EXIT" = 0
tg_start_daemon --set store.map_size_mb=1 --set store.max_map_size_mb=1 || fail "tollgated did not start"
expect test "$(count_keys team:fill)" = "$created"
api GET '/api/v1/keys?owner=team:fill&limit=1000'
expect_same "the first 1000 keys" "$first_page" "$(jq -c '.data | map(del(.last_used_at))' <<<"$BODY")"
case_end

case_start "with a higher store.max_map_size_mb the map grows and creation works again"
tg_stop_daemon
tg_start_daemon --set store.map_size_mb=1 --set store.max_map_size_mb=8 || fail "tollgated did not start"
more=$(fill 1000 team:more | sort | uniq -c)
expect test "$(tr -s ' ' <<<"$more" | sed 's/^ //')" = "1000 201"
expect test "$(count_keys team:fill)" = "$created"
expect test "$(count_keys team:more)" = 1000
case_end

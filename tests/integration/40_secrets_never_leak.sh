#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves that no secret is kept or shown where it should not be (DESIGN.md invariant 4,
# docs/admin-api.md): after creating, using, rotating and revoking keys and admin tokens, and
# after wrong secrets and rejected requests that carry secrets, no plaintext key or token, nor
# any part of its secret, is found in the daemon's log (at debug level) or stdout, in the LMDB
# files, in any list/get/update/revoke answer or in any error answer. The full key and token
# appear only in the answers to create and rotate. The same holds for a provider's credential
# (from the environment, sent to the provider only): not in GET /api/v1/providers (admin or
# viewer), the log, stdout or the store, after calls the provider served and one it failed.
. "$(dirname "$0")/lib.sh"

rand() { head -c 2000 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c "$1"; }
TG_TOKEN=it-$(rand 45) # a bootstrap token of its own, with nothing guessable in it
secrets=("$TG_TOKEN") # every plaintext credential this script saw
views=$tmp/views      # every answer but create and rotate
errors=$tmp/errors    # every error answer
mkdir -p "$views" "$errors"
off_by_one() { # CREDENTIAL: the same with its last character changed
	[ "${1: -1}" = x ] && echo "${1%?}y" || echo "${1%?}x"
}
keep() { # DIR: saves the last answer
	printf '%s\n' "$BODY" >"$1/$(ls "$1" | wc -l).json"
}

# A provider whose mock demands its credential, so a served call proves it was sent.
export TG_TEST_PROVIDER_SECRET=sk-prov-$(rand 40)
tg_start_mock --api-key "$TG_TEST_PROVIDER_SECRET" || bail "mock-llm starts, requiring a provider key"
cat >"$tmp/config.json" <<EOF
{"providers": [{"name": "guarded", "base_url": "$MOCK_URL/v1",
  "api_key_env": "TG_TEST_PROVIDER_SECRET",
  "models": [{"name": "gpt-4o-mini", "prompt_per_1k": 1, "completion_per_1k": 1}]}]}
EOF
tg_start_gateway --log-level debug --config "$tmp/config.json" ||
	bail "tollgated starts and becomes ready"

# ---- make secrets ----
creates=()
for body in '{"name":"alpha","owner":"team:a"}' '{"name":"beta","owner":"user:b","limits":{"burst":3}}' \
	'{"name":"gamma","owner":"consumer:c","tier":"premium"}'; do
	api POST /api/v1/keys "$body"
	creates+=("$BODY")
	secrets+=("$(json .key)")
done
key_ids=($(printf '%s\n' "${creates[@]}" | jq -r .id))
api POST "/api/v1/keys/${key_ids[0]}/rotate" '{"grace_period_sec":600}'
creates+=("$BODY")
secrets+=("$(json .key)")
for body in '{"name":"adm","role":"admin"}' '{"name":"view","role":"viewer"}' \
	'{"name":"cons","role":"consumer","consumer":"c"}'; do
	api POST /api/v1/admin/tokens "$body"
	creates+=("$BODY")
	secrets+=("$(json .token)")
done
token_ids=($(printf '%s\n' "${creates[@]}" | jq -r 'select(.object == "admin_token") | .id'))
admin2=${secrets[5]} viewer=${secrets[6]} consumer=${secrets[7]}

case_start "create and rotate answered with the full key or token (the secrets searched for below)"
expect test "${#secrets[@]}" = 8
for s in "${secrets[@]:1}"; do
	[[ $s =~ $TG_KEY_RE || $s =~ $TG_TOKEN_RE ]] || fail "not a key or token: '$s'"
done
case_end

secrets+=("$TG_TEST_PROVIDER_SECRET")

# ---- the provider's credential in use: a call served, a call failed, the status listing ----
DP_KEY=$(new_key '{"name":"caller","owner":"team:p","service":"p"}' | jq -r .key)
secrets+=("$DP_KEY")
CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'
dp POST /v1/chat/completions "$CHAT"
provider_call=$STATUS
mock_config '{"fail_status":500,"fail_count":1}'
dp POST /v1/chat/completions "$CHAT"
keep "$errors"
for t in "$TG_TOKEN" "$viewer"; do
	api GET /api/v1/providers "" "$t"
	keep "$views"
done
provider_views=$STATUS

case_start "the provider's credential was used (the mock demands it) and the providers listed"
expect test "$provider_call" = 200
expect test "$(mock_stat .unauthorized)" = 0
expect test "$provider_views" = 200
expect_jq '[.data[] | keys[]] | index("api_key_env") == null'
case_end

# ---- use them, and get them wrong ----
for t in "$admin2" "$viewer" "$consumer"; do
	api GET /api/v1/keys "" "$t"
	keep "$views"
done
api POST /api/v1/keys '{"name":"delta"}' "$consumer"
creates+=("$BODY")
secrets+=("$(json .key)")
for id in "${token_ids[@]}" bootstrap; do
	api GET /api/v1/keys "" "tgadm_${id}_$(rand 43)"
	keep "$errors"
done
for s in "${secrets[@]}"; do
	api GET /api/v1/keys "" "$(off_by_one "$s")"
	keep "$errors"
	api GET /api/v1/keys "" "${s}x" # one character too many
	keep "$errors"
done
api GET /api/v1/keys "" "${secrets[1]}" # an API key presented as an admin token
keep "$errors"
api POST /api/v1/keys "$(jq -nc --arg o "${secrets[2]}" '{name:"leak",owner:$o}')"
keep "$errors"
api POST /api/v1/keys "$(jq -nc --arg t "${secrets[3]}" '{name:"leak",owner:"team:a",tier:$t}')"
keep "$errors"
api POST /api/v1/admin/tokens "$(jq -nc --arg r "$viewer" '{name:"leak",role:$r}')"
keep "$errors"
api PATCH "/api/v1/keys/${key_ids[1]}" "$(jq -nc --arg o "${secrets[1]}" '{owner:$o}')"
keep "$errors"
api POST /api/v1/keys "{\"name\":\"leak\",\"owner\":\"team:a\",\"x\":\"${secrets[4]}\"" # malformed
keep "$errors"
api GET /api/v1/keys "" "" -- -H "X-API-Key: ${secrets[2]}"
keep "$errors"
api GET /api/v1/keys "" "" -- -H "Authorization: Basic $(printf 'x:%s' "$TG_TOKEN" | base64 -w0)"
keep "$errors"

# ---- every view there is ----
for id in "${key_ids[@]}"; do
	api GET "/api/v1/keys/$id"
	keep "$views"
done
api PATCH "/api/v1/keys/${key_ids[1]}" '{"name":"beta2","limits":{"burst":4}}'
keep "$views"
api DELETE "/api/v1/keys/${key_ids[2]}"
keep "$views"
api DELETE "/api/v1/keys/${key_ids[2]}"
keep "$errors"
api DELETE "/api/v1/admin/tokens/${token_ids[1]}"
keep "$views"
api GET /api/v1/keys "" "$viewer"
keep "$errors"
for q in '' '?status=active' '?status=revoked' '?limit=1' "?owner=team:a"; do
	api GET "/api/v1/keys$q"
	keep "$views"
done
api GET /api/v1/admin/tokens
keep "$views"
api GET /api/v1/admin/tokens "" "$admin2"
keep "$views"
api GET /api/v1/tiers
keep "$views"
api GET /ready "" ""
keep "$views"
# a key pasted into a URL by mistake: the 404 and the access log must not repeat it
for s in "${secrets[@]}"; do
	api GET "/api/v1/keys/$s"
	keep "$errors"
done
tg_stop_daemon

# ---- search ----
# Each credential, its secret part, and overlapping 16-character pieces of the secret.
fragments=$tmp/fragments
for s in "${secrets[@]}"; do
	secret=${s##*_}
	[ "$s" = "$TG_TOKEN" ] && secret=$s
	printf '%s\n%s\n' "$s" "$secret"
	for ((i = 0; i + 16 <= ${#secret}; i += 4)); do printf '%s\n' "${secret:i:16}"; done
done | sort -u >"$fragments"
leaks() { # FILE...: prints every fragment found in them
	grep -aoF -f "$fragments" "$@" 2>/dev/null | sort -u
}

case_start "the searches look in the right places: a log, a store holding the key ids, answers"
expect test -s "$TG_LOG"
expect test -s "$tmp/store/data.mdb"
for id in "${key_ids[@]}" "${token_ids[@]}"; do
	grep -qaF "$id" "$tmp/store/data.mdb" || fail "the store does not hold id $id: wrong file?"
done
expect test "$(ls "$views" | wc -l)" -ge 15
expect test "$(ls "$errors" | wc -l)" -ge 25
case_end

case_start "no list, get, update or revoke answer carries a key or token field"
for f in "$views"/*.json; do
	jq -e '[.. | objects | has("key") or has("token")] | any | not' "$f" >/dev/null ||
		fail "$(basename "$f") has a key or token field: $(head -c 300 "$f")"
done
case_end

case_start "no list, get, update or revoke answer holds any secret or part of one"
found=$(leaks "$views"/*.json)
expect test -z "$found"
case_end

case_start "no error answer holds any secret or part of one"
found=$(leaks "$errors"/*.json)
expect test -z "$found"
case_end

case_start "the daemon log (debug level) holds no secret or part of one"
found=$(leaks "$TG_LOG")
[ -z "$found" ] || fail "found in the log:" "$(grep -aF -f "$fragments" "$TG_LOG" | head -n 5)"
case_end

case_start "the daemon's stdout holds no secret (with TOLLGATE_ADMIN_TOKEN set it prints no token)"
found=$(leaks "$tmp"/stdout.*)
expect test -z "$found"
case_end

case_start "the LMDB files hold no secret or part of one"
found=$(leaks "$tmp"/store/*)
expect test -z "$found"
case_end

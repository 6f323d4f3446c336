# SPDX-License-Identifier: BSD-2-Clause
# Sourced by the provider-routing scripts (tests/integration/10N_*.sh) after lib.sh: several
# mock-llm instances, one per provider, each on its own loopback port with its own faults
# (mock-llm's control API, docs/mock-llm.md), a config file listing them as providers of the
# same model, and readers for what the gateway says of them: GET /api/v1/providers, the
# metrics, the X-Tollgate-Provider / X-Tollgate-Attempts headers and the usage records in the
# store (read with mdb_dump, decoded as userspace/usage.c encodes them).

declare -A PV_URL # provider name -> its mock's URL (http://host:port, no /v1)

# pv_start_mock NAME [MOCK_LLM_ARGS...]: a mock for provider NAME.
pv_start_mock() {
	local name=$1

	shift
	tg_start_mock "$@" || return 1
	PV_URL[$name]=$MOCK_URL
}

# at NAME COMMAND...: runs a mock helper (mock_config, mock_stat, mock_reset...) on NAME's mock.
at() {
	local name=$1

	shift
	MOCK_URL=${PV_URL[$name]} "$@"
}

# pv_requests NAME: chat completion requests NAME's mock received.
pv_requests() {
	at "$1" mock_stat .requests.chat_completions
}

# pv_provider NAME [ROUTING_JSON_MEMBERS]: one provider entry serving gpt-4o-mini at NAME's
# mock, with extra members (e.g. "priority": 1) and prices (default 1 and 2 USD per 1K).
pv_provider() { # NAME EXTRA PROMPT COMPLETION
	printf '{"name": "%s", "base_url": "%s/v1", "timeout_sec": %s%s,
	  "models": [{"name": "gpt-4o-mini", "prompt_per_1k": %s, "completion_per_1k": %s}]}' \
		"$1" "${PV_URL[$1]}" "${PV_TIMEOUT:-10}" "${2:+, $2}" "${3:-1}" "${4:-2}"
}

# pv_status NAME: NAME's object in GET /api/v1/providers (compact JSON); fails if absent.
pv_status() {
	local STATUS BODY tg_last_request=$tg_last_request

	api GET /api/v1/providers
	[ "$STATUS" = 200 ] || return 1
	jq -ce --arg n "$1" '.data[] | select(.name == $n)' <<<"$BODY"
}

# pv_breaker NAME: closed, half_open or open.
pv_breaker() {
	pv_status "$1" | jq -r .breaker
}

# metric SERIES: the value of one sample of /metrics, or -1.
metric() {
	curl -sS --max-time 5 "$TG_URL/metrics" | awk -v s="$1" '$1 == s {print $2; f=1} END {if (!f) print -1}'
}

# pv_records: every usage record in the store, one JSON object per line (request_id,
# provider, model, status, attempts, prompt_tokens, completion_tokens), oldest first.
pv_records() {
	mdb_dump -s usage "${TG_STORE:-$tmp/store}" 2>/dev/null | python3 -c '
import sys, json, struct
lines = [l.strip() for l in sys.stdin if l.startswith(" ")]
for val in lines[1::2]:
    b = bytes.fromhex(val)
    ver, kind = struct.unpack_from("<HH", b, 0)
    p = 12
    s = []
    for _ in range(7):
        n = b[p]; s.append(b[p + 1:p + 1 + n].decode()); p += 1 + n
    status, stream = struct.unpack_from("<II", b, p); p += 8
    nums = struct.unpack_from("<6Q", b, p); p += 48
    att, tenant = 1, ""
    if ver >= 2:
        n = b[p]; tenant = b[p + 1:p + 1 + n].decode(); p += 1 + n
        att = struct.unpack_from("<I", b, p)[0]
    print(json.dumps({"version": ver, "request_id": s[0], "provider": s[4], "model": s[5],
                      "status": status, "stream": stream, "prompt_tokens": nums[0],
                      "completion_tokens": nums[1], "attempts": att, "tenant": tenant}))
'
}

# pv_record REQUEST_ID: that call's usage record (waits up to 2 s for its commit).
pv_record() {
	local i r

	for ((i = 0; i < 20; i++)); do
		r=$(pv_records | jq -c --arg id "$1" 'select(.request_id == $id)')
		[ -n "$r" ] && {
			printf '%s\n' "$r"
			return 0
		}
		sleep 0.1
	done
	return 1
}

command -v mdb_dump >/dev/null || bail "mdb_dump (lmdb-utils) is installed: the scripts read usage records with it"
command -v python3 >/dev/null || bail "python3 is installed"

# jqt FILTER JSON: the jq FILTER is true of JSON (quietly).
jqt() {
	jq -e "$1" >/dev/null 2>&1 <<<"$2"
}

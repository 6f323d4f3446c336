#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves limits.max_tenants (README "Limits", docs/data-plane.md "Tenants"): with a bound of 3
# (TOLLGATE_LIMITS_MAX_TENANTS), three tenants named by requests are served and a fourth new
# one is a 400 tenant_limit_reached on the field that named it, forwarded to nobody and
# counted in tollgate_tenants_refused_total; the first three keep being served; a tenant the
# admin gives limits is accepted past the bound; after a restart the same holds (nothing was
# recorded for the refused tenant); limits.max_tenants=0 refuses every new tenant.
. "$(dirname "$0")/lib.sh"

metric() { # SERIES: its value on /metrics (0 when absent)
	curl -sS --max-time 5 "$TG_URL/metrics" |
		awk -v s="$1" 'index($0, s " ") == 1 { v = $2 } END { print v + 0 }'
}
chat() { # TENANT: the chat body naming it in metadata
	printf '{"model":"gpt-4o-mini","max_tokens":2,"metadata":{"tenant":"%s"},"messages":[{"role":"user","content":"hi"}]}' "$1"
}
CHAT='{"model":"gpt-4o-mini","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}'
# The three first tenants are served, each named by metadata.tenant.
served_three() {
	local t
	for t in t-one t-two t-three; do
		dp POST /v1/chat/completions "$(chat "$t")"
		expect_status 200
	done
}
# A new tenant is refused: 400 on metadata.tenant, and the call reaches no upstream.
refused_new() { # TENANT
	local n0
	n0=$(mock_stat .requests.chat_completions)
	dp POST /v1/chat/completions "$(chat "$1")"
	expect_error 400 invalid_request_error tenant_limit_reached metadata.tenant
	expect_match .error.message "^metadata.tenant: '$1' would be a new tenant, .*limits\\.max_tenants"
	[ "$(mock_stat .requests.chat_completions)" = "$n0" ] || fail "the refused call was forwarded"
}

tg_start_mock || bail "mock-llm starts"
export TOLLGATE_LIMITS_MAX_TENANTS=3
tg_start_gateway || bail "tollgated starts with TOLLGATE_LIMITS_MAX_TENANTS=3"
DP_KEY=$(new_key '{"name":"t","owner":"team:tb","service":"chat","tier":"enterprise"}' | jq -r .key)
[ -n "$DP_KEY" ] || bail "the admin creates the key"

case_start "a bound of 3: three tenants served, a fourth refused by name, nothing forwarded"
served_three
refused_new t-four
n0=$(mock_stat .requests.chat_completions)
dp POST /v1/chat/completions "$CHAT" -- -H 'X-Tollgate-Tenant: t-five'
expect_error 400 invalid_request_error tenant_limit_reached X-Tollgate-Tenant
[ "$(mock_stat .requests.chat_completions)" = "$n0" ] || fail "the refused call was forwarded"
[ "$(metric tollgate_tenants_refused_total)" = 2 ] ||
	fail "tollgate_tenants_refused_total is $(metric tollgate_tenants_refused_total), expected 2"
case_end

case_start "past the bound the first three tenants and calls without one are still served"
served_three
dp POST /v1/chat/completions "$CHAT"
expect_status 200
dp POST /v1/chat/completions "$CHAT" -- -H 'X-Tollgate-Tenant: t-two'
expect_status 200
api GET /api/v1/limits/tenant:t-one
expect_status 200
expect_json .subject tenant:t-one
case_end

case_start "a tenant the admin gives limits is accepted past the bound"
api PUT /api/v1/limits/tenant:vip '{"requests_per_day":100}'
expect_status 200
dp POST /v1/chat/completions "$(chat vip)"
expect_status 200
refused_new t-four
case_end

case_start "a restart keeps working: the three and the admin's tenant served, the fourth refused"
tg_stop_daemon
tg_start_gateway || bail "tollgated restarts"
served_three
dp POST /v1/chat/completions "$(chat vip)"
expect_status 200
refused_new t-four
case_end

case_start "limits.max_tenants=0: a new tenant is refused, the admin's is served"
unset TOLLGATE_LIMITS_MAX_TENANTS
tg_stop_daemon
tg_start_gateway --set limits.max_tenants=0 || bail "tollgated restarts with limits.max_tenants=0"
refused_new t-six
dp POST /v1/chat/completions "$(chat vip)"
expect_status 200
dp POST /v1/chat/completions "$CHAT"
expect_status 200
case_end

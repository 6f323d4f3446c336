#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the limits engine's hard mode on the data plane (issue 5, docs/data-plane.md
# "Quotas and budgets"): 200 concurrent calls with max_tokens on one key with a daily cost
# budget end with the committed cost (GET /api/v1/usage) within the budget, the refused ones
# 429 insufficient_quota / cost_per_day with a message naming the subject, limit, value, used,
# reserved and reset, and Retry-After; X-Budget-* and x-ratelimit-*-tokens headers; streamed
# calls charged against a token quota (never zero) until it refuses; max_concurrent refusing
# as rate_limit_exceeded; a tenant's budget set by the admin API refusing its calls only; a
# bad tenant is a 400 naming it.
. "$(dirname "$0")/lib.sh"

tg_start_mock --latency-ms 200 || bail "mock-llm starts (200 ms per answer)"
tg_start_gateway --set data.threads=8 || bail "tollgated starts in front of mock-llm"
# 0.01 USD a day: a gpt-4o call of 2 bytes of content and max_tokens 20 costs 4 x 2.5 +
# 20 x 10 = 210 micro-USD, and reserves at most (request bytes + 20) tokens' worth
budget=$(new_key '{"name":"budget","owner":"team:lim","service":"chat","tier":"enterprise","limits":{"cost_per_day":0.01}}')
DP_KEY=$(jq -r .key <<<"$budget")
budget_id=$(jq -r .id <<<"$budget")
tokens=$(new_key '{"name":"tokens","owner":"team:lim","service":"chat","tier":"enterprise","limits":{"tokens_per_day":100}}')
tokens_key=$(jq -r .key <<<"$tokens")
conc=$(new_key '{"name":"conc","owner":"team:lim","service":"chat","tier":"enterprise","limits":{"max_concurrent":2}}')
conc_key=$(jq -r .key <<<"$conc")
[ -n "$DP_KEY" ] && [ -n "$tokens_key" ] && [ -n "$conc_key" ] || bail "the admin creates the keys"

CHAT='{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}'
per_call=$(cost_nano gpt-4o "$(chat_tokens hi)" 20)

case_start "200 concurrent calls on one key end within its cost_per_day, the rest refused"
seq 200 | xargs -P 100 -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 \
	-H "Authorization: Bearer $DP_KEY" -H 'Content-Type: application/json' \
	--data-binary "$CHAT" "$TG_DATA_URL/v1/chat/completions" >"$tmp/codes"
ok=$(grep -c '^200$' "$tmp/codes")
refused=$(grep -c '^429$' "$tmp/codes")
[ $((ok + refused)) -eq 200 ] || fail "every call answered 200 or 429: $(sort "$tmp/codes" | uniq -c | tr '\n' ' ')"
[ "$ok" -ge 1 ] || fail "some calls passed"
[ "$refused" -ge 1 ] || fail "some calls were refused"
BODY=$(usage_of chat) || fail "usage of the key"
cost=$(jq -r '.cost * 1e9 | round' <<<"$BODY")
[ "$cost" -le 10000000 ] || fail "the committed cost $cost nano-USD is within the 10000000 budget"
expect_json .requests "$ok"
[ "$cost" -eq $((ok * per_call)) ] || fail "the cost $cost is $ok calls of $per_call"
echo "# $ok allowed, $refused refused, $cost nano-USD of 10000000"
case_end

case_start "the refusal: 429 insufficient_quota cost_per_day, the contract's message, Retry-After"
dp POST /v1/chat/completions "$CHAT"
expect_error 429 insufficient_quota cost_per_day
expect_match .error.message "^Cost budget exceeded for key $budget_id: cost_per_day 0\\.01 USD \\(used 0\\.[0-9]+ USD, 0\\.00 USD reserved by calls in flight\\); resets at [0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z\$"
expect_header Retry-After '^[1-9][0-9]*$'
expect_header X-Budget-Limit '^0\.01$'
expect_header X-Budget-Remaining '^0\.[0-9]+$'
expect_header X-Budget-Reset '^[0-9]+$'
case_end

case_start "an allowed call carries X-Budget-* (and no token headers without a token limit)"
DP_KEY=$tokens_key
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
expect_status 200
expect_header x-ratelimit-limit-tokens '^100$'
expect_header x-ratelimit-remaining-tokens '^[0-9]+$'
expect_header x-ratelimit-reset-tokens '^([0-9]+h)?([0-9]+m)?[0-9]+s$'
has=$(grep -ci '^X-Budget-Limit:' "$HEADERS")
[ "$has" = 0 ] || fail "no X-Budget-Limit for a key without a cost budget"
case_end

case_start "streamed calls are charged against tokens_per_day until it refuses"
n=0
for i in 1 2 3 4 5 6 7 8; do
	dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
	[ "$STATUS" = 200 ] || break
	n=$((n + 1))
done
expect_error 429 insufficient_quota tokens_per_day
# 5 + 4 prompt tokens first, then 10 + 4 per stream: at most (100 - 9) / 14 streams fit
[ "$n" -ge 1 ] && [ "$n" -le 6 ] || fail "between 1 and 6 streams passed, not $n"
BODY=$(usage_of chat "$tokens_key") || fail "usage"
total=$(jq -r .total_tokens <<<"$BODY")
[ "$total" -eq $((9 + n * 14)) ] || fail "the streams were metered: $total tokens for $n streams"
[ "$total" -le 100 ] || fail "within the quota"
case_end

case_start "max_concurrent 2: a third call in flight gets 429 rate_limit_exceeded"
pids=()
for i in 1 2 3 4 5 6; do
	curl -s -o "$tmp/c$i" -w '%{http_code}\n' --max-time 10 -H "Authorization: Bearer $conc_key" \
		-H 'Content-Type: application/json' --data-binary "$CHAT" \
		"$TG_DATA_URL/v1/chat/completions" >"$tmp/cc$i" &
	pids+=($!)
done
wait "${pids[@]}"
cat "$tmp"/cc? >"$tmp/ccall"
[ "$(grep -c '^200$' "$tmp/ccall")" -ge 2 ] || fail "two calls passed at least"
grep -q '^429$' "$tmp/ccall" || fail "one was refused"
for i in 1 2 3 4 5 6; do
	if grep -q '"code":"max_concurrent"' "$tmp/c$i"; then
		BODY=$(cat "$tmp/c$i")
		expect_json .error.type rate_limit_exceeded
		expect_match .error.message '^Concurrency limit exceeded for key [a-z0-9]{12}: max_concurrent 2 '
		break
	fi
done
case_end

case_start "a bad tenant is a 400 naming it, nothing forwarded"
DP_KEY=$tokens_key
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":1,"metadata":{"tenant":"no spaces"},"messages":[{"role":"user","content":"hi"}]}'
expect_error 400 invalid_request_error invalid_tenant metadata.tenant
dp POST /v1/chat/completions '{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}' "$conc_key" -- -H 'X-Tollgate-Tenant: a/b'
expect_error 400 invalid_request_error invalid_tenant X-Tollgate-Tenant
case_end

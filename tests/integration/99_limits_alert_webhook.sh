#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves the alert enforcement action and its webhook (issue 5): a key whose requests_per_day
# limit has action alert is never refused; when its usage crosses limits.alert_threshold
# (0.5 here) a limit_threshold event, and when a call goes over the limit a limit_exceeded
# event, is POSTed as JSON to limits.webhook_url - received by a local python3 receiver
# (tests/integration/webhook_receiver.py) that answers the first POST 500, so the event is
# retried and then delivered. The payload has the contract's fields and no secret (no API
# key, no admin token, no Authorization header; the token in the webhook URL appears in no
# log line), the over-limit call carries X-Tollgate-Limit-Warning, and /metrics counts the
# webhooks sent and the alert actions. A webhook URL that is not http(s) is refused by
# tollgated --check, naming limits.webhook_url without echoing the URL.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || {
	skip "alert webhook" "python3 is not installed (the receiver is a python3 script)"
	exit 0
}
HOOK_TOKEN=hooksecret-7f3a9c2e51d0
rcv_pid=""
rcv_stop() { [ -n "$rcv_pid" ] && kill "$rcv_pid" 2>/dev/null; }
tg_cleanup_hooks+=(rcv_stop)
python3 "$TG_TOP/tests/integration/webhook_receiver.py" --port-file "$tmp/rcv.port" \
	--log "$tmp/rcv.log" --statuses 500,200 2>>"$tmp/rcv.err" &
rcv_pid=$!
tg_wait_file "$tmp/rcv.port" 200 0.05 "$rcv_pid" || bail "the webhook receiver starts"
HOOK_URL="http://127.0.0.1:$(cat "$tmp/rcv.port")/hook?token=$HOOK_TOKEN"

tg_start_mock || bail "mock-llm starts"
tg_start_gateway --set "limits.webhook_url=$HOOK_URL" --set limits.webhook_retries=3 \
	--set limits.webhook_timeout_ms=2000 --set limits.alert_threshold=0.5 ||
	bail "tollgated starts with an alert webhook"
created=$(new_key '{"name":"alerts","owner":"team:alerts","service":"a","tier":"enterprise","limits":{"requests_per_day":4,"action":"alert"}}') ||
	bail "a key with requests_per_day 4, action alert"
DP_KEY=$(jq -r .key <<<"$created")
KEY_ID=$(jq -r .id <<<"$created")
SECRET=${DP_KEY##*_}

CHAT='{"model":"gpt-4o-mini","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}'

metric() { # SERIES: its value on /metrics (0 when absent)
	curl -sS --max-time 5 "$TG_URL/metrics" |
		awk -v s="$1" 'index($0, s " ") == 1 { v = $2 } END { print v + 0 }'
}
# The receiver's log as one JSON array.
received() { jq -sc . "$tmp/rcv.log" 2>/dev/null || echo '[]'; }
# Waits up to 20 s until the receiver's log satisfies the jq FILTER (on the array).
wait_received() { # FILTER
	local i
	for ((i = 0; i < 200; i++)); do
		received | jq -e "$1" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

case_start "action alert: every call is allowed, the one over the limit is annotated"
for i in 1 2 3 4; do
	dp POST /v1/chat/completions "$CHAT"
	[ "$STATUS" = 200 ] || fail "call $i: status $STATUS"
done
dp POST /v1/chat/completions "$CHAT"
expect_status 200
expect_header X-Tollgate-Limit-Warning '^requests_per_day exceeded \(alert\)$'
case_end

case_start "the threshold event is POSTed, retried after the receiver's 500, then delivered"
expect wait_received "[.[] | select(.body.event == \"limit_threshold\" and .status == 200)] | length >= 1"
BODY=$(received)
expect_jq '.[0].status == 500 and .[0].body.event == "limit_threshold"'
expect_jq --arg s "key:$KEY_ID" '[.[] | select(.body.event == "limit_threshold" and .body.subject == $s and .body.limit == "requests_per_day")] | length >= 2'
expect_jq '.[0].path | startswith("/hook?token=")'
expect_jq '.[0].content_type == "application/json"'
case_end

case_start "the exceeded event is delivered with the contract's fields"
expect wait_received '[.[] | select(.body.event == "limit_exceeded" and .status == 200)] | length >= 1'
BODY=$(received | jq -c '[.[] | select(.body.event == "limit_exceeded")][-1].body')
expect_json .subject "key:$KEY_ID"
expect_json .limit requests_per_day
expect_json .value 4
expect_jq '.used >= 4 and .ratio >= 1'
expect_match .window_reset_at "$TG_TIME_RE"
expect_match .time "$TG_TIME_RE"
expect_jq 'keys == ["event","limit","ratio","subject","time","used","value","window_reset_at"]'
case_end

case_start "no secret in any webhook or log line"
all=$(cat "$tmp/rcv.log")
expect_not grep -qF "$SECRET" <<<"$all"
expect_not grep -qF "$TG_TOKEN" <<<"$all"
expect test -z "$(jq -r 'select(.authorization != null) | .authorization' "$tmp/rcv.log")"
# the script's own "---- start" lines in the log carry the command line: not the daemon's
expect_not grep -qF "$HOOK_TOKEN" <(grep -v '^---- start' "$TG_LOG")
expect_not grep -qF "$SECRET" "$TG_LOG"
expect grep -q "alert: limit_exceeded: key:$KEY_ID requests_per_day" "$TG_LOG"
case_end

case_start "/metrics counts the webhooks sent and the alert actions"
expect test "$(metric 'tollgate_alert_webhooks_total{result="sent"}')" -ge 2
expect test "$(metric 'tollgate_enforcement_actions_total{action="alert"}')" -ge 1
expect test "$(metric 'tollgate_limit_hits_total{limit="requests_per_day",action="alert"}')" -ge 1
expect test "$(metric 'tollgate_alert_webhooks_total{result="failed"}')" = 0
case_end

case_start "tollgated --check refuses a webhook URL that is not http(s), without echoing it"
printf '{"limits":{"webhook_url":"ftp://127.0.0.1/hook?token=%s"}}\n' "$HOOK_TOKEN" >"$tmp/bad.json"
"$TOLLGATED" --check "$tmp/bad.json" >"$tmp/check.out" 2>&1
rc=$?
expect test "$rc" -ne 0
expect grep -q 'limits.webhook_url' "$tmp/check.out"
expect_not grep -qF "$HOOK_TOKEN" "$tmp/check.out"
case_end

#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Proves persistent request-rate slots and rung 1 of the escalation ladder (issue 4;
# docs/admin-api.md "slot", README data.rate_slots and data.close_after_refusals): keys get
# the lowest free slot, shown as "slot" by the admin API; a revoked key's slot is null and
# goes to the next key; slots survive a daemon restart; with every slot taken, creation is
# refused with 503 rate_slots_exhausted naming data.rate_slots and its value, through the
# API and tollctl, and no key is added. On one keep-alive connection, the refusal that
# reaches data.close_after_refusals carries Connection: close and the daemon closes the
# connection; an allowed request in between resets the count; 0 never closes.
. "$(dirname "$0")/lib.sh"

SLOTS=16 # the smallest data.rate_slots
CLOSE_AFTER=5

tg_start_mock || bail "mock-llm starts"
tg_start_gateway --set data.rate_slots=$SLOTS --set data.close_after_refusals=$CLOSE_AFTER ||
	bail "tollgated starts with $SLOTS rate slots, closing after $CLOSE_AFTER refusals"

key_slot() { # ID: prints the key's "slot" from GET /api/v1/keys/:id
	api GET "/api/v1/keys/$1"
	[ "$STATUS" = 200 ] && jq -r .slot <<<"$BODY"
}

ids=()
for i in 0 1 2; do
	ids+=("$(new_key "{\"name\":\"k$i\",\"owner\":\"team:s\"}" | jq -r .id)") ||
		bail "the admin creates key k$i"
done

case_start "keys get the lowest free slots, shown as \"slot\""
for i in 0 1 2; do
	got=$(key_slot "${ids[$i]}")
	[ "$got" = "$i" ] || fail "key k$i: expected slot $i, got '$got'"
done
case_end

case_start "a revoked key shows slot null and its slot goes to the next key"
api DELETE "/api/v1/keys/${ids[1]}"
expect_status 200
expect_json .slot null
k3=$(new_key '{"name":"k3","owner":"team:s"}' | jq -r .id)
expect_same "the new key's slot" 1 "$(key_slot "$k3")"
case_end

# ---- rung 1: keep-alive connections ----

tight=$(new_key '{"name":"tight","owner":"team:s","limits":{"requests_per_second":0.001,"burst":1}}') ||
	bail "the admin creates a key allowed 1 request per 1000 s"
roomy=$(new_key '{"name":"roomy","owner":"team:s","tier":"enterprise"}') ||
	bail "the admin creates an enterprise key"
TIGHT=$(jq -r .key <<<"$tight")
ROOMY=$(jq -r .key <<<"$roomy")

# keepalive KEY_NAME...: one connection; per name, GET /v1/models with that key (T: tight,
# R: roomy). Prints one line per answer: "STATUS close|keep", then "eof" if the daemon
# closed the connection after the last answer, "open" if it did not (within 2 s).
keepalive() {
	python3 - "$TG_DATA" "$TIGHT" "$ROOMY" "$@" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
keys = {"T": sys.argv[2], "R": sys.argv[3]}
s = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
buf = b""
def answer():
    global buf
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed before an answer")
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    n = int(hdrs.get("content-length", "0"))
    while len(buf) < n:
        d = s.recv(65536)
        if not d:
            raise SystemExit("connection closed inside a body")
        buf += d
    buf = buf[n:]
    return lines[0].split()[1], hdrs.get("connection", "").lower()
for name in sys.argv[4:]:
    s.sendall(("GET /v1/models HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\n\r\n"
               % keys[name]).encode())
    status, conn = answer()
    print(status, "close" if "close" in conn else "keep")
    if "close" in conn:
        break
s.settimeout(2)
try:
    print("eof" if s.recv(1) == b"" else "open")
except socket.timeout:
    print("open")
EOF
}

case_start "keep-alive: the refusal reaching data.close_after_refusals carries Connection: close and closes"
out=$(keepalive T T T T T T T 2>&1)
want=$'200 keep\n429 keep\n429 keep\n429 keep\n429 keep\n429 close\neof'
expect_same "the answers on one connection" "$want" "$out"
case_end

case_start "keep-alive: an allowed request in between resets the count"
out=$(keepalive T T T T R T T T T T 2>&1)
want=$'429 keep\n429 keep\n429 keep\n429 keep\n200 keep\n429 keep\n429 keep\n429 keep\n429 keep\n429 close\neof'
expect_same "the answers on one connection" "$want" "$out"
case_end

case_start "keep-alive: a client under its limit is never closed"
out=$(keepalive R R R R R R R R 2>&1)
want=$'200 keep\n200 keep\n200 keep\n200 keep\n200 keep\n200 keep\n200 keep\n200 keep\nopen'
expect_same "the answers on one connection" "$want" "$out"
case_end

# ---- restart ----

before=$(for id in "${ids[@]}" "$k3"; do key_slot "$id"; done)
tg_stop_daemon
tg_start_gateway --set data.rate_slots=$SLOTS --set data.close_after_refusals=0 ||
	bail "tollgated restarts on the same store, never closing for refusals"

case_start "slots survive a daemon restart"
after=$(for id in "${ids[@]}" "$k3"; do key_slot "$id"; done)
expect_same "the keys' slots" "$before" "$after"
expect_same "the slots" $'0\nnull\n2\n1' "$after"
case_end

case_start "data.close_after_refusals=0: 30 refusals on one connection, still open"
# Without the kernel path the slots are plain memory, so the restart gave the key a fresh
# bucket: spend its one request first (with pinned maps it is already spent).
keepalive T >/dev/null 2>&1
out=$(keepalive $(printf 'T %.0s' {1..30}) 2>&1)
want=$(printf '429 keep\n%.0s' {1..30}; echo open)
expect_same "the answers on one connection" "$want" "$out"
case_end

# ---- full slot array ----

api GET "/api/v1/keys?limit=100"
count_before=$(jq '.data | length' <<<"$BODY")
active=$(jq '[.data[] | select(.slot != null)] | length' <<<"$BODY")
for ((i = active; i < SLOTS; i++)); do
	new_key "{\"name\":\"fill$i\",\"owner\":\"team:s\"}" >/dev/null || bail "fill key $i is created"
done
api GET "/api/v1/keys?limit=100"
count_full=$(jq '.data | length' <<<"$BODY")

case_start "every slot taken: creation refused with 503 rate_slots_exhausted naming data.rate_slots"
api POST /api/v1/keys '{"name":"one too many","owner":"team:s"}'
expect_error 503 server_error rate_slots_exhausted
expect_match .error.message "data\\.rate_slots = $SLOTS"
[[ $BODY == *'"key"'* ]] && fail "the refusal hands out a key"
api GET "/api/v1/keys?limit=100"
expect_same "the number of keys" "$count_full" "$(jq '.data | length' <<<"$BODY")"
[ "$count_full" = $((count_before + SLOTS - active)) ] || fail "expected $((count_before + SLOTS - active)) keys, have $count_full"
case_end

case_start "tollctl shows the refusal and its code"
ctl keys create --name "ctl too many" --owner team:s
[ "$CTL_RC" != 0 ] || fail "tollctl keys create succeeded with every slot taken"
[[ $CTL_ERR == *rate_slots_exhausted* && $CTL_ERR == *data.rate_slots* ]] ||
	fail "expected tollctl's error to name rate_slots_exhausted and data.rate_slots: $CTL_ERR"
case_end

case_start "revoking a key makes room again"
api DELETE "/api/v1/keys/${ids[2]}"
expect_status 200
api POST /api/v1/keys '{"name":"after revoke","owner":"team:s"}'
expect_status 201
expect_json .slot 2
case_end

tg_stop_daemon

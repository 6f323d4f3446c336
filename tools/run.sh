#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# `make run`: the gateway with working defaults, in front of mock-llm, ready to try.
#   - mock-llm (the OpenAI-compatible mock upstream) on 127.0.0.1:9000
#   - tollgated: store in ./var/store, data plane on 127.0.0.1:8080, admin API on 127.0.0.1:8081
#   - a demo API key, and a curl line that works
# Ctrl-C stops both. The admin token is TOLLGATE_ADMIN_TOKEN if set, else one made for this
# run and printed (the store keeps only its hash). Extra tollgated options:
#   TOLLGATED_ARGS="--log-level debug" make run
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
cd "$(dirname "$0")/.."
mkdir -p var
run=$(mktemp -d var/run.XXXXXX)
mock_pid="" gw_pid=""

cleanup() {
	trap - EXIT INT TERM
	[ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
	rm -rf "$run"
}
trap cleanup EXIT INT TERM

wait_file() { # file, seconds
	for _ in $(seq 1 $(($2 * 10))); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

"$build/mock-llm" --listen 127.0.0.1:9000 --ready-file "$run/mock.ready" >"$run/mock.log" 2>&1 &
mock_pid=$!
wait_file "$run/mock.ready" 10 || { cat "$run/mock.log"; echo "run: mock-llm did not start"; exit 1; }

if [ -z "${TOLLGATE_ADMIN_TOKEN:-}" ]; then
	TOLLGATE_ADMIN_TOKEN="tgdemo_$(head -c 4096 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 43)"
	made_token=1
fi
export TOLLGATE_ADMIN_TOKEN
# shellcheck disable=SC2086
"$build/tollgated" run --ready-file "$run/tollgated.ready" ${TOLLGATED_ARGS:-} &
gw_pid=$!
wait_file "$run/tollgated.ready" 30 || { echo "run: tollgated did not start"; exit 1; }
admin=$(jq -r .admin "$run/tollgated.ready")
data=$(jq -r .data "$run/tollgated.ready")

key=$(curl -sS --max-time 10 -X POST "http://$admin/api/v1/keys" \
	-H "Authorization: Bearer $TOLLGATE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
	-d '{"name":"demo","owner":"user:demo","service":"demo","tier":"basic"}' | jq -r .key)
[ -n "$key" ] && [ "$key" != null ] || { echo "run: could not create the demo key"; exit 1; }
kmode=$(curl -sS --max-time 10 "http://$admin/api/v1/kernel" \
	-H "Authorization: Bearer $TOLLGATE_ADMIN_TOKEN" | jq -r '.mode // "unknown"')
if [ "$kmode" = off ]; then
	kernel_line="Kernel fast path: off (not root, or no BPF here; the daemon enforces every limit)."
else
	kernel_line="Kernel fast path: $kmode, attached to the data listener's interface; it stays
attached after Ctrl-C (enforcement outlives the daemon): $build/tollgated detach removes it."
fi

cat <<EOF

tollgate is running: data plane http://$data (OpenAI-compatible), admin API http://$admin
mock-llm answers as the upstream provider on 127.0.0.1:9000.
${made_token:+
Admin token for this run (set TOLLGATE_ADMIN_TOKEN yourself to keep one):
  export TOLLGATE_ADMIN_TOKEN=$TOLLGATE_ADMIN_TOKEN
}
Demo API key (basic tier: 10 requests/s, burst 20), shown once:
  $key

Try it:
  curl http://$data/v1/chat/completions -H "Authorization: Bearer $key" \\
       -H 'Content-Type: application/json' \\
       -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'

  $build/tollctl keys list          # with TOLLGATE_ADMIN_TOKEN exported
  $build/tollctl status             # the kernel fast path
  curl http://$admin/metrics

$kernel_line

Ctrl-C stops tollgated and mock-llm.
EOF
wait "$gw_pid"

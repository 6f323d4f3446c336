#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# `make run`: starts tollgated in the foreground with working defaults (store under ./var,
# admin API on 127.0.0.1:8081). On the first start without TOLLGATE_ADMIN_TOKEN it prints a
# generated admin token once. Extra options: TOLLGATED_ARGS="--log-level debug" make run.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p var
echo "run: starting $build/tollgated (Ctrl-C stops it); admin API: http://127.0.0.1:8081"
echo "run: in another shell:  export TOLLGATE_ADMIN_TOKEN=<token>;  $build/tollctl keys list"
# shellcheck disable=SC2086
exec "$build/tollgated" run ${TOLLGATED_ARGS:-}

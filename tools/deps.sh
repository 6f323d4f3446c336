#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Installs the Debian packages tollgate needs to build, run, test and benchmark, if any is
# missing. Idempotent and non-interactive; needs root (or sudo) only when something is missing.
set -euo pipefail
pkgs=(
	build-essential clang pkg-config
	liblmdb-dev lmdb-utils libargon2-dev libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev
	curl jq iproute2 procps psmisc
	llvm libbpf-dev libxdp-dev xdp-tools bpftool libelf-dev zlib1g-dev ethtool
	wrk nginx-light openssl
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"

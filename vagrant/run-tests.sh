#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs the integration scripts on the gateway VM with the VMs' addresses as inputs: the same
# scripts tests/run uses on one host, where every address defaults to loopback or to
# namespaces the script creates.
set -euo pipefail
cd "$(dirname "$0")/.."
export TG_GATEWAY_ADDR=${TG_GATEWAY_ADDR:-192.168.56.10}
export TG_CLIENT_ADDR=${TG_CLIENT_ADDR:-192.168.56.11}
export TG_UPSTREAM_ADDR=${TG_UPSTREAM_ADDR:-192.168.56.12}
make all
tests/run build integration

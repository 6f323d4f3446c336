-- SPDX-License-Identifier: BSD-2-Clause
-- wrk script for tools/bench/bench_dataplane.sh: POSTs BENCH_BODY to BENCH_PATH, rotating
-- over the API keys in BENCH_KEYS (one per line; none: no Authorization header). Each thread
-- starts at a different key. done() prints one machine-readable RESULT line.
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local body = os.getenv("BENCH_BODY") or
	'{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
local keys_file = os.getenv("BENCH_KEYS")
local reqs = {}
local n, i = 0, 0
local threads = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	local keys = {}
	if keys_file and keys_file ~= "" then
		for line in io.lines(keys_file) do
			if line ~= "" then table.insert(keys, line) end
		end
	end
	if #keys == 0 then keys = { false } end
	for _, k in ipairs(keys) do
		local h = { ["Content-Type"] = "application/json" }
		if k then h["Authorization"] = "Bearer " .. k end
		table.insert(reqs, wrk.format("POST", path, h, body))
	end
	n = #reqs
	i = (id or 0) * 7 % n
end

function request()
	i = i % n + 1
	return reqs[i]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"RESULT requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f\n",
		summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
		latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end

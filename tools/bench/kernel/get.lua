-- SPDX-License-Identifier: BSD-2-Clause
-- wrk script for tools/bench/bench_kernel.sh: GETs BENCH_PATH (default /v1/models), rotating
-- over the API keys in BENCH_KEYS (one per line) as Authorization: Bearer; BENCH_CLOSE=1 adds
-- Connection: close (wrk then opens a connection per request, as scripts without a session
-- do). Each thread starts at a different key. done() prints one machine-readable RESULT line.
local path = os.getenv("BENCH_PATH") or "/v1/models"
local keys_file = os.getenv("BENCH_KEYS")
local close = os.getenv("BENCH_CLOSE") == "1"
-- BENCH_DELAY_MS: each connection waits this long before each request (a paced flood)
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local reqs = {}
local n, i = 0, 0
local threads = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	for line in io.lines(keys_file) do
		if line ~= "" then
			local h = { ["Authorization"] = "Bearer " .. line }
			if close then h["Connection"] = "close" end
			table.insert(reqs, wrk.format("GET", path, h))
		end
	end
	n = #reqs
	i = (id or 0) * 7 % n
end

if delay_ms then
	function delay()
		return delay_ms
	end
end

function request()
	i = i % n + 1
	return reqs[i]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"RESULT requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%.1f p99_us=%.1f p90_us=%.1f p999_us=%.1f max_us=%.1f\n",
		summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
		latency:percentile(50), latency:percentile(99), latency:percentile(90),
		latency:percentile(99.9), latency.max))
end

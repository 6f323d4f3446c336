/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GET /_mock/stats counters (stats.h). Gauges are kept apart from counters so a reset
 * cannot leave "in flight" negative when those requests later finish.
 */
#include <stdatomic.h>

#include "stats.h"

/* Counters: zeroed by stats_reset. */
static struct {
	atomic_ullong requests[STATS_ENDPOINTS];
	atomic_ullong status_2xx, status_4xx, status_5xx, status_other;
	atomic_ullong unauthorized;
	atomic_ullong faults[STATS_FAULTS];
	atomic_ullong prompt_tokens, completion_tokens;
	atomic_ullong streams_started, streams_completed, streams_aborted;
} counters;

/* Gauges: live values. */
static atomic_long streams_in_flight, hung_in_flight, connections_open;

static void bump(atomic_ullong *c, unsigned long long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static unsigned long long get(atomic_ullong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_request(enum stats_endpoint e)
{
	bump(&counters.requests[e], 1);
}

void stats_response(unsigned status)
{
	if (status >= 200 && status < 300)
		bump(&counters.status_2xx, 1);
	else if (status >= 400 && status < 500)
		bump(&counters.status_4xx, 1);
	else if (status >= 500 && status < 600)
		bump(&counters.status_5xx, 1);
	else
		bump(&counters.status_other, 1);
}

void stats_unauthorized(void)
{
	bump(&counters.unauthorized, 1);
}

void stats_fault(enum stats_fault f)
{
	bump(&counters.faults[f], 1);
}

void stats_prompt_tokens(unsigned n)
{
	bump(&counters.prompt_tokens, n);
}

void stats_completion_tokens(unsigned n)
{
	bump(&counters.completion_tokens, n);
}

void stats_stream_start(void)
{
	bump(&counters.streams_started, 1);
	atomic_fetch_add_explicit(&streams_in_flight, 1, memory_order_relaxed);
}

void stats_stream_end(bool completed)
{
	bump(completed ? &counters.streams_completed : &counters.streams_aborted, 1);
	atomic_fetch_sub_explicit(&streams_in_flight, 1, memory_order_relaxed);
}

void stats_hung(int delta)
{
	atomic_fetch_add_explicit(&hung_in_flight, delta, memory_order_relaxed);
}

void stats_connection(int delta)
{
	atomic_fetch_add_explicit(&connections_open, delta, memory_order_relaxed);
}

void stats_reset(void)
{
	atomic_ullong *c = (atomic_ullong *)&counters;

	for (size_t i = 0; i < sizeof(counters) / sizeof(*c); i++)
		atomic_store_explicit(&c[i], 0, memory_order_relaxed);
}

void stats_json(struct buf *b)
{
	unsigned long long total = 0, faults = 0;

	for (int i = 0; i < STATS_ENDPOINTS; i++)
		total += get(&counters.requests[i]);
	for (int i = 0; i < STATS_FAULTS; i++)
		faults += get(&counters.faults[i]);
	buf_printf(b,
		   "{\"requests\":{\"total\":%llu,\"chat_completions\":%llu,\"completions\":%llu,"
		   "\"embeddings\":%llu,\"models\":%llu,\"other\":%llu},",
		   total, get(&counters.requests[STATS_CHAT]),
		   get(&counters.requests[STATS_COMPLETIONS]),
		   get(&counters.requests[STATS_EMBEDDINGS]), get(&counters.requests[STATS_MODELS]),
		   get(&counters.requests[STATS_OTHER]));
	buf_printf(b, "\"responses\":{\"2xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},",
		   get(&counters.status_2xx), get(&counters.status_4xx), get(&counters.status_5xx),
		   get(&counters.status_other));
	buf_printf(b,
		   "\"unauthorized\":%llu,\"faults_injected\":%llu,\"faults\":{\"status\":%llu,"
		   "\"hang\":%llu,\"disconnect\":%llu},",
		   get(&counters.unauthorized), faults, get(&counters.faults[STATS_FAULT_STATUS]),
		   get(&counters.faults[STATS_FAULT_HANG]),
		   get(&counters.faults[STATS_FAULT_DISCONNECT]));
	buf_printf(
	    b,
	    "\"prompt_tokens\":%llu,\"completion_tokens_sent\":%llu,\"streams_started\":%llu,"
	    "\"streams_completed\":%llu,\"streams_aborted\":%llu,",
	    get(&counters.prompt_tokens), get(&counters.completion_tokens),
	    get(&counters.streams_started), get(&counters.streams_completed),
	    get(&counters.streams_aborted));
	buf_printf(b, "\"streams_in_flight\":%ld,\"hung_in_flight\":%ld,\"connections_open\":%ld}",
		   atomic_load(&streams_in_flight), atomic_load(&hung_in_flight),
		   atomic_load(&connections_open));
}

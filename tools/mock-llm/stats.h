/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Counters behind GET /_mock/stats. Lock-free (relaxed atomics): a reader may see one
 * counter a request ahead of another, which tests never depend on since they read stats
 * after their requests have finished. Control requests (/_mock/...) are not counted.
 */
#ifndef MOCK_LLM_STATS_H
#define MOCK_LLM_STATS_H

#include <stdbool.h>

#include "buf.h"

enum stats_endpoint {
	STATS_CHAT = 0,	       /* POST /v1/chat/completions */
	STATS_COMPLETIONS = 1, /* POST /v1/completions */
	STATS_EMBEDDINGS = 2,  /* POST /v1/embeddings */
	STATS_MODELS = 3,      /* GET /v1/models[/{id}] */
	STATS_OTHER = 4,       /* anything else under /v1, and any unknown path */
	STATS_ENDPOINTS = 5,
};

enum stats_fault {
	STATS_FAULT_STATUS = 0,	    /* answered with an injected status */
	STATS_FAULT_HANG = 1,	    /* held without an answer */
	STATS_FAULT_DISCONNECT = 2, /* stream cut before [DONE] */
	STATS_FAULTS = 3,
};

void stats_request(enum stats_endpoint e);
void stats_response(unsigned status);
void stats_unauthorized(void);
void stats_fault(enum stats_fault f);

/* Usage of a call answered with 200 (counted when the answer starts). */
void stats_prompt_tokens(unsigned n);

/* Completion tokens that went out: a whole non-streaming answer, or streamed chunks. */
void stats_completion_tokens(unsigned n);

/* A stream begins; it ends with [DONE] sent (COMPLETED) or otherwise. */
void stats_stream_start(void);
void stats_stream_end(bool completed);

/* Gauges: requests held by a hang fault, open connections. */
void stats_hung(int delta);
void stats_connection(int delta);

/* Zeroes the counters; gauges (in flight, hung, connections) keep their live values. */
void stats_reset(void);

/* Appends the GET /_mock/stats object. */
void stats_json(struct buf *b);

#endif

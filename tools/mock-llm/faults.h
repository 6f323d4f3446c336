/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Fault injection: the global configuration set by the flags and changed at run time by
 * PUT /_mock/config, and what one request gets once its x-mock-* headers are merged in
 * (docs/mock-llm.md, "Fault injection"). The configuration is shared by all workers behind
 * one mutex; each request takes a snapshot once, so a change applies from the next request.
 */
#ifndef MOCK_LLM_FAULTS_H
#define MOCK_LLM_FAULTS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define FAULTS_LATENCY_MAX_MS	  3600000
#define FAULTS_TOKEN_MAX_MS	  600000
#define FAULTS_RETRY_AFTER_MAX_S  86400
#define FAULTS_FAIL_COUNT_MAX	  1000000000
#define FAULTS_DISCONNECT_MAX_TOK 4096

struct fault_config {
	int latency_ms;		     /* before the first byte of every /v1 answer */
	int token_ms;		     /* between streamed tokens */
	int fail_status;	     /* answer with this status (400..599); 0: off */
	int fail_count;		     /* requests left to fail; -1: all until changed */
	int retry_after;	     /* Retry-After seconds on 429 and 503; 0: no header */
	bool hang;		     /* accept requests and never answer */
	int disconnect_after_tokens; /* streams: close after this many tokens; -1: off */
};

/* The per-request headers (x-mock-*); -1 where a header was absent. */
struct fault_override {
	int status;	      /* x-mock-status; 0 or 200 count as absent */
	int retry_after;      /* x-mock-retry-after */
	int latency_ms;	      /* x-mock-latency-ms */
	int token_ms;	      /* x-mock-token-ms */
	int disconnect_after; /* x-mock-disconnect-after-tokens */
};

/* What one /v1 request gets. */
struct fault {
	unsigned latency_ms;
	unsigned token_ms;
	unsigned status;      /* injected error status, 0: none */
	unsigned retry_after; /* seconds, 0: no header */
	bool hang;
	int disconnect_after; /* -1: never */
};

/* Sets the configuration the process starts with and POST /_mock/reset returns to. */
void faults_init(const struct fault_config *defaults);

void faults_get(struct fault_config *out);

/* Back to the defaults of faults_init. */
void faults_reset(void);

/*
 * Applies a PUT /_mock/config body: a JSON object with any of the fault_config members.
 * All or nothing: returns 0, or -EINVAL with the reason in WHY (and nothing changed).
 */
int faults_update(const char *body, size_t len, char *why, size_t why_len);

/*
 * The fault for one request: O's headers first, then hang, then the global status (which
 * consumes one of fail_count). Always fills *F.
 */
void faults_take(const struct fault_override *o, struct fault *f);

/* Appends the configuration as a JSON object. */
void faults_json(struct buf *b, const struct fault_config *c);

/* The OpenAI error type, code (NULL for null) and message for an injected STATUS. */
void faults_describe(unsigned status, const char **type, const char **code, const char **message);

#endif

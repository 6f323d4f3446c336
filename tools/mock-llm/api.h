/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What mock-llm answers, decided apart from HTTP: the server extracts a request's method,
 * path, body and the few headers that matter into a struct api_request, and gets back a
 * struct answer (a status with a JSON body, a stream, or nothing for a hang) to send.
 * Control paths (/_mock/...) are answered by control.h with the same types.
 */
#ifndef MOCK_LLM_API_H
#define MOCK_LLM_API_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "faults.h"
#include "stats.h"
#include "stream.h"

/* Request bodies above this are refused with 413 (and not kept). */
#define API_BODY_MAX (4u << 20)

enum api_route {
	ROUTE_CHAT = 1,		 /* /v1/chat/completions */
	ROUTE_COMPLETIONS = 2,	 /* /v1/completions */
	ROUTE_EMBEDDINGS = 3,	 /* /v1/embeddings */
	ROUTE_MODELS = 4,	 /* /v1/models */
	ROUTE_MODEL = 5,	 /* /v1/models/{id} */
	ROUTE_UNKNOWN = 6,	 /* any other path */
	ROUTE_MOCK_CONFIG = 7,	 /* /_mock/config */
	ROUTE_MOCK_STATS = 8,	 /* /_mock/stats */
	ROUTE_MOCK_RESET = 9,	 /* /_mock/reset */
	ROUTE_MOCK_UNKNOWN = 10, /* any other path under /_mock/ */
};

/* The x-mock-* request headers, in this order in api_request.mock. */
enum api_mock_header {
	MOCK_STATUS = 0,
	MOCK_RETRY_AFTER = 1,
	MOCK_LATENCY_MS = 2,
	MOCK_TOKEN_MS = 3,
	MOCK_DISCONNECT_AFTER = 4,
	MOCK_HEADERS = 5,
};

/* Header names, lower case, indexed by enum api_mock_header. */
extern const char *const api_mock_header_names[MOCK_HEADERS];

/* One request; every pointer is borrowed for the duration of the call it is passed to. */
struct api_request {
	enum api_route route;
	const char *method;
	const char *url;
	const char *model_id; /* ROUTE_MODEL: the id after /v1/models/ */
	const char *body;     /* NULL when there was none */
	size_t body_len;
	bool body_too_large;		/* over API_BODY_MAX: body is NULL */
	const char *authorization;	/* Authorization header, or NULL */
	const char *api_key;		/* --api-key, or NULL when not checked */
	const char *mock[MOCK_HEADERS]; /* x-mock-* values, NULL when absent */
};

/* What to send. */
struct answer {
	unsigned status;
	struct buf body;	    /* JSON body (not for streams); owned */
	bool is_stream;		    /* send STREAM as text/event-stream */
	struct stream stream;	    /* the events, when is_stream */
	unsigned retry_after;	    /* Retry-After seconds (sent with 429 and 503 only); 0: none */
	bool hang;		    /* send nothing, ever */
	unsigned prompt_tokens;	    /* usage of a 200 answer, for the stats */
	unsigned completion_tokens; /* completion tokens in a non-streaming 200 answer */
};

/* The route of URL (a decoded path); for ROUTE_MODEL, *MODEL_ID points into URL. */
enum api_route api_route(const char *url, const char **model_id);

/* Whether ROUTE is a control path (/_mock/...): no auth, no faults, no stats. */
bool api_is_control(enum api_route route);

/* The stats bucket of a /v1 route. */
enum stats_endpoint api_endpoint(enum api_route route);

void answer_init(struct answer *a);
void answer_free(struct answer *a);

/* Sets *A to an OpenAI-style error answer. CODE and PARAM may be NULL. */
void answer_error(struct answer *a, unsigned status, const char *type, const char *code,
		  const char *param, const char *message);

/*
 * The checks that come before faults, in order: known path (404), method (405), body size
 * (413), API key (401), x-mock-* headers (400). Returns true with *A set when one refused
 * the request; otherwise false with *O holding the parsed headers.
 */
bool api_refuse(const struct api_request *rq, struct fault_override *o, struct answer *a);

/* Answers a /v1 request that passed api_refuse, under fault F (not a hang). */
void api_answer(const struct api_request *rq, const struct fault *f, struct answer *a);

#endif

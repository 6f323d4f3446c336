/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The /v1 endpoints (api.h): routing, the checks before faults, the injected errors, and
 * the answers built from a parsed call. The order of the checks is part of the contract
 * (docs/mock-llm.md, "Order of checks"): tests rely on, say, a 401 never consuming one of
 * fail_count.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "call.h"
#include "models.h"
#include "reply.h"

const char *const api_mock_header_names[MOCK_HEADERS] = {
    "x-mock-status",
    "x-mock-retry-after",
    "x-mock-latency-ms",
    "x-mock-token-ms",
    "x-mock-disconnect-after-tokens",
};

/* Inclusive ranges of the x-mock-* headers, indexed like api_mock_header_names. */
static const int mock_header_max[MOCK_HEADERS] = {
    599,
    FAULTS_RETRY_AFTER_MAX_S,
    FAULTS_LATENCY_MAX_MS,
    FAULTS_TOKEN_MAX_MS,
    FAULTS_DISCONNECT_MAX_TOK,
};

/* Completion ids count from 1 for the life of the process (a reset keeps them unique). */
static atomic_ullong api_last_id;

static const struct {
	const char *path;
	enum api_route route;
	const char *method;
} api_routes[] = {
    {"/v1/chat/completions", ROUTE_CHAT, "POST"}, {"/v1/completions", ROUTE_COMPLETIONS, "POST"},
    {"/v1/embeddings", ROUTE_EMBEDDINGS, "POST"}, {"/v1/models", ROUTE_MODELS, "GET"},
    {"/_mock/config", ROUTE_MOCK_CONFIG, NULL},	  {"/_mock/stats", ROUTE_MOCK_STATS, NULL},
    {"/_mock/reset", ROUTE_MOCK_RESET, NULL},
};

enum api_route api_route(const char *url, const char **model_id)
{
	*model_id = NULL;
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
		if (strcmp(url, api_routes[i].path) == 0)
			return api_routes[i].route;
	if (strncmp(url, "/v1/models/", 11) == 0 && url[11]) {
		*model_id = url + 11;
		return ROUTE_MODEL;
	}
	if (strncmp(url, "/_mock/", 7) == 0)
		return ROUTE_MOCK_UNKNOWN;
	return ROUTE_UNKNOWN;
}

bool api_is_control(enum api_route route)
{
	return route >= ROUTE_MOCK_CONFIG;
}

enum stats_endpoint api_endpoint(enum api_route route)
{
	switch (route) {
	case ROUTE_CHAT:
		return STATS_CHAT;
	case ROUTE_COMPLETIONS:
		return STATS_COMPLETIONS;
	case ROUTE_EMBEDDINGS:
		return STATS_EMBEDDINGS;
	case ROUTE_MODELS:
	case ROUTE_MODEL:
		return STATS_MODELS;
	default:
		return STATS_OTHER;
	}
}

void answer_init(struct answer *a)
{
	memset(a, 0, sizeof(*a));
	buf_init(&a->body);
}

void answer_free(struct answer *a)
{
	if (a)
		buf_free(&a->body);
}

void answer_error(struct answer *a, unsigned status, const char *type, const char *code,
		  const char *param, const char *message)
{
	buf_free(&a->body);
	a->status = status;
	a->is_stream = false;
	reply_error(&a->body, message, type, code, param);
}

static bool method_ok(const struct api_request *rq)
{
	const char *want = rq->route == ROUTE_MODEL ? "GET" : NULL;

	for (size_t i = 0; !want && i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
		if (api_routes[i].route == rq->route)
			want = api_routes[i].method;
	return want && strcmp(rq->method, want) == 0;
}

/* "Bearer KEY" with KEY equal to the expected one, compared in constant time. */
static bool key_ok(const char *authorization, const char *key)
{
	size_t got_len, key_len = strlen(key);
	unsigned char diff = 0;
	const char *got;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	got = authorization + 7;
	while (*got == ' ')
		got++;
	got_len = strlen(got);
	for (size_t i = 0; i < key_len; i++)
		diff |= (unsigned char)(key[i] ^ (i < got_len ? got[i] : 0));
	return diff == 0 && got_len == key_len;
}

/* A decimal integer from 0 to MAX; -1 if V is anything else. */
static int parse_header_int(const char *v, int max)
{
	char *end;
	long n;

	if (!v || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno || *end || n > max)
		return -1;
	return (int)n;
}

/* The x-mock-* headers into *O; false with a 400 in *A for a malformed one. */
static bool parse_overrides(const struct api_request *rq, struct fault_override *o,
			    struct answer *a)
{
	int v[MOCK_HEADERS];
	char msg[160];

	for (int i = 0; i < MOCK_HEADERS; i++) {
		v[i] = -1;
		if (!rq->mock[i])
			continue;
		v[i] = parse_header_int(rq->mock[i], mock_header_max[i]);
		if (i == MOCK_STATUS && v[i] > 0 && v[i] != 200 && v[i] < 400)
			v[i] = -1;
		if (v[i] < 0) {
			snprintf(msg, sizeof(msg),
				 "Invalid %s header: expected an integer from 0 to %d%s.",
				 api_mock_header_names[i], mock_header_max[i],
				 i == MOCK_STATUS ? " (0 or 200: none, else 400 to 599)" : "");
			answer_error(a, 400, "invalid_request_error", NULL,
				     api_mock_header_names[i], msg);
			return false;
		}
	}
	o->status = v[MOCK_STATUS] == 200 ? 0 : v[MOCK_STATUS];
	o->retry_after = v[MOCK_RETRY_AFTER];
	o->latency_ms = v[MOCK_LATENCY_MS];
	o->token_ms = v[MOCK_TOKEN_MS];
	o->disconnect_after = v[MOCK_DISCONNECT_AFTER];
	return true;
}

bool api_refuse(const struct api_request *rq, struct fault_override *o, struct answer *a)
{
	char msg[300];

	if (rq->route == ROUTE_UNKNOWN) {
		snprintf(msg, sizeof(msg), "Unknown request URL: %.16s %.200s.", rq->method, rq->url);
		answer_error(a, 404, "invalid_request_error", "unknown_url", NULL, msg);
	} else if (!method_ok(rq)) {
		snprintf(msg, sizeof(msg), "Method %.16s is not allowed on %.200s.", rq->method,
			 rq->url);
		answer_error(a, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
	} else if (rq->body_too_large) {
		snprintf(msg, sizeof(msg), "Request body is larger than %u bytes.", API_BODY_MAX);
		answer_error(a, 413, "invalid_request_error", "request_too_large", NULL, msg);
	} else if (rq->api_key && !key_ok(rq->authorization, rq->api_key)) {
		stats_unauthorized();
		answer_error(a, 401, "invalid_request_error", "invalid_api_key", NULL,
			     rq->authorization ? "Incorrect API key provided."
					       : "You didn't provide an API key. Send it in the "
						 "Authorization header as 'Bearer KEY'.");
	} else {
		return !parse_overrides(rq, o, a);
	}
	return true;
}

/* Answers a completion or embeddings call of KIND. */
static void answer_call(const struct api_request *rq, enum call_kind kind, const struct fault *f,
			struct answer *a)
{
	struct call_error err;
	struct call c;
	uint64_t id;
	int rc;

	rc = call_parse(kind, rq->body ? rq->body : "", rq->body_len, &c, &err);
	if (rc == -ENOMEM) {
		answer_error(a, 500, "server_error", NULL, NULL, "Out of memory.");
		return;
	}
	if (rc) {
		answer_error(a, err.status, err.type, err.code, err.param, err.message);
		return;
	}
	id = atomic_fetch_add_explicit(&api_last_id, 1, memory_order_relaxed) + 1;
	a->status = 200;
	a->prompt_tokens = c.prompt_tokens;
	if (c.stream) {
		a->is_stream = true;
		stream_init(&a->stream, &c, id, (long long)time(NULL),
			    (uint64_t)f->token_ms * 1000000ULL, f->disconnect_after);
	} else {
		reply_call(&a->body, &c, id, (long long)time(NULL));
		a->completion_tokens = c.completion_tokens;
	}
	call_free(&c);
}

static void answer_fault(const struct fault *f, struct answer *a)
{
	const char *type, *code, *message;

	faults_describe(f->status, &type, &code, &message);
	answer_error(a, f->status, type, code, NULL, message);
	a->retry_after = f->retry_after;
	stats_fault(STATS_FAULT_STATUS);
}

void api_answer(const struct api_request *rq, const struct fault *f, struct answer *a)
{
	int model;
	char msg[300];

	if (f->status) {
		answer_fault(f, a);
		return;
	}
	switch (rq->route) {
	case ROUTE_CHAT:
		answer_call(rq, CALL_CHAT, f, a);
		break;
	case ROUTE_COMPLETIONS:
		answer_call(rq, CALL_COMPLETION, f, a);
		break;
	case ROUTE_EMBEDDINGS:
		answer_call(rq, CALL_EMBEDDING, f, a);
		break;
	case ROUTE_MODEL:
		model = models_find(rq->model_id);
		if (model < 0) {
			snprintf(msg, sizeof(msg), "The model '%.200s' does not exist.",
				 rq->model_id);
			answer_error(a, 404, "invalid_request_error", "model_not_found", NULL, msg);
			break;
		}
		a->status = 200;
		reply_model(&a->body, model);
		break;
	default:
		a->status = 200;
		reply_models(&a->body);
		break;
	}
}

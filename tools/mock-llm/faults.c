/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The fault configuration and its merge with per-request headers (faults.h). Validation is
 * table-driven: one row per settable member with its range, so GET, PUT and the docs name
 * the same fields.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "faults.h"

struct fault_rule {
	const char *name;
	int min, max;
	size_t offset; /* of the int member in struct fault_config */
};

static const struct fault_rule fault_rules[] = {
    {"latency_ms", 0, FAULTS_LATENCY_MAX_MS, offsetof(struct fault_config, latency_ms)},
    {"token_ms", 0, FAULTS_TOKEN_MAX_MS, offsetof(struct fault_config, token_ms)},
    {"fail_status", 0, 599, offsetof(struct fault_config, fail_status)},
    {"fail_count", -1, FAULTS_FAIL_COUNT_MAX, offsetof(struct fault_config, fail_count)},
    {"retry_after", 0, FAULTS_RETRY_AFTER_MAX_S, offsetof(struct fault_config, retry_after)},
    {"disconnect_after_tokens", -1, FAULTS_DISCONNECT_MAX_TOK,
     offsetof(struct fault_config, disconnect_after_tokens)},
};

static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault_config faults_defaults, faults_now;

void faults_init(const struct fault_config *defaults)
{
	pthread_mutex_lock(&faults_lock);
	faults_defaults = *defaults;
	faults_now = *defaults;
	pthread_mutex_unlock(&faults_lock);
}

void faults_get(struct fault_config *out)
{
	pthread_mutex_lock(&faults_lock);
	*out = faults_now;
	pthread_mutex_unlock(&faults_lock);
}

void faults_reset(void)
{
	pthread_mutex_lock(&faults_lock);
	faults_now = faults_defaults;
	pthread_mutex_unlock(&faults_lock);
}

/* Sets one integer member of NEXT from ITEM; 0 or -EINVAL with WHY. */
static int apply_int(const struct fault_rule *r, const cJSON *item, struct fault_config *next,
		     char *why, size_t why_len)
{
	int *field = (int *)((char *)next + r->offset);
	double v = item->valuedouble;

	if (cJSON_IsNull(item) && r->min < 0) {
		*field = -1;
		return 0;
	}
	if (!cJSON_IsNumber(item) || v < r->min || v > r->max || (double)(int)v != v) {
		snprintf(why, why_len, "Invalid '%s': expected an integer from %d to %d.", r->name,
			 r->min, r->max);
		return -EINVAL;
	}
	if (r->offset == offsetof(struct fault_config, fail_status) && v != 0 && v < 400) {
		snprintf(why, why_len, "Invalid 'fail_status': expected 0 (off) or 400 to 599.");
		return -EINVAL;
	}
	*field = (int)v;
	return 0;
}

/* Sets the member ITEM names in NEXT; 0 or -EINVAL with WHY. */
static int apply_member(const cJSON *item, struct fault_config *next, char *why, size_t why_len)
{
	if (strcmp(item->string, "hang") == 0) {
		if (!cJSON_IsBool(item)) {
			snprintf(why, why_len, "Invalid 'hang': expected true or false.");
			return -EINVAL;
		}
		next->hang = cJSON_IsTrue(item);
		return 0;
	}
	for (size_t i = 0; i < sizeof(fault_rules) / sizeof(fault_rules[0]); i++)
		if (strcmp(item->string, fault_rules[i].name) == 0)
			return apply_int(&fault_rules[i], item, next, why, why_len);
	snprintf(why, why_len, "Unknown field '%.64s'.", item->string);
	return -EINVAL;
}

int faults_update(const char *body, size_t len, char *why, size_t why_len)
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *item;
	struct fault_config next;
	int err = 0;

	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		snprintf(why, why_len, "Expected a JSON object.");
		return -EINVAL;
	}
	pthread_mutex_lock(&faults_lock);
	next = faults_now;
	cJSON_ArrayForEach(item, root)
	{
		err = apply_member(item, &next, why, why_len);
		if (err)
			break;
	}
	/* A status set alone fails every request until changed; a status of 0 fails none. */
	if (!err && cJSON_HasObjectItem(root, "fail_status") &&
	    !cJSON_HasObjectItem(root, "fail_count"))
		next.fail_count = next.fail_status ? -1 : 0;
	if (!err)
		faults_now = next;
	pthread_mutex_unlock(&faults_lock);
	cJSON_Delete(root);
	return err;
}

void faults_take(const struct fault_override *o, struct fault *f)
{
	pthread_mutex_lock(&faults_lock);
	f->latency_ms = (unsigned)(o->latency_ms >= 0 ? o->latency_ms : faults_now.latency_ms);
	f->token_ms = (unsigned)(o->token_ms >= 0 ? o->token_ms : faults_now.token_ms);
	f->retry_after = (unsigned)(o->retry_after >= 0 ? o->retry_after : faults_now.retry_after);
	f->disconnect_after =
	    o->disconnect_after >= 0 ? o->disconnect_after : faults_now.disconnect_after_tokens;
	f->status = 0;
	f->hang = false;
	if (o->status > 0) {
		f->status = (unsigned)o->status;
	} else if (faults_now.hang) {
		f->hang = true;
	} else if (faults_now.fail_status && faults_now.fail_count != 0) {
		f->status = (unsigned)faults_now.fail_status;
		if (faults_now.fail_count > 0)
			faults_now.fail_count--;
	}
	pthread_mutex_unlock(&faults_lock);
}

void faults_json(struct buf *b, const struct fault_config *c)
{
	buf_printf(b,
		   "{\"latency_ms\":%d,\"token_ms\":%d,\"fail_status\":%d,\"fail_count\":%d,"
		   "\"retry_after\":%d,\"hang\":%s,\"disconnect_after_tokens\":%d}",
		   c->latency_ms, c->token_ms, c->fail_status, c->fail_count, c->retry_after,
		   c->hang ? "true" : "false", c->disconnect_after_tokens);
}

void faults_describe(unsigned status, const char **type, const char **code, const char **message)
{
	*code = NULL;
	if (status == 429) {
		*type = "requests";
		*code = "rate_limit_exceeded";
		*message = "Rate limit reached for requests (injected by mock-llm).";
	} else if (status == 503) {
		*type = "server_error";
		*message = "The server is overloaded or not ready yet (injected by mock-llm).";
	} else if (status >= 500) {
		*type = "server_error";
		*message = "The server had an error while processing your request (injected by "
			   "mock-llm).";
	} else {
		*type = "invalid_request_error";
		*message = "Request refused (injected by mock-llm).";
	}
}

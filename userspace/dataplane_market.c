/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The marketplace endpoints (docs/data-plane.md): consume (a chat completion built from a
 * prompt, answered with its text, usage, cost and latency), the key's monthly quota and
 * usage totals from the usage roll-ups, and where the key stands in its request-rate
 * windows. The router has already authenticated the key, charged (or dry-run) its windows
 * and checked :serviceId against the key's service.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane_internal.h"
#include "log.h"
#include "util.h"

#define USAGE_DAYS_DEFAULT 30
#define USAGE_DAYS_MAX	   366
#define TEMPERATURE_MAX	   2.0
#define NANO_PER_USD	   1e9

/* ---- consume ---- */

static bool reply_field(struct http_req *req, const char *code, const char *param, const char *what)
{
	http_reply_error(req, 400, "invalid_request_error", code, param, "%s: %s", param, what);
	return false;
}

/* Only the documented fields: anything else is refused by name (nothing is forwarded). */
static bool consume_known_fields(struct http_req *req, const cJSON *root)
{
	static const char *const known[] = {"prompt", "max_tokens", "temperature", "metadata",
					    "model"};
	const cJSON *f;

	cJSON_ArrayForEach(f, root)
	{
		bool ok = false;

		for (size_t i = 0; i < TG_ARRAY_SIZE(known) && !ok; i++)
			ok = f->string && strcmp(f->string, known[i]) == 0;
		if (!ok)
			return reply_field(req, "unknown_field", f->string ? f->string : "",
					   "unknown field (prompt, max_tokens, temperature, "
					   "metadata and model are accepted)");
	}
	return true;
}

/* The body's fields, checked; prompt and *model point into root. */
static bool consume_check(struct dp_req *q, const cJSON *root, const char **prompt,
			  const char **model)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");

	if (!consume_known_fields(q->req, root))
		return false;
	if (!p || cJSON_IsNull(p))
		return reply_field(q->req, "missing_field", "prompt", "required");
	if (!cJSON_IsString(p) || !p->valuestring)
		return reply_field(q->req, "invalid_type", "prompt", "must be a string");
	if (!p->valuestring[0])
		return reply_field(q->req, "invalid_value", "prompt", "must not be empty");
	if (!dp_check_max_tokens(q->req, root, "max_tokens"))
		return false;
	if (t && !cJSON_IsNull(t) && !cJSON_IsNumber(t))
		return reply_field(q->req, "invalid_type", "temperature", "must be a number");
	if (cJSON_IsNumber(t) && !(t->valuedouble >= 0 && t->valuedouble <= TEMPERATURE_MAX))
		return reply_field(q->req, "invalid_value", "temperature", "must be 0 to 2");
	if (md && !cJSON_IsNull(md) && !cJSON_IsObject(md))
		return reply_field(q->req, "invalid_type", "metadata", "must be an object");
	if (m && !cJSON_IsNull(m) && (!cJSON_IsString(m) || !m->valuestring))
		return reply_field(q->req, "invalid_type", "model", "must be a string");
	*prompt = p->valuestring;
	*model = cJSON_IsString(m) ? m->valuestring : q->dp->default_model;
	return true;
}

/* Completion tokens to reserve: max_tokens, else limits.completion_estimate_tokens. */
static uint64_t consume_completion_estimate(const struct dp_req *q, const cJSON *root)
{
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");

	if (cJSON_IsNumber(mt) && mt->valuedouble >= 0 && mt->valuedouble <= 9007199254740992.0)
		return (uint64_t)mt->valuedouble;
	return q->dp->d.budget ? budget_opts(q->dp->d.budget)->completion_estimate : 0;
}

/* The upstream chat request: one user message, max_tokens and temperature if given. */
static char *consume_upstream_body(const cJSON *root, const char *prompt, const char *model)
{
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "temperature");
	cJSON *o = cJSON_CreateObject(), *msgs, *msg;
	char *s = NULL;

	if (!o || !cJSON_AddStringToObject(o, "model", model) ||
	    !(msgs = cJSON_AddArrayToObject(o, "messages")) || !(msg = cJSON_CreateObject()) ||
	    !cJSON_AddItemToArray(msgs, msg) || !cJSON_AddStringToObject(msg, "role", "user") ||
	    !cJSON_AddStringToObject(msg, "content", prompt))
		goto out;
	if (cJSON_IsNumber(mt) && !cJSON_AddNumberToObject(o, "max_tokens", mt->valuedouble))
		goto out;
	if (cJSON_IsNumber(t) && !cJSON_AddNumberToObject(o, "temperature", t->valuedouble))
		goto out;
	s = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return s;
}

static cJSON *consume_usage_json(const struct dp_call *c)
{
	cJSON *u = cJSON_CreateObject();

	if (u && (!cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->prompt_tokens) ||
		  !cJSON_AddNumberToObject(u, "completion_tokens", (double)c->completion_tokens) ||
		  !cJSON_AddNumberToObject(u, "total_tokens",
					   (double)(c->prompt_tokens + c->completion_tokens)))) {
		cJSON_Delete(u);
		return NULL;
	}
	return u;
}

static cJSON *consume_cost_json(const struct dp_call *c)
{
	cJSON *o = cJSON_CreateObject(), *b;

	if (!o ||
	    !cJSON_AddNumberToObject(o, "amount", (double)c->cost.total_nano / NANO_PER_USD) ||
	    !cJSON_AddStringToObject(o, "currency", "USD") ||
	    !(b = cJSON_AddObjectToObject(o, "breakdown")) ||
	    !cJSON_AddNumberToObject(b, "prompt", (double)c->cost.prompt_nano / NANO_PER_USD) ||
	    !cJSON_AddNumberToObject(b, "completion",
				     (double)c->cost.completion_nano / NANO_PER_USD)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* The text of choices[0].message.content, or "". */
static const char *answer_text(const cJSON *root)
{
	const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(ch, "message"), "content");

	return cJSON_IsString(s) && s->valuestring ? s->valuestring : "";
}

/* The consume answer, once the call's record is committed. */
static void consume_render(struct dp_call *c)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(c->json, "model");
	int64_t ms = (tg_now_mono_ns() - c->start_ns) / 1000000;
	cJSON *o = cJSON_CreateObject(), *u = consume_usage_json(c), *cost = consume_cost_json(c);
	bool ok = o && u && cost;

	ok = ok && cJSON_AddStringToObject(o, "request_id", http_req_id(c->req)) &&
	     cJSON_AddStringToObject(o, "response", answer_text(c->json)) &&
	     cJSON_AddStringToObject(
		 o, "model", cJSON_IsString(m) && m->valuestring ? m->valuestring : c->model) &&
	     cJSON_AddItemToObject(o, "usage", u);
	if (ok)
		u = NULL;
	ok = ok && cJSON_AddItemToObject(o, "cost", cost);
	if (ok)
		cost = NULL;
	ok = ok && cJSON_AddNumberToObject(o, "latency_ms", (double)(ms > 0 ? ms : 0));
	cJSON_Delete(u);
	cJSON_Delete(cost);
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	dp_reply_obj(c->req, 200, o);
}

void dp_h_consume(struct dp_req *q)
{
	const char *prompt = NULL, *model = NULL;
	struct dp_plan pl = {0};
	struct dp_call *c;
	char *body = NULL;
	cJSON *root = dp_body_object(q->req);

	if (!root)
		return;
	if (!consume_check(q, root, &prompt, &model) || !dp_tenant(q, root))
		goto out;
	snprintf(pl.model, sizeof(pl.model), "%s", model);
	pl.completion_est = consume_completion_estimate(q, root);
	/* one user message of the prompt */
	pl.prompt_est = dp_prompt_estimate(root, "prompt") + 4;
	if (!(pl.p = dp_route_model(q, model, &pl.price)) || !dp_budget_reserve(q, &pl))
		goto out;
	body = consume_upstream_body(root, prompt, pl.model);
	if (!body) {
		dp_reply_500(q->req, "building the upstream request", -ENOMEM);
		goto out;
	}
	c = dp_call_new(q, DP_EP_CONSUME, pl.p, pl.price, pl.model);
	if (!c)
		goto out;
	c->render = consume_render;
	dp_call_submit(c, "/chat/completions", body, strlen(body));
out:
	if (q->dp->d.budget)
		budget_release(q->dp->d.budget, &q->bc); /* not taken by a call */
	cJSON_free(body);
	cJSON_Delete(root);
}

/* ---- quota and usage ---- */

/*
 * The key's token quota as the limits engine counts it (settled calls; what calls in flight
 * reserved is not "used"): *used, and the window's reset. Without the engine, the month's
 * committed usage from the roll-ups. 0 or -errno.
 */
static int quota_used(struct dp_req *q, uint64_t *used, int64_t *reset_at)
{
	struct limits l = q->auth.limits;
	struct budget_hit h[BUDGET_STATUS_MAX];
	int64_t now = q->time_ms / 1000;
	char subject[BUDGET_SUBJECT_MAX];
	struct usage_totals t;
	size_t n;
	int rc;

	if (q->dp->d.budget) {
		/* a quota of 0 still has a month's usage to show: asked for with any value */
		if (!l.v[LIMIT_TOKENS_MONTH])
			l.v[LIMIT_TOKENS_MONTH] = UINT64_MAX;
		snprintf(subject, sizeof(subject), "key:%s", q->auth.id);
		n = budget_status(q->dp->d.budget, subject, &l, now, h, BUDGET_STATUS_MAX);
		for (size_t i = 0; i < n; i++) {
			if (h[i].limit != LIMIT_TOKENS_MONTH)
				continue;
			*used = h[i].used;
			*reset_at = h[i].reset_at;
			return 0;
		}
	}
	rc = usage_totals_month(q->dp->d.usage, q->auth.id, now, &t);
	*used = t.prompt_tokens + t.completion_tokens;
	*reset_at = 0;
	return rc;
}

void dp_h_quota(struct dp_req *q)
{
	uint64_t total = q->auth.limits.v[LIMIT_TOKENS_MONTH], used = 0;
	int64_t now = q->time_ms / 1000, reset_at = 0;
	char reset[32];
	cJSON *o;
	int rc = quota_used(q, &used, &reset_at);

	if (rc) {
		dp_reply_500(q->req, "reading the month's usage", rc);
		return;
	}
	if (reset_at)
		tg_rfc3339_format(reset_at, reset);
	else
		dp_month_reset(now, reset);
	o = cJSON_CreateObject();
	/* a quota of 0 is no quota: total and remaining are null, it is never exceeded */
	if (o && (!cJSON_AddStringToObject(o, "service", q->auth.service) ||
		  !cJSON_AddStringToObject(o, "tier", q->auth.tier) ||
		  !cJSON_AddNumberToObject(o, "used", (double)used) ||
		  !(total ? cJSON_AddNumberToObject(o, "total", (double)total)
			  : cJSON_AddNullToObject(o, "total")) ||
		  !(total ? cJSON_AddNumberToObject(o, "remaining",
						    (double)(used < total ? total - used : 0))
			  : cJSON_AddNullToObject(o, "remaining")) ||
		  !cJSON_AddStringToObject(o, "reset_at", reset) ||
		  !cJSON_AddBoolToObject(o, "exceeded", total && used >= total))) {
		cJSON_Delete(o);
		o = NULL;
	}
	dp_reply_obj(q->req, 200, o);
}

/* ?days=N: only that parameter, N in 1..366. */
static int usage_query_cb(const char *k, const char *v, void *arg)
{
	int *days = arg;
	char *end;
	long n;

	if (strcmp(k, "days") != 0)
		return -ENOENT;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtol(v, &end, 10);
	if (*end || errno || n < 1 || n > USAGE_DAYS_MAX)
		return -EINVAL;
	*days = (int)n;
	return 0;
}

static cJSON *usage_json(const char *service, int days, const struct usage_totals *t)
{
	double n = (double)t->requests;
	cJSON *o = cJSON_CreateObject();

	if (o && (!cJSON_AddStringToObject(o, "service", service) ||
		  !cJSON_AddNumberToObject(o, "days", days) ||
		  !cJSON_AddNumberToObject(o, "requests", n) ||
		  !cJSON_AddNumberToObject(o, "prompt_tokens", (double)t->prompt_tokens) ||
		  !cJSON_AddNumberToObject(o, "completion_tokens", (double)t->completion_tokens) ||
		  !cJSON_AddNumberToObject(o, "total_tokens",
					   (double)(t->prompt_tokens + t->completion_tokens)) ||
		  !cJSON_AddNumberToObject(o, "cost", (double)t->cost_nano / NANO_PER_USD) ||
		  !cJSON_AddStringToObject(o, "currency", "USD") ||
		  !cJSON_AddNumberToObject(o, "average_latency_ms",
					   n ? (double)t->latency_us_sum / n / 1000.0 : 0) ||
		  !cJSON_AddNumberToObject(o, "error_rate", n ? (double)t->errors / n : 0))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void dp_h_usage(struct dp_req *q)
{
	struct usage_totals t;
	int days = USAGE_DAYS_DEFAULT, rc;

	rc = http_req_query_each(q->req, usage_query_cb, &days);
	if (rc == -ENOENT) {
		http_reply_error(q->req, 400, "invalid_request_error", "unknown_parameter", NULL,
				 "only the query parameter days is accepted");
		return;
	}
	if (rc) {
		http_reply_error(q->req, 400, "invalid_request_error", "invalid_value", "days",
				 "days: must be an integer from 1 to %d", USAGE_DAYS_MAX);
		return;
	}
	rc = usage_totals_days(q->dp->d.usage, q->auth.id, q->arg, days, q->time_ms / 1000, &t);
	if (rc) {
		dp_reply_500(q->req, "reading usage totals", rc);
		return;
	}
	dp_reply_obj(q->req, 200, usage_json(q->arg, days, &t));
}

/* ---- request-rate windows ---- */

/* One window's standing. */
static cJSON *window_json(const struct rl_verdict *v)
{
	cJSON *o = cJSON_CreateObject();

	if (o && (!cJSON_AddStringToObject(o, "window", rl_window_name(v->window)) ||
		  !cJSON_AddBoolToObject(o, "allowed", v->allowed) ||
		  !cJSON_AddNumberToObject(o, "limit", (double)v->limit) ||
		  !cJSON_AddNumberToObject(o, "rate", v->rate) ||
		  !cJSON_AddNumberToObject(o, "remaining", (double)v->remaining) ||
		  !cJSON_AddNumberToObject(o, "reset_seconds", (double)v->reset_ms / 1000.0) ||
		  !cJSON_AddNumberToObject(o, "retry_after_seconds",
					   (double)v->retry_after_ms / 1000.0))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void dp_h_rate_status(struct dp_req *q)
{
	struct rl_verdict v[RL__COUNT];
	const uint64_t *lim = q->auth.limits.v;
	bool defined[RL__COUNT] = {true, lim[LIMIT_RPM] > 0, lim[LIMIT_RPH] > 0};
	cJSON *o = cJSON_CreateObject(), *arr = NULL, *w;
	bool ok;

	ratelimit_status(q->slot, &q->auth.limits, (uint64_t)tg_now_mono_ns(), v);
	ok = o && cJSON_AddStringToObject(o, "key_id", q->auth.id) &&
	     cJSON_AddStringToObject(o, "tier", q->auth.tier) &&
	     (arr = cJSON_AddArrayToObject(o, "windows"));
	for (int i = 0; ok && i < RL__COUNT; i++) {
		if (!defined[i])
			continue;
		w = window_json(&v[i]);
		ok = w && cJSON_AddItemToArray(arr, w);
	}
	/* the limits engine's limits of the key and its owner, as /api/v1/quotas shows them */
	ok = ok && (arr = cJSON_AddArrayToObject(o, "limits")) && dp_limits_json(q, false, arr);
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	dp_reply_obj(q->req, 200, o);
}

void dp_h_rate_check(struct dp_req *q)
{
	size_t len = 0;
	cJSON *root = NULL, *o;

	/* no body, or an empty object: the question is always "one more request, now?" */
	http_req_body(q->req, &len);
	if (len) {
		root = dp_body_object(q->req);
		if (!root)
			return;
		if (root->child) {
			reply_field(q->req, "unknown_field", root->child->string,
				    "unknown field (the body is empty or {})");
			cJSON_Delete(root);
			return;
		}
		cJSON_Delete(root);
	}
	/* the router did the dry run (and set the headers from it) */
	o = window_json(&q->verdict);
	dp_reply_obj(q->req, 200, o);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The OpenAI-compatible endpoints (docs/data-plane.md): the checks before forwarding, the
 * forwarded body (the client's bytes as they came, except that a stream is made to ask for
 * its usage chunk), the upstream callbacks that stream events through or collect a plain
 * answer, and the settling and release of a finished call (see dp_finish).
 *
 * Streams: each complete event is forwarded as it arrives, except the usage-only chunk
 * when the client did not ask for it, and "data: [DONE]", which is held back until the
 * call's usage record is committed and then sent before the end of the body, so a client
 * that saw [DONE] saw a metered answer. A stream that ends without usage is metered from
 * an estimate and recorded under the endpoint name with the suffix "+est".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dataplane_internal.h"
#include "jscan.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define DONE_EVENT "data: [DONE]\n\n"

/* Upstream paths, under the provider's base_url. */
static const char *const ep_paths[] = {
    [DP_EP_CHAT] = "/chat/completions",
    [DP_EP_COMPLETIONS] = "/completions",
    [DP_EP_EMBEDDINGS] = "/embeddings",
    [DP_EP_CONSUME] = "/chat/completions",
};

/* ---- checks ---- */

static bool reply_field(struct http_req *req, const char *code, const char *param, const char *what)
{
	http_reply_error(req, 400, "invalid_request_error", code, param, "%s: %s", param, what);
	return false;
}

/* True for absent or JSON null: optional fields may be either. */
static bool absent(const cJSON *v)
{
	return !v || cJSON_IsNull(v);
}

bool dp_check_max_tokens(struct http_req *req, const cJSON *root, const char *field)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
	double d;

	if (absent(v))
		return true;
	if (!cJSON_IsNumber(v))
		return reply_field(req, "invalid_type", field, "must be a non-negative integer");
	d = v->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || (double)(uint64_t)d != d)
		return reply_field(req, "invalid_value", field, "must be a non-negative integer");
	return true;
}

const struct provider *dp_route_model(struct dp_req *q, const char *model,
				      const struct model_price **price)
{
	const struct provider *p;

	if (q->dp->d.prov->n == 0) {
		http_reply_error(q->req, 503, "upstream_error", "no_provider", NULL,
				 "no upstream provider is configured");
		return NULL;
	}
	p = providers_route(q->dp->d.prov, model, price);
	if (!p)
		http_reply_error(q->req, 400, "invalid_request_error", "model_not_found", "model",
				 "model: '%.64s' is not served here (see GET /v1/models)", model);
	return p;
}

/* The model string; NULL after answering 400. */
static const char *check_model(struct http_req *req, const cJSON *root)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");

	if (absent(m)) {
		reply_field(req, "missing_field", "model", "required");
		return NULL;
	}
	if (!cJSON_IsString(m) || !m->valuestring) {
		reply_field(req, "invalid_type", "model", "must be a string");
		return NULL;
	}
	return m->valuestring;
}

/* The endpoint's own required field. */
static bool check_input(struct http_req *req, const cJSON *root, enum dp_endpoint ep)
{
	static const char *const field[] = {
	    [DP_EP_CHAT] = "messages",
	    [DP_EP_COMPLETIONS] = "prompt",
	    [DP_EP_EMBEDDINGS] = "input",
	};
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field[ep]);

	if (absent(v))
		return reply_field(req, "missing_field", field[ep], "required");
	if (ep != DP_EP_CHAT)
		return true;
	if (!cJSON_IsArray(v))
		return reply_field(req, "invalid_type", "messages", "must be an array of messages");
	if (!v->child)
		return reply_field(req, "invalid_value", "messages", "must not be empty");
	return true;
}

/* stream and stream_options; *stream true for a stream request of a streaming endpoint. */
static bool check_stream(struct http_req *req, const cJSON *root, enum dp_endpoint ep, bool *stream)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stream");
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "stream_options");

	if (!absent(s) && !cJSON_IsBool(s))
		return reply_field(req, "invalid_type", "stream", "must be true or false");
	if (!absent(o) && !cJSON_IsObject(o))
		return reply_field(req, "invalid_type", "stream_options", "must be an object");
	*stream = cJSON_IsTrue(s) && ep != DP_EP_EMBEDDINGS;
	return true;
}

/*
 * Makes a stream request ask for its usage chunk. *out is NULL when the client's body can
 * go as it is (it asked itself: *client_usage), else a new serialisation (cJSON_free).
 */
static int stream_body(cJSON *root, char **out, bool *client_usage)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "stream_options"), *t;

	*out = NULL;
	*client_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "include_usage"));
	if (*client_usage)
		return 0;
	if (!cJSON_IsObject(o)) {
		cJSON_DeleteItemFromObjectCaseSensitive(root, "stream_options");
		o = cJSON_AddObjectToObject(root, "stream_options");
		if (!o)
			return -ENOMEM;
	}
	t = cJSON_CreateTrue();
	if (!t)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(o, "include_usage"))
		cJSON_ReplaceItemInObjectCaseSensitive(o, "include_usage", t);
	else
		cJSON_AddItemToObject(o, "include_usage", t);
	*out = cJSON_PrintUnformatted(root);
	return *out ? 0 : -ENOMEM;
}

/* ---- handlers ---- */

/* Completion tokens to reserve: max_completion_tokens, else max_tokens, else the default. */
static uint64_t completion_estimate(const struct dp_req *q, const cJSON *root, enum dp_endpoint ep)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");

	if (ep == DP_EP_EMBEDDINGS)
		return 0;
	if (!cJSON_IsNumber(m) || m->valuedouble < 0)
		m = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
	if (cJSON_IsNumber(m) && m->valuedouble >= 0 && m->valuedouble <= 9007199254740992.0)
		return (uint64_t)m->valuedouble;
	return q->dp->d.budget ? budget_opts(q->dp->d.budget)->completion_estimate : 0;
}

/* Routes, checks the tenant and reserves the call (pl); false once answered. */
static bool plan_call(struct dp_req *q, cJSON *root, enum dp_endpoint ep, const char *model,
		      struct dp_plan *pl)
{
	memset(pl, 0, sizeof(*pl));
	snprintf(pl->model, sizeof(pl->model), "%s", model);
	if (!(pl->p = dp_route_model(q, model, &pl->price)) || !dp_tenant(q, root))
		return false;
	pl->completion_est = completion_estimate(q, root, ep);
	pl->prompt_est = dp_prompt_estimate(root, ep == DP_EP_CHAT	    ? NULL
						  : ep == DP_EP_COMPLETIONS ? "prompt"
									    : "input");
	if (!dp_budget_reserve(q, pl))
		return false;
	/* downgraded: the upstream is asked for the cheaper model */
	if (pl->downgraded &&
	    !cJSON_ReplaceItemInObjectCaseSensitive(root, "model", cJSON_CreateString(pl->model))) {
		dp_reply_500(q->req, "rewriting the model of a downgraded call", -ENOMEM);
		return false;
	}
	return true;
}

/* Checks, routes and forwards one OpenAI call of endpoint ep. */
static void forward(struct dp_req *q, enum dp_endpoint ep)
{
	const char *model, *body;
	char *rewritten = NULL;
	bool stream = false, client_usage = false;
	struct dp_plan pl;
	struct dp_call *c;
	size_t len = 0;
	cJSON *root = dp_body_object(q->req);

	if (!root)
		return;
	if (!(model = check_model(q->req, root)) || !check_input(q->req, root, ep) ||
	    !check_stream(q->req, root, ep, &stream) ||
	    !dp_check_max_tokens(q->req, root, "max_tokens") || !plan_call(q, root, ep, model, &pl))
		goto out;
	if (stream && stream_body(root, &rewritten, &client_usage)) {
		dp_reply_500(q->req, "rewriting a stream request", -ENOMEM);
		goto out;
	}
	if (!rewritten && pl.downgraded && !(rewritten = cJSON_PrintUnformatted(root))) {
		dp_reply_500(q->req, "rewriting a downgraded request", -ENOMEM);
		goto out;
	}
	c = dp_call_new(q, ep, pl.p, pl.price, pl.model);
	if (!c)
		goto out;
	c->stream = stream;
	c->client_usage = client_usage;
	body = rewritten ? rewritten : http_req_body(q->req, &len);
	if (rewritten) {
		len = strlen(rewritten);
		/* the call has its size (bytes_in); the client's copy would only wait, the
		 * stream's whole life, beside the one the upstream keeps */
		http_req_body_drop(q->req);
	}
	dp_call_submit(c, ep_paths[ep], body, len);
out:
	/* a reservation no call took (refused or failed after it) is given back */
	if (q->dp->d.budget)
		budget_release(q->dp->d.budget, &q->bc);
	cJSON_free(rewritten);
	cJSON_Delete(root);
}

void dp_h_chat(struct dp_req *q)
{
	forward(q, DP_EP_CHAT);
}

void dp_h_completions(struct dp_req *q)
{
	forward(q, DP_EP_COMPLETIONS);
}

void dp_h_embeddings(struct dp_req *q)
{
	forward(q, DP_EP_EMBEDDINGS);
}

/* True if an earlier provider (or an earlier model of p) already listed name. */
static bool model_seen(const struct providers *ps, size_t pi, size_t mi)
{
	const char *name = ps->v[pi].models[mi].name;

	for (size_t i = 0; i <= pi; i++)
		for (size_t j = 0; j < (i == pi ? mi : ps->v[i].nmodels); j++)
			if (strcmp(ps->v[i].models[j].name, name) == 0)
				return true;
	return false;
}

static cJSON *model_json(const char *name, const char *owner)
{
	cJSON *m = cJSON_CreateObject();

	if (m && (!cJSON_AddStringToObject(m, "id", name) ||
		  !cJSON_AddStringToObject(m, "object", "model") ||
		  !cJSON_AddNumberToObject(m, "created", 0) ||
		  !cJSON_AddStringToObject(m, "owned_by", owner))) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

void dp_h_models(struct dp_req *q)
{
	const struct providers *ps = q->dp->d.prov;
	cJSON *o = cJSON_CreateObject(), *data = NULL, *m;
	bool ok = o && cJSON_AddStringToObject(o, "object", "list") &&
		  (data = cJSON_AddArrayToObject(o, "data"));

	for (size_t i = 0; ok && i < ps->n; i++) {
		for (size_t j = 0; ok && j < ps->v[i].nmodels; j++) {
			if (model_seen(ps, i, j))
				continue;
			m = model_json(ps->v[i].models[j].name, ps->v[i].name);
			ok = m && cJSON_AddItemToArray(data, m);
		}
	}
	if (!ok) {
		cJSON_Delete(o);
		o = NULL;
	}
	dp_reply_obj(q->req, 200, o);
}

/* ---- upstream callbacks (upstream thread) ---- */

static bool is_event_stream(const char *ctype)
{
	static const char want[] = "text/event-stream";

	return ctype && strncasecmp(ctype + strspn(ctype, " \t"), want, sizeof(want) - 1) == 0;
}

void dp_up_on_status(void *ctx, unsigned status, const char *ctype, const char *retry_after)
{
	struct dp_call *c = ctx;

	c->up_status = status;
	c->status_seen = true;
	c->headers_ns = tg_now_mono_ns();
	snprintf(c->ctype, sizeof(c->ctype), "%s", ctype ? ctype : "");
	snprintf(c->retry_after, sizeof(c->retry_after), "%s", retry_after ? retry_after : "");
	if (atomic_load(&c->client_gone)) {
		c->write_failed = true; /* nobody to answer: take nothing more */
		dp_call_cancel(c);
		return;
	}
	/* an error answer to a stream request is collected and passed through like any other */
	if (!c->stream || status < 200 || status > 299 || !is_event_stream(ctype))
		return;
	http_add_header(c->req, "Cache-Control", "no-cache");
	dp_route_headers(c);
	c->hs = http_stream_start(c->req, status, ctype);
	if (!c->hs && errno == ECONNRESET) {
		c->write_failed = true;
		dp_call_cancel(c);
	}
	/* any other failure (no memory): the answer is collected and sent whole instead */
}

/* One complete upstream event: inspected, then forwarded, held back or dropped. */
static int sse_event(void *ctx, const char *raw, size_t raw_len, const char *data, size_t dlen)
{
	struct dp_call *c = ctx;
	struct sse_usage one = c->su;
	int rc;

	if (dlen == 6 && memcmp(data, "[DONE]", 6) == 0) {
		c->saw_done = true;
		return 0;
	}
	one.usage_only = false;
	/* a chunk that is not JSON is forwarded all the same; it just counts nothing */
	if (dlen && sse_chunk_inspect(data, dlen, &one) == 0)
		c->su = one;
	/* after the client left, events are still counted (what was used), not sent */
	if ((one.usage_only && !c->client_usage) || c->write_failed)
		return 0;
	rc = http_stream_write(c->hs, raw, raw_len);
	if (rc) {
		c->write_failed = true;
		dp_call_cancel(c);
		return 0;
	}
	c->bytes_out += raw_len;
	return 0;
}

/* A plain answer's bytes, up to DP_BODY_MAX (kept NUL-terminated). */
static void body_append(struct dp_call *c, const char *buf, size_t len)
{
	size_t cap;
	char *p;

	if (c->too_large)
		return;
	if (len > DP_BODY_MAX - c->len) {
		c->too_large = true;
		dp_call_cancel(c);
		return;
	}
	if (c->len + len + 1 > c->cap) {
		cap = c->cap ? c->cap : 4096;
		while (cap < c->len + len + 1)
			cap *= 2;
		p = realloc(c->body, cap);
		if (!p) {
			c->too_large = true;
			dp_call_cancel(c);
			return;
		}
		c->body = p;
		c->cap = cap;
	}
	memcpy(c->body + c->len, buf, len);
	c->len += len;
	c->body[c->len] = '\0';
}

void dp_up_on_data(void *ctx, const char *buf, size_t len)
{
	struct dp_call *c = ctx;
	int rc;

	if (c->sse_broken || (c->write_failed && !c->hs))
		return;
	if (!c->hs) {
		body_append(c, buf, len);
		return;
	}
	rc = sse_feed(&c->sse, buf, len, sse_event, c);
	if (rc) {
		c->sse_broken = true; /* out of step with the upstream: give up on it */
		dp_call_cancel(c);
	}
}

void dp_up_on_done(void *ctx, enum upstream_err err, const char *detail)
{
	struct dp_call *c = ctx;

	c->err = err;
	snprintf(c->detail, sizeof(c->detail), "%s", detail ? detail : "");
	if (dp_attempt_done(c))
		return; /* failed over: the next attempt is under way */
	atomic_store(&c->up_done, true);
	dp_finish(c->dp, c);
}

/* ---- settling (dp_finish) ---- */

/* Sum of the string lengths at choices[].message.content and choices[].text. */
static uint64_t content_bytes(const cJSON *root)
{
	const cJSON *ch, *s;
	uint64_t n = 0;

	cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(root, "choices"))
	{
		s = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(ch, "message"), "content");
		if (cJSON_IsString(s) && s->valuestring)
			n += strlen(s->valuestring);
		s = cJSON_GetObjectItemCaseSensitive(ch, "text");
		if (cJSON_IsString(s) && s->valuestring)
			n += strlen(s->valuestring);
	}
	return n;
}

static bool token_count(const cJSON *v, uint64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0))
		return false;
	*out = (uint64_t)v->valuedouble;
	return true;
}

/* Tokens of a 2xx plain answer: its usage, else an estimate (request and content / 4). */
static void plain_tokens(struct dp_call *c)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(c->json, "usage");
	bool p =
	    token_count(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens"), &c->prompt_tokens);
	bool ct = token_count(cJSON_GetObjectItemCaseSensitive(u, "completion_tokens"),
			      &c->completion_tokens);

	if (p || ct)
		return;
	c->estimated = true;
	c->prompt_tokens = c->bytes_in / 4;
	c->completion_tokens = c->json ? (content_bytes(c->json) + 3) / 4 : 0;
}

static const unsigned outcome_status[] = {
    [DP_OUT_UPSTREAM] = 0,     [DP_OUT_UNREACHABLE] = 502, [DP_OUT_TIMEOUT] = 504,
    [DP_OUT_BAD_ANSWER] = 502, [DP_OUT_STOPPING] = 503,	   [DP_OUT_GONE] = 499,
    [DP_OUT_ALL_FAILED] = 503,
};

/* The outcome of a failed call, or DP_OUT_UPSTREAM if the provider's answer is whole. */
static enum dp_outcome failure_outcome(const struct dp_call *c, bool gone)
{
	if (gone)
		return DP_OUT_GONE;
	if (c->all_failed)
		return DP_OUT_ALL_FAILED;
	if (c->too_large)
		return DP_OUT_UNREACHABLE;
	switch (c->err) {
	case UPSTREAM_OK:
		return DP_OUT_UPSTREAM;
	case UPSTREAM_TIMEOUT:
		return DP_OUT_TIMEOUT;
	case UPSTREAM_CANCELLED:
		return c->sse_broken ? DP_OUT_UNREACHABLE : DP_OUT_STOPPING;
	default:
		return DP_OUT_UNREACHABLE;
	}
}

/*
 * The usage counts of an answer passed through as it is, read in place: its tree is not
 * needed, and parsing it took ~40 allocations per call. True only if a count was found;
 * for anything else (usage missing, not strictly valid JSON...) the caller parses the
 * answer, so the outcome is always what plain_tokens gives (see jscan.h).
 */
static bool plain_tokens_scan(struct dp_call *c)
{
	const char *u, *v;
	size_t ulen, vlen;
	uint64_t pt = 0, ct = 0;
	bool p, cp;

	if (c->render || jscan_member(c->body, c->len, "usage", &u, &ulen))
		return false;
	p = !jscan_member(u, ulen, "prompt_tokens", &v, &vlen) && jscan_count(v, vlen, &pt);
	cp = !jscan_member(u, ulen, "completion_tokens", &v, &vlen) && jscan_count(v, vlen, &ct);
	if (p)
		c->prompt_tokens = pt;
	if (cp)
		c->completion_tokens = ct;
	return p || cp;
}

static void settle_plain(struct dp_call *c, bool gone)
{
	bool whole = c->err == UPSTREAM_OK && !c->too_large;

	c->outcome = failure_outcome(c, gone);
	/* a whole answer is metered even if its client left: the provider did the work */
	if (whole && c->up_status >= 200 && c->up_status < 300 && !plain_tokens_scan(c)) {
		c->json = c->len ? cJSON_ParseWithLength(c->body, c->len) : NULL;
		plain_tokens(c);
		if (c->render && !cJSON_IsObject(c->json) && c->outcome == DP_OUT_UPSTREAM)
			c->outcome = DP_OUT_BAD_ANSWER;
	}
	c->status = c->outcome == DP_OUT_UPSTREAM ? c->up_status : outcome_status[c->outcome];
	c->bytes_out = c->outcome == DP_OUT_UPSTREAM ? c->len : 0;
}

/* The SSE error event that ends a stream whose upstream failed after it started. */
static void stream_error_event(struct dp_call *c)
{
	char ev[320];
	bool timeout = c->outcome == DP_OUT_TIMEOUT;
	int n;

	n = snprintf(ev, sizeof(ev),
		     "data: {\"error\":{\"message\":\"%s (request id %s)\",\"type\":"
		     "\"upstream_error\",\"param\":null,\"code\":\"%s\"}}\n\n",
		     timeout	     ? "the provider did not finish the stream in time"
		     : c->sse_broken ? "the provider sent an event stream that could not be read"
				     : "the provider's stream broke off",
		     http_req_id(c->req), timeout ? "upstream_timeout" : "upstream_error");
	if (n > 0 && (size_t)n < sizeof(ev) && http_stream_write(c->hs, ev, (size_t)n) == 0)
		c->bytes_out += (size_t)n;
}

static void settle_stream(struct dp_call *c, bool gone)
{
	c->outcome = failure_outcome(c, gone);
	/* the headers said 200; a stream cut short is recorded as the error it ended with */
	c->status = c->outcome == DP_OUT_UPSTREAM ? c->up_status : outcome_status[c->outcome];
	if (c->su.found) {
		c->prompt_tokens = c->su.prompt_tokens;
		c->completion_tokens = c->su.completion_tokens;
	} else {
		/* never metered as zero: prompt from the request's size, completion by pieces */
		c->estimated = true;
		c->prompt_tokens = c->bytes_in / 4;
		c->completion_tokens = c->su.content_pieces;
	}
	if (c->outcome == DP_OUT_UNREACHABLE || c->outcome == DP_OUT_TIMEOUT)
		stream_error_event(c);
	else if (c->saw_done && c->outcome == DP_OUT_UPSTREAM)
		c->bytes_out += sizeof(DONE_EVENT) - 1; /* sent once the record is committed */
}

/* upstream_errors_total and a log line for a call that did not go well upstream. */
static void count_upstream_error(const struct dp_call *c)
{
	const char *cls = NULL;

	if (c->all_failed) {
		metrics_upstream_error("all_providers_failed");
		log_warnx("data: model %s: no provider could serve the call: %s, id=%s", c->model,
			  c->attempts_log ? c->attempts_log : "", http_req_id(c->req));
		return;
	}
	if (c->too_large)
		cls = "too_large";
	else if (c->sse_broken)
		cls = "bad_stream";
	else if (c->err != UPSTREAM_OK && c->err != UPSTREAM_CANCELLED)
		cls = upstream_err_name(c->err);
	else if (c->err == UPSTREAM_OK && (c->up_status == 429 || c->up_status >= 500))
		cls = "status";
	if (!cls)
		return;
	metrics_upstream_error(cls);
	log_warnx("data: provider %s, model %s: %s%s%s (status %u), id=%s", c->prov->name, c->model,
		  cls, c->detail[0] ? ": " : "", c->detail, c->up_status, http_req_id(c->req));
}

void dp_settle(struct dp_call *c)
{
	bool gone = atomic_load(&c->client_gone) || c->write_failed;

	if (c->hs)
		settle_stream(c, gone);
	else
		settle_plain(c, gone);
	pricing_cost(c->price, c->prompt_tokens, c->completion_tokens, &c->cost);
	count_upstream_error(c);
}

/* ---- release (from the commit hook, after the commit) ---- */

static void release_stream(struct dp_call *c, int commit_rc)
{
	if (commit_rc) {
		/* unmetered: the client must not receive a complete answer */
		http_stream_abort(c->hs);
		return;
	}
	if (c->saw_done && c->outcome == DP_OUT_UPSTREAM)
		http_stream_write(c->hs, DONE_EVENT, sizeof(DONE_EVENT) - 1);
	http_stream_end(c->hs);
}

/*
 * A 503 because no provider could take the call now (cooling down, circuit open) says when
 * the first of them can again; none when that is not known or is now (the attempts failed).
 */
static void all_failed_retry_after(struct dp_call *c)
{
	int64_t wait = router_wait_ns(c->dp->d.router, c->model, tg_now_mono_ns());
	char v[24];

	if (wait <= 0)
		return;
	snprintf(v, sizeof(v), "%lld", (long long)((wait + 999999999) / 1000000000)); /* s, up */
	http_add_header(c->req, "Retry-After", v);
}

/* The provider's answer as it came: status, content type, Retry-After, body. */
static void pass_through(struct dp_call *c)
{
	char *body = c->body;

	if (c->retry_after[0])
		http_add_header(c->req, "Retry-After", c->retry_after);
	c->body = NULL; /* the answer takes it: the bytes are not copied again */
	c->cap = 0;
	http_reply_take(c->req, c->up_status, c->ctype[0] ? c->ctype : "application/json", body,
			c->len);
}

static void release_plain(struct dp_call *c, int commit_rc)
{
	struct http_req *req = c->req;
	const char *id = http_req_id(req);

	if (c->outcome == DP_OUT_GONE || atomic_load(&c->client_gone))
		return;
	if (commit_rc) {
		http_reply_error(
		    req, 500, "server_error", "usage_not_recorded", NULL,
		    "the call's usage could not be recorded, so its answer is withheld "
		    "(request id %s)",
		    id);
		return;
	}
	dp_route_headers(c);
	switch (c->outcome) {
	case DP_OUT_ALL_FAILED:
		all_failed_retry_after(c);
		http_reply_error(req, 503, "upstream_error", "all_providers_failed", NULL,
				 "no provider could serve model %s: %s (request id %s)", c->model,
				 c->attempts_log ? c->attempts_log : "", id);
		return;
	case DP_OUT_UNREACHABLE:
	case DP_OUT_BAD_ANSWER:
		http_reply_error(req, 502, "upstream_error", "upstream_error", NULL,
				 "the provider %s %s (request id %s)", c->prov->name,
				 c->outcome == DP_OUT_BAD_ANSWER
				     ? "sent an answer that could not be read"
				 : c->too_large ? "sent an answer too large to take"
						: "could not be reached or broke off",
				 id);
		return;
	case DP_OUT_TIMEOUT:
		http_reply_error(req, 504, "upstream_error", "upstream_timeout", NULL,
				 "the provider %s did not answer within %u s (request id %s)",
				 c->prov->name, c->prov->timeout_sec, id);
		return;
	case DP_OUT_STOPPING:
		http_reply_error(req, 503, "server_error", "shutting_down", NULL,
				 "the gateway is shutting down; retry (request id %s)", id);
		return;
	default:
		break;
	}
	if (c->render && c->up_status >= 200 && c->up_status < 300)
		c->render(c);
	else
		pass_through(c);
}

void dp_release(struct dp_call *c, int commit_rc)
{
	if (c->hs)
		release_stream(c, commit_rc);
	else
		release_plain(c, commit_rc);
}

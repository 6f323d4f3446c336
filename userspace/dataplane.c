/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's frame (see dataplane_internal.h for the split and the threads): the
 * listener and its route table, API-key authentication, the request-rate charge and its
 * headers, the life of a forwarded call (defer, close callback, submit, references), its
 * metering, and the release of its answer from the usage writer's commit hook once its
 * usage record is committed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dataplane_internal.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "tollgate/gcra.h"
#include "util.h"

#define MSG_NO_KEY  "no API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
#define MSG_BAD_KEY "the API key is not valid"

/* ---- routes ---- */

static const struct dp_route dp_routes[] = {
    {"POST", "/v1/chat/completions", "/v1/chat/completions", DP_CHARGE | DP_FORWARD, dp_h_chat},
    {"POST", "/v1/completions", "/v1/completions", DP_CHARGE | DP_FORWARD, dp_h_completions},
    {"POST", "/v1/embeddings", "/v1/embeddings", DP_CHARGE | DP_FORWARD, dp_h_embeddings},
    {"GET", "/v1/models", "/v1/models", DP_CHARGE, dp_h_models},
    {"POST", "/api/v1/consume/:", "/api/v1/consume/:serviceId",
     DP_CHARGE | DP_SERVICE | DP_FORWARD, dp_h_consume},
    {"GET", "/api/v1/quota/:", "/api/v1/quota/:serviceId", DP_CHARGE | DP_SERVICE, dp_h_quota},
    {"GET", "/api/v1/usage/:", "/api/v1/usage/:serviceId", DP_CHARGE | DP_SERVICE, dp_h_usage},
    {"GET", "/api/v1/rate-limits", "/api/v1/rate-limits", 0, dp_h_rate_status},
    {"POST", "/api/v1/rate-limits/check", "/api/v1/rate-limits/check", 0, dp_h_rate_check},
    {"GET", "/api/v1/rate-limits/:", "/api/v1/rate-limits/:serviceId", DP_SERVICE,
     dp_h_rate_status},
    {"GET", "/api/v1/quotas", "/api/v1/quotas", 0, dp_h_quotas},
};


/* The route for method and path, or NULL; then allow lists the methods the path takes. */
static const struct dp_route *route_find(const char *method, const char *path,
					 char arg[DP_ARG_MAX + 1], char *allow, size_t size)
{
	size_t used = 0;

	allow[0] = '\0';
	for (size_t i = 0; i < TG_ARRAY_SIZE(dp_routes); i++) {
		const struct dp_route *r = &dp_routes[i];

		if (!http_path_match(r->pattern, path, arg, DP_ARG_MAX + 1))
			continue;
		/* a literal path listed earlier wins over a captured segment: GET .../check is a
		 * 405 (POST only), not /api/v1/rate-limits/:serviceId with serviceId "check" */
		if (used && strchr(r->pattern, ':'))
			continue;
		if (strcmp(r->method, method) == 0)
			return r;
		if (used < size)
			used += (size_t)snprintf(allow + used, size - used, "%s%s",
						 used ? ", " : "", r->method);
	}
	return NULL;
}

/* Metrics label of a request: its route's template, whatever the method. */
static const char *dp_route_label(const char *method, const char *path)
{
	char arg[DP_ARG_MAX + 1];

	(void)method;
	for (size_t i = 0; i < TG_ARRAY_SIZE(dp_routes); i++)
		if (http_path_match(dp_routes[i].pattern, path, arg, DP_ARG_MAX + 1))
			return dp_routes[i].label;
	return "unmatched";
}

/* ---- small helpers ---- */

int64_t dp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *dp_endpoint_name(enum dp_endpoint ep)
{
	static const char *const names[] = {
	    [DP_EP_CHAT] = "chat",
	    [DP_EP_COMPLETIONS] = "completions",
	    [DP_EP_EMBEDDINGS] = "embeddings",
	    [DP_EP_CONSUME] = "consume",
	};

	return (unsigned)ep < TG_ARRAY_SIZE(names) ? names[ep] : "unknown";
}

void dp_reply_500(struct http_req *req, const char *what, int rc)
{
	log_warnx("data: %s failed: %s, id=%s", what, strerror(rc < 0 ? -rc : rc),
		  http_req_id(req));
	http_reply_error(req, 500, "server_error", "internal_error", NULL,
			 "internal error (request id %s)", http_req_id(req));
}

void dp_reply_obj(struct http_req *req, unsigned status, cJSON *json)
{
	int rc;

	if (!json) {
		dp_reply_500(req, "rendering", -ENOMEM);
		return;
	}
	rc = http_reply_json(req, status, json);
	cJSON_Delete(json);
	if (rc && rc != -ECONNRESET)
		dp_reply_500(req, "sending", rc);
}

cJSON *dp_body_object(struct http_req *req)
{
	size_t len;
	const char *body = http_req_body(req, &len), *end = NULL;
	cJSON *root = cJSON_ParseWithOpts(body, &end, 0);

	/* the body is NUL-terminated; a NUL inside it stops the parser short of len */
	if (root && end)
		end += strspn(end, " \t\r\n");
	if (!root || end != body + len || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		http_reply_error(req, 400, "invalid_request_error", "invalid_json", NULL,
				 "the request body must be one JSON object");
		return NULL;
	}
	return root;
}

/* ---- authentication ---- */


/* X-API-Key's value without surrounding blanks; false if absent or empty. */
static bool header_key(const char *h, const char **tok, size_t *len)
{
	size_t n;

	if (!h)
		return false;
	h += strspn(h, " \t");
	n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	*tok = h;
	*len = n;
	return n > 0;
}

/*
 * The presented key: 0, -ENOENT (none), -EBADMSG (an Authorization header that is not a
 * bearer token, and no X-API-Key), -EINVAL (the two headers carry different keys).
 */
static int presented_key(struct http_req *req, const char **key, size_t *len)
{
	const char *auth = http_req_header(req, "Authorization"), *b = NULL, *x = NULL;
	size_t blen = 0, xlen = 0;
	bool has_b = http_bearer_token(auth, &b, &blen);
	bool has_x = header_key(http_req_header(req, "X-API-Key"), &x, &xlen);

	if (has_b && has_x && (blen != xlen || !tg_ct_equal(b, x, blen)))
		return -EINVAL;
	if (!has_b && !has_x)
		return auth && auth[strspn(auth, " \t")] ? -EBADMSG : -ENOENT;
	*key = has_b ? b : x;
	*len = has_b ? blen : xlen;
	return 0;
}

static void reply_unauthorized(struct http_req *req, const char *code, const char *msg)
{
	http_add_header(req, "WWW-Authenticate", "Bearer realm=\"tollgate\"");
	http_reply_error(req, 401, "invalid_request_error", code, NULL, "%s", msg);
}

void dp_reply_auth_error(struct dp_req *q, int rc)
{
	char retry[16];

	switch (rc) {
	case -EAGAIN:
		snprintf(retry, sizeof(retry), "%u",
			 q->auth.retry_after_sec ? q->auth.retry_after_sec : 1);
		http_add_header(q->req, "Retry-After", retry);
		http_reply_error(q->req, 429, "rate_limit_error", "auth_throttled", NULL,
				 "too many failed key verifications; retry in %s seconds", retry);
		return;
	case -EINVAL:
	case -ENOENT:
	case -EACCES:
		/* one answer for all three: the client must not learn which it was */
		reply_unauthorized(q->req, "invalid_api_key", MSG_BAD_KEY);
		return;
	case -EKEYREVOKED:
		http_reply_error(q->req, 403, "permission_error", "key_revoked", NULL,
				 "this API key has been revoked");
		return;
	case -EKEYEXPIRED:
		http_reply_error(q->req, 403, "permission_error", "key_expired", NULL,
				 "this API key has expired");
		return;
	default:
		dp_reply_500(q->req, "key verification", rc);
	}
}

/* The outcome of dp_authenticate. */
enum dp_auth {
	DP_AUTH_OK = 0, /* q->auth is filled */
	DP_AUTH_DONE,	/* answered (a refusal), or handed to the verification pool */
};

/*
 * Verifies the request's key into q->auth from the verification cache. A miss costs
 * keys_verify an argon2id hash (20-50 ms), which must not run on this listener thread: the
 * request goes to the verification pool (dp_verify_later), which carries on from there.
 */
static enum dp_auth dp_authenticate(struct dp_req *q)
{
	const char *key = NULL;
	size_t len = 0;
	int rc = presented_key(q->req, &key, &len);

	if (rc == -EINVAL) {
		http_reply_error(q->req, 400, "invalid_request_error", "conflicting_api_keys", NULL,
				 "the Authorization and X-API-Key headers carry different keys");
		return DP_AUTH_DONE;
	}
	if (rc == -ENOENT) {
		reply_unauthorized(q->req, "missing_api_key", MSG_NO_KEY);
		return DP_AUTH_DONE;
	}
	if (rc == -EBADMSG) {
		reply_unauthorized(q->req, "invalid_api_key", MSG_BAD_KEY);
		return DP_AUTH_DONE;
	}
	rc = keys_verify_cached(q->dp->d.k, key, len, KEYS_API, &q->auth);
	if (rc == -EWOULDBLOCK) {
		dp_verify_later(q, key, len);
		return DP_AUTH_DONE;
	}
	if (rc) {
		dp_reply_auth_error(q, rc);
		return DP_AUTH_DONE;
	}
	return DP_AUTH_OK;
}

/* ---- request rates ---- */

static void add_header_cb(void *ctx, const char *name, const char *value)
{
	http_add_header(ctx, name, value);
}

void dp_rate_headers(struct http_req *req, const struct rl_verdict *v)
{
	ratelimit_headers(v, add_header_cb, req);
}

/*
 * The key's slot: persisted with the key and made ready by the key sync (sync.c) right
 * after the key's commit, so this is a lookup. NULL when the slot is not usable (no slot
 * in the store, beyond data.rate_slots, or not ACTIVE): such a request is refused with 503
 * rather than charged to a bucket that may be another key's.
 */
static struct tg_slot *dp_slot(struct dataplane *dp, const struct keys_auth *a)
{
	struct tg_slot *s = slots_at(dp->d.slots, a->slot);

	return s && (slots_flags(s) & TG_SLOT_ACTIVE) ? s : NULL;
}

/*
 * Rung 1 of the escalation ladder: a keep-alive connection whose requests keep being
 * refused, its client ignoring Retry-After, is closed after close_after refusals in a row
 * (the refusal that reaches the count carries Connection: close). An allowed request
 * resets the count. A client that reconnects meets the kernel's 429s (rung 2).
 */
static void dp_refusal_streak(struct dp_req *q, bool refused)
{
	unsigned n = http_conn_note_refusal(q->req, refused);

	if (refused && q->dp->close_after && n >= q->dp->close_after)
		http_close_after(q->req);
}

/* Charges (or dry-runs) the request; false once it has answered a refusal. */
static bool dp_rate(struct dp_req *q)
{
	bool charge = q->route->flags & DP_CHARGE;
	struct rl_verdict *v = &q->verdict;
	char msg[256], code[32];

	q->slot = dp_slot(q->dp, &q->auth);
	if (!q->slot) {
		if (!atomic_exchange(&q->dp->slots_full_logged, true))
			log_warnx("data: key %s has no usable request-rate slot (slot %u, "
				  "data.rate_slots %u): its requests are refused with 503",
				  q->auth.id, q->auth.slot, slots_capacity(q->dp->d.slots));
		http_reply_error(q->req, 503, "server_error", "rate_slot_unavailable", NULL,
				 "the request-rate state of key %s is not ready (no usable slot "
				 "below data.rate_slots); retry later or ask the operator",
				 q->auth.id);
		return false;
	}
	/* limits.enabled false: nothing is refused, request rates included (a dry run) */
	ratelimit_charge(q->slot, &q->auth.limits, (uint64_t)tg_now_mono_ns(),
			 !charge || !q->dp->limits_on, v);
	dp_rate_headers(q->req, v);
	if (!charge || !q->dp->limits_on)
		return true;
	dp_refusal_streak(q, !v->allowed);
	if (v->allowed)
		return true;
	metrics_rate_limited(rl_window_name(v->window));
	ratelimit_message(v, q->auth.id, msg, sizeof(msg));
	snprintf(code, sizeof(code), "requests_per_%s", rl_window_name(v->window));
	http_reply_error(q->req, 429, "request_rate_limit_exceeded", code, NULL, "%s", msg);
	return false;
}

/* ---- token quota ---- */

void dp_month_reset(int64_t now, char out[32])
{
	time_t t = (time_t)now;
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 32, "the first of next month");
		return;
	}
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	if (++tm.tm_mon == 12) {
		tm.tm_mon = 0;
		tm.tm_year++;
	}
	tg_rfc3339_format((int64_t)timegm(&tm), out);
}

/* ---- the handler ---- */

static void dp_handle(struct http_req *req, void *arg)
{
	struct dp_req q = {
	    .dp = arg, .req = req, .home = upstream_here(), .start_ns = tg_now_mono_ns(),
	    .time_ms = dp_now_ms()};
	char allow[64];

	q.route = route_find(http_req_method(req), http_req_path(req), q.arg, allow, sizeof(allow));
	if (!q.route && allow[0]) {
		http_add_header(req, "Allow", allow);
		http_reply_error(req, 405, "invalid_request_error", "method_not_allowed", NULL,
				 "this path takes %s only", allow);
		return;
	}
	if (!q.route) {
		http_reply_error(req, 404, "invalid_request_error", "unknown_url", NULL,
				 "no such endpoint (see docs/data-plane.md)");
		return;
	}
	if (dp_authenticate(&q) == DP_AUTH_OK)
		dp_proceed(&q);
	explicit_bzero(&q.auth, sizeof(q.auth));
}

void dp_proceed(struct dp_req *q)
{
	if (!dp_rate(q))
		return;
	if ((q->route->flags & DP_SERVICE) && strcmp(q->arg, q->auth.service) != 0) {
		http_reply_error(q->req, 403, "permission_error", "service_not_allowed", NULL,
				 "this API key belongs to service '%s'", q->auth.service);
		return;
	}
	log_debug("data: %s by key %s, id=%s", q->route->label, q->auth.id, http_req_id(q->req));
	/* every call carries the token and budget headers; forwarded ones get them reserving */
	if (!(q->route->flags & DP_FORWARD))
		dp_budget_peek_headers(q);
	q->route->fn(q);
}

/* ---- forwarded calls ---- */

struct dp_call *dp_call_new(struct dp_req *q, enum dp_endpoint ep, const struct provider *p,
			    const struct model_price *price, const char *model)
{
	struct dp_call *c = calloc(1, sizeof(*c));
	size_t n = 0;

	if (!c) {
		dp_reply_500(q->req, "a new call", -ENOMEM);
		return NULL;
	}
	c->dp = q->dp;
	c->req = q->req;
	c->home = q->home;
	c->ep = ep;
	c->prov = p;
	c->price = price;
	snprintf(c->model, sizeof(c->model), "%s", model);
	snprintf(c->key_id, sizeof(c->key_id), "%s", q->auth.id);
	snprintf(c->owner, sizeof(c->owner), "%s", q->auth.owner);
	snprintf(c->service, sizeof(c->service), "%s", q->auth.service);
	snprintf(c->tenant, sizeof(c->tenant), "%s", q->tenant);
	c->bc = q->bc; /* the call holds the reservation now */
	q->bc.held = false;
	c->start_ns = q->start_ns;
	c->time_ms = q->time_ms;
	/* the call takes over the pool's request reference; dp_call_submit follows at once */
	c->predeferred = q->deferred;
	q->deferred = false;
	http_req_body(q->req, &n);
	c->bytes_in = n;
	sse_init(&c->sse);
	atomic_init(&c->refs, 1);
	return c;
}

/* Frees c; held: it owns the request reference of http_defer. */
static void dp_call_free(struct dp_call *c, bool held)
{
	/* a call freed before dp_finish (not submitted) used nothing */
	if (c->dp->d.budget)
		budget_release(c->dp->d.budget, &c->bc);
	if (held)
		http_req_release(c->req);
	sse_free(&c->sse);
	cJSON_Delete(c->json);
	free(c->up_owned);
	free(c->attempts_log);
	free(c->body);
	free(c);
}

void dp_call_put(struct dp_call *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		dp_call_free(c, true);
}

void dp_call_cancel(struct dp_call *c)
{
	uint64_t h = atomic_load(&c->handle);

	if (h && !atomic_load(&c->up_done))
		upstream_cancel(dp_call_upstream(c), h);
}

/* The request is over (answered, client gone, listener stopped). Listener thread. */
static void dp_on_close(void *arg)
{
	struct dp_call *c = arg;

	atomic_store(&c->client_gone, true);
	dp_call_cancel(c);
	dp_call_put(c);
}

/* Keeps the body for every attempt: the request's own bytes, or a copy of a rewritten one. */
static int dp_call_keep_body(struct dp_call *c, const char *path, const char *body, size_t len)
{
	size_t n = 0;

	c->up_path = path;
	c->up_len = len;
	c->up_body = body;
	if (body == http_req_body(c->req, &n))
		return 0;
	c->up_owned = malloc(len + 1);
	if (!c->up_owned)
		return -ENOMEM;
	memcpy(c->up_owned, body, len);
	c->up_owned[len] = '\0';
	c->up_body = c->up_owned;
	return 0;
}

void dp_call_submit(struct dp_call *c, const char *path, const char *body, size_t len)
{
	int rc = c->predeferred ? 0 : http_defer(c->req);

	if (rc) {
		http_reply_error(c->req, 503, "server_error", "shutting_down", NULL,
				 "the gateway is shutting down; retry");
		dp_call_free(c, false);
		return;
	}
	/* a second reference for the close callback, which cancels the call if the client goes */
	atomic_fetch_add(&c->refs, 1);
	if (http_req_on_close(c->req, dp_on_close, c))
		atomic_fetch_sub(&c->refs, 1); /* cannot happen inside the handler; kept safe */
	c->deadline_ns =
	    c->start_ns + (int64_t)router_cfg(c->dp->d.router)->call_timeout_sec * 1000000000LL;
	rc = dp_call_keep_body(c, path, body, len);
	if (rc) {
		c->err = UPSTREAM_INTERNAL;
		snprintf(c->detail, sizeof(c->detail), "keeping the body: %s", strerror(-rc));
	}
	/*
	 * Held until this function returns: once submitted, the call may fail over, finish and
	 * be released on other threads before dp_attempt has returned here.
	 */
	atomic_fetch_add(&c->refs, 1);
	/* a call that went nowhere is metered and answered (502, 503) like any other */
	if (rc || !dp_attempt(c)) {
		atomic_store(&c->up_done, true);
		dp_finish(c->dp, c);
	}
	dp_call_put(c);
}

/* ---- metering ---- */

/* Appends c's usage record (c->seq, c->append_rc) and counts it in the metrics. */
static void dp_meter(struct dp_call *c)
{
	struct usage_record r;
	int64_t ns = tg_now_mono_ns() - c->start_ns;

	memset(&r, 0, sizeof(r));
	r.time_ms = c->time_ms;
	snprintf(r.request_id, sizeof(r.request_id), "%s", http_req_id(c->req));
	snprintf(r.key_id, sizeof(r.key_id), "%s", c->key_id);
	snprintf(r.owner, sizeof(r.owner), "%s", c->owner);
	snprintf(r.service, sizeof(r.service), "%s", c->service);
	/* the provider that served the call (the last attempt's); none if nothing was sent */
	snprintf(r.provider, sizeof(r.provider), "%s", c->attempts ? c->prov->name : "");
	r.attempts = c->attempts;
	snprintf(r.model, sizeof(r.model), "%s", c->model);
	snprintf(r.endpoint, sizeof(r.endpoint), "%s%s", dp_endpoint_name(c->ep),
		 c->estimated ? DP_ESTIMATED : "");
	r.status = c->status;
	r.stream = c->hs != NULL;
	r.prompt_tokens = c->prompt_tokens;
	r.completion_tokens = c->completion_tokens;
	r.cost_nano = c->cost.total_nano;
	r.latency_us = ns > 0 ? (uint64_t)ns / 1000 : 0;
	r.bytes_in = c->bytes_in;
	r.bytes_out = c->bytes_out;
	snprintf(r.tenant, sizeof(r.tenant), "%s", c->tenant);
	/* memory first: a client answered from the commit hook below finds it counted */
	dp_budget_settle(c, &r);
	/*
	 * committed here when the writer is idle: no hand-over, the hook runs on this thread.
	 * On the upstream thread, at the end of its round (dp_round_end), in one transaction
	 * with the other calls that ended in the same round: one commit per call was a tenth
	 * of a forwarded call's CPU.
	 */
	if (upstream_here())
		c->append_rc = usage_append_deferred(c->dp->d.usage, &r, &c->seq);
	else
		c->append_rc = usage_append_commit(c->dp->d.usage, &r, &c->seq);
	if (c->append_rc)
		log_warnx("data: usage record of %s not queued: %s", r.request_id,
			  strerror(-c->append_rc));
	metrics_consumption(dp_endpoint_name(c->ep), c->model, c->status, c->prompt_tokens,
			    c->completion_tokens);
}

/* ---- release on commit ---- */

/* The upstream thread's end of round: commits the records dp_meter deferred. */
static void dp_round_end(void *arg)
{
	usage_flush(arg);
}

/* Releases c's answer (commit_rc as dp_release takes it) and drops the upstream reference. */
static void dp_done(struct dp_call *c, int commit_rc)
{
	dp_release(c, commit_rc);
	dp_call_put(c);
}

/*
 * A call is over upstream: settle and meter it here (upstream thread, or the listener when
 * the submit failed; the record is committed right here when the usage writer is idle),
 * then list it until its record commits; the commit hook (dp_on_commit) releases it. The
 * check of the committed sequence under the list's lock closes the race with a hook that
 * ran between the append and the listing (always so for a commit made here): either the
 * hook sees c listed, or c sees the commit the hook was called for.
 */
void dp_finish(struct dataplane *dp, struct dp_call *c)
{
	struct dp_commits *k = &dp->commits;
	bool committed;

	dp_settle(c);
	dp_meter(c);
	if (c->append_rc) {
		dp_done(c, c->append_rc);
		return;
	}
	c->metered_ns = tg_now_mono_ns();
	pthread_mutex_lock(&k->mu);
	committed = usage_committed(dp->d.usage) >= c->seq;
	if (!committed) {
		c->next = k->head;
		k->head = c;
	}
	pthread_mutex_unlock(&k->mu);
	if (committed)
		dp_done(c, 0);
}

/*
 * The usage writer's commit hook (on whichever thread committed: the writer's, or an
 * upstream thread in usage_append_commit): releases every listed call whose record
 * is committed; after a failed commit (err), also those that waited DP_COMMIT_WAIT_MS,
 * their answers withheld (dp_release with the error).
 */
static void dp_on_commit(uint64_t committed, int err, void *arg)
{
	struct dataplane *dp = arg;
	struct dp_commits *k = &dp->commits;
	int64_t old = tg_now_mono_ns() - (int64_t)DP_COMMIT_WAIT_MS * 1000000;
	struct dp_call *ready = NULL, **pp, *c;
	unsigned withheld = 0;

	pthread_mutex_lock(&k->mu);
	for (pp = &k->head; (c = *pp);) {
		if (c->seq > committed && !(err && c->metered_ns < old)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->next = ready;
		ready = c;
	}
	if (!k->head)
		pthread_cond_broadcast(&k->drained);
	pthread_mutex_unlock(&k->mu);
	for (c = ready; c; c = ready) {
		ready = c->next;
		withheld += c->seq > committed;
		dp_done(c, c->seq > committed ? err : 0);
	}
	if (withheld)
		log_warnx("data: %u usage records not committed in %d ms: %s; their answers are "
			  "withheld",
			  withheld, DP_COMMIT_WAIT_MS, strerror(-err));
}

static int dp_commits_init(struct dataplane *dp)
{
	struct dp_commits *k = &dp->commits;

	if (pthread_mutex_init(&k->mu, NULL))
		return -ENOMEM;
	if (pthread_cond_init(&k->drained, NULL)) {
		pthread_mutex_destroy(&k->mu);
		return -ENOMEM;
	}
	usage_on_commit(dp->d.usage, dp_on_commit, dp);
	return 0;
}

/*
 * After the upstream stopped (no call can be listed any more): waits up to DP_COMMIT_WAIT_MS
 * for the listed calls' commits, withholds what is left, and unhooks from the writer.
 */
static void dp_commits_fini(struct dataplane *dp)
{
	struct dp_commits *k = &dp->commits;
	int64_t due = tg_now_mono_ns() + (int64_t)DP_COMMIT_WAIT_MS * 1000000;
	struct dp_call *left;

	pthread_mutex_lock(&k->mu);
	while (k->head && tg_now_mono_ns() < due) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000; /* rechecks the deadline every 50 ms */
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&k->drained, &k->mu, &ts);
	}
	left = k->head;
	k->head = NULL;
	pthread_mutex_unlock(&k->mu);
	usage_on_commit(dp->d.usage, NULL, NULL); /* waits for a hook call in progress */
	if (left)
		log_warnx("data: stopping with usage records not committed; their answers are "
			  "withheld");
	while (left) {
		struct dp_call *c = left;

		left = c->next;
		dp_done(c, -ETIMEDOUT);
	}
	pthread_cond_destroy(&k->drained);
	pthread_mutex_destroy(&k->mu);
}

/* ---- lifecycle ---- */

/* After the listener stopped: each loop's upstream client (its last calls cancelled), then
 * the loops. Accepts a partial start. */
static void dp_loops_stop(struct dataplane *dp)
{
	for (unsigned i = 0; i < dp->nloops; i++) {
		upstream_stop(dp->ups[i]);
		loop_stop(dp->loops[i]);
	}
	free(dp->ups);
	free(dp->loops);
	dp->ups = NULL;
	dp->loops = NULL;
	dp->nloops = 0;
}

/*
 * n listener loops, each with an upstream client whose callbacks (and their usage records,
 * committed at the end of its round) run on it. The per-host connection bound is shared
 * among them. 0 or -errno.
 */
static int dp_loops_start(struct dataplane *dp, unsigned n, unsigned conns)
{
	unsigned per = conns ? (conns + n - 1) / n : 0;

	dp->loops = calloc(n, sizeof(*dp->loops));
	dp->ups = calloc(n, sizeof(*dp->ups));
	if (!dp->loops || !dp->ups)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		char name[16];

		snprintf(name, sizeof(name), "data-%u", i);
		dp->loops[i] = loop_start(name);
		if (!dp->loops[i])
			return -errno;
		dp->nloops = i + 1;
		dp->ups[i] = upstream_start_on(dp->loops[i], per);
		if (!dp->ups[i])
			return -errno;
		upstream_on_round(dp->ups[i], dp_round_end, dp->d.usage);
	}
	return 0;
}

static unsigned dp_threads_auto(void)
{
	unsigned n = tg_cpus_usable();

	return n < DP_THREADS_AUTO_MAX ? n : DP_THREADS_AUTO_MAX;
}

struct dataplane *dataplane_start(const struct dataplane_opts *o, const struct dataplane_deps *d)
{
	struct http_opts ho = {
	    .listen = o && o->listen ? o->listen : "127.0.0.1:8080",
	    .name = "data",
	    .threads = o && o->threads ? o->threads : dp_threads_auto(),
	    .max_body = o && o->max_body ? o->max_body : 1u << 20,
	    .require_json = true,
	    .timeout_sec = o && o->timeout_sec ? o->timeout_sec : 60,
	    .max_conns = o && o->max_conns ? o->max_conns : 20000,
	    /* the library's per-connection pool, touched nearly whole by a stream: the
	       largest part of a streaming call's memory at the 32 KiB default */
	    .max_header = o && o->max_header ? o->max_header : 8192,
	    .drain_ms = o && o->drain_ms ? o->drain_ms : 2000,
	    .defer_accept_sec = o ? o->defer_accept_sec : 0,
	    .route_label = dp_route_label,
	    .listener = METRICS_DATA,
	};
	struct dataplane *dp;
	int err;

	if (!d || !d->k || !d->slots || !d->up || !d->usage || !d->prov || !d->router) {
		errno = EINVAL;
		return NULL;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return NULL;
	dp->d = *d;
	snprintf(dp->default_model, sizeof(dp->default_model), "%s",
		 o && o->default_model && *o->default_model ? o->default_model : "gpt-4o-mini");
	atomic_init(&dp->slots_full_logged, false);
	dp->close_after = o ? o->close_after_refusals : 0;
	dp->limits_on = !d->budget || budget_opts(d->budget)->enabled;
	snprintf(dp->downgrade, sizeof(dp->downgrade), "%s",
		 o && o->downgrade ? o->downgrade : "");
	dp->queue_depth = o && o->queue_depth ? o->queue_depth : 64;
	dp->queue_timeout_ms = o && o->queue_timeout_ms ? o->queue_timeout_ms : 5000;
	err = dp_commits_init(dp);
	if (err) {
		free(dp);
		errno = -err;
		return NULL;
	}
	err = dp_loops_start(dp, ho.threads, o && o->upstream_conns ? o->upstream_conns : 256);
	ho.loops = dp->loops;
	ho.nloops = dp->nloops;
	if (!err)
		err = dp_verify_start(dp, o && o->verify_threads ? o->verify_threads : 2);
	if (!err)
		err = dp_queue_start(dp, dp->queue_depth);
	if (!err && d->budget) /* capacity freed by a settle or release: retry the waiters */
		budget_on_release(d->budget, dp_queue_on_release, dp);
	dp->http = err ? NULL : http_start(&ho, dp_handle, dp);
	if (!dp->http) {
		err = err ? -err : errno;
		if (d->budget)
			budget_on_release(d->budget, NULL, NULL);
		dp_queue_close(dp);
		dp_verify_stop(dp);
		dp_loops_stop(dp);
		dp_commits_fini(dp);
		free(dp);
		errno = err;
		return NULL;
	}
	/* the usage outlives the upstream thread (closed after upstream_stop) */
	upstream_on_round(d->up, dp_round_end, d->usage);
	return dp;
}

uint16_t dataplane_port(const struct dataplane *dp)
{
	return dp ? http_port(dp->http) : 0;
}

unsigned dataplane_threads(const struct dataplane *dp)
{
	return dp ? dp->nloops : 0;
}

void dataplane_stop(struct dataplane *dp)
{
	if (!dp)
		return;
	/* the queue first: its waiters answered, http_stop need not wait for them */
	dp_queue_stop(dp);
	http_stop(dp->http);
	dp->http = NULL;
	dp_verify_stop(dp); /* before upstream_stop: a pool thread may submit calls */
	dp_loops_stop(dp);  /* the listener's calls: cancelled, their last callbacks run */
}

void dataplane_close(struct dataplane *dp)
{
	if (!dp)
		return;
	dp_queue_stop(dp);
	http_stop(dp->http); /* in case dataplane_stop was not called */
	dp_verify_stop(dp);
	dp_loops_stop(dp);
	if (dp->d.budget) /* no settle comes any more (after upstream_stop) */
		budget_on_release(dp->d.budget, NULL, NULL);
	dp_queue_close(dp);
	dp_commits_fini(dp);
	free(dp);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's side of the limits engine (budget.h): the request's tenant, the
 * reservation before a call is forwarded (with the action of a limit it would exceed:
 * block, queue, downgrade; soft mode and alert annotate), the token and budget headers,
 * the 429s of the contract, and the settlement of a finished call from what its usage
 * record says (so memory and the LMDB roll-ups count the same amounts).
 *
 * The queue action: a call refused by a limit whose action is queue is parked in the data
 * plane's queue (dataplane_queue.c: no thread held) and its handler runs again from the
 * queue's thread when capacity may have freed (the engine's release hook kicks the queue)
 * or time passed; the handler's reservation then either fits (the call goes on, with
 * X-Tollgate-Queued-Ms), or still does not (it keeps its place), or, after
 * limits.queue_timeout_ms, is refused with the limit's 429 saying how long it waited. A key
 * with limits.queue_depth calls waiting already is refused at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "budget_json.h"
#include "dataplane_internal.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define TENANT_HEADER "X-Tollgate-Tenant"

bool dp_tenant(struct dp_req *q, const cJSON *root)
{
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(md, "tenant");
	const char *h = http_req_header(q->req, TENANT_HEADER), *param = "metadata.tenant";
	const char *v = NULL;

	/* a queued call's retry: headers belong to the suspended connection; kept from the
	 * first attempt */
	if (q->queued_ns)
		return true;
	q->tenant[0] = '\0';
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsString(t) || !t->valuestring)
			goto bad;
		v = t->valuestring;
	} else if (h) {
		v = h;
		param = TENANT_HEADER;
	}
	if (!v)
		return true;
	if (!budget_tenant_valid(v))
		goto bad;
	snprintf(q->tenant, sizeof(q->tenant), "%s", v);
	q->tenant_param = param;
	return true;
bad:
	http_reply_error(q->req, 400, "invalid_request_error", "invalid_tenant", param,
			 "%s: a tenant is 1 to 64 characters of A-Z a-z 0-9 . _ : -", param);
	return false;
}

#define EST_PER_MESSAGE 4 /* tokens a chat format adds per message (role, separators) */
#define EST_PER_CALL	3 /* and per call (the reply's priming) */

/* Bytes of a string, or of the text parts of a content array (others: their JSON size). */
static uint64_t text_bytes(const cJSON *v)
{
	const cJSON *it;
	uint64_t n = 0;
	char *j;

	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsString(v) && v->valuestring)
		return strlen(v->valuestring);
	if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(it, v)
		{
			const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "text");

			n += cJSON_IsString(it) || cJSON_IsString(t)
				 ? text_bytes(cJSON_IsString(it) ? it : t)
				 : text_bytes(it);
		}
		return n;
	}
	/* anything else (tool calls, images' URLs, ...) counts its whole JSON text */
	j = cJSON_PrintUnformatted(v);
	n = j ? strlen(j) : 0;
	cJSON_free(j);
	return n;
}

uint64_t dp_prompt_estimate(const cJSON *root, const char *field)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages"), *m, *it;
	uint64_t n = EST_PER_CALL;

	/* an upper bound: every token is at least one byte of the text it stands for */
	if (!field) {
		cJSON_ArrayForEach(m, msgs)
		{
			n += EST_PER_MESSAGE;
			cJSON_ArrayForEach(it, m) if (strcmp(it->string, "role") != 0) n +=
			    text_bytes(it);
		}
	} else {
		n += text_bytes(cJSON_GetObjectItemCaseSensitive(root, field));
	}
	n += text_bytes(cJSON_GetObjectItemCaseSensitive(root, "tools"));
	n += text_bytes(cJSON_GetObjectItemCaseSensitive(root, "functions"));
	return n;
}

/* OpenAI's duration format of the -reset headers: "1h2m3s", "45s", "0s". */
static void duration_format(int64_t sec, char buf[48])
{
	size_t n = 0;

	if (sec < 0)
		sec = 0;
	if (sec >= 3600) {
		n += tg_u64_dec((uint64_t)sec / 3600, buf);
		buf[n++] = 'h';
	}
	if (sec >= 60) {
		n += tg_u64_dec((uint64_t)sec % 3600 / 60, buf + n);
		buf[n++] = 'm';
	}
	n += tg_u64_dec((uint64_t)sec % 60, buf + n);
	buf[n++] = 's';
	buf[n] = '\0';
}

/* A USD amount for the X-Budget-* headers: budget_amount's, without the unit. */
static void usd(uint64_t nano, char buf[48])
{
	tg_fixed_dec(nano, 9, 2, buf);
}

void dp_budget_headers(struct http_req *req, const struct budget_verdict *v, int64_t now)
{
	char buf[48];

	if (v->has_tokens) {
		tg_u64_dec(v->tokens_limit, buf);
		http_add_header(req, "x-ratelimit-limit-tokens", buf);
		tg_u64_dec(v->tokens_remaining, buf);
		http_add_header(req, "x-ratelimit-remaining-tokens", buf);
		duration_format(v->tokens_reset_at - now, buf);
		http_add_header(req, "x-ratelimit-reset-tokens", buf);
	}
	if (v->has_cost) {
		usd(v->cost_limit, buf);
		http_add_header(req, "X-Budget-Limit", buf);
		usd(v->cost_used, buf);
		http_add_header(req, "X-Budget-Used", buf);
		usd(v->cost_remaining, buf);
		http_add_header(req, "X-Budget-Remaining", buf);
		tg_u64_dec(v->cost_reset_at > now ? (uint64_t)(v->cost_reset_at - now) : 0, buf);
		http_add_header(req, "X-Budget-Reset", buf);
	}
}

void dp_reply_limit(struct http_req *req, const struct budget_hit *h, const char *note)
{
	char msg[512], retry[24];

	budget_message(h, msg, sizeof(msg));
	snprintf(retry, sizeof(retry), "%" PRIu64, h->retry_after_sec ? h->retry_after_sec : 1);
	http_add_header(req, "Retry-After", retry);
	metrics_quota_exceeded(limit_descs[h->limit].name);
	http_reply_error(req, 429,
			 budget_is_quota(h->limit) ? "insufficient_quota" : "rate_limit_exceeded",
			 limit_descs[h->limit].name, NULL, "%s%s", msg, note ? note : "");
}

/* Allowed over a limit (soft mode, action alert): the warning header and a log line. */
static void annotate(struct dp_req *q, const struct budget_hit *h)
{
	char hdr[96];
	const char *why = h->mode == LIMIT_MODE_SOFT ? "soft mode" : "alert";

	snprintf(hdr, sizeof(hdr), "%s exceeded (%s)", limit_descs[h->limit].name, why);
	http_add_header(q->req, "X-Tollgate-Limit-Warning", hdr);
	metrics_limit_hit(limit_descs[h->limit].name, h->mode == LIMIT_MODE_SOFT ? "soft" : "alert");
	metrics_enforcement(h->mode == LIMIT_MODE_SOFT ? "soft" : "alert");
	log_info("data: key %s over %s of %s (%s): allowed, id=%s", q->auth.id,
		 limit_descs[h->limit].name, h->subject, why, http_req_id(q->req));
}

/* Estimates and reserves plan's call; 0 (v filled) or -errno. */
static int reserve(struct dp_req *q, const struct dp_plan *pl, struct budget_verdict *v)
{
	struct budget_req r = {.key_id = q->auth.id,
			       .key_limits = &q->auth.limits,
			       .owner = q->auth.owner,
			       .tenant = q->tenant,
			       .now = q->time_ms / 1000};
	size_t body = 0;
	int64_t t0 = tg_now_mono_ns();
	int rc;

	http_req_body(q->req, &body);
	budget_estimate(pl->price, pl->prompt_est, pl->completion_est, body, r.est);
	rc = budget_reserve(q->dp->d.budget, &r, &q->bc, v);
	metrics_limit_check_ns((uint64_t)(tg_now_mono_ns() - t0));
	return rc;
}

/* ---- the queue action ---- */

/*
 * A parked call's retry (the queue's thread): its handler again, from the body (headers
 * belong to the suspended connection; the tenant was kept in q). What dp_budget_reserve
 * decides comes back in q->queue_verdict.
 */
static enum dp_queue_verdict queue_retry(struct dp_req *q, bool last)
{
	(void)last; /* q->queue_last says the same */
	q->queue_verdict = DP_QUEUE_PROCEEDED;
	q->time_ms = dp_now_ms(); /* the windows of now, not of the first attempt */
	q->route->fn(q);
	return q->queue_verdict;
}

/*
 * v refused q with the queue action: parks it (first attempt) or keeps it waiting (a
 * retry). True when no answer is due now; false to refuse, with note saying why it did
 * not wait (longer).
 */
static bool queue_wait(struct dp_req *q, const struct budget_hit *h, char *note, size_t len)
{
	const char *limit = limit_descs[h->limit].name;
	int rc;

	if (q->queued_ns && !q->queue_last) {
		q->queue_verdict = DP_QUEUE_WAIT;
		return true;
	}
	if (q->queued_ns) {
		snprintf(note, len, " (waited %lld ms in the queue)",
			 (long long)dp_queue_waited_ms(q));
		metrics_limit_hit(limit, "queue_timeout");
		return false;
	}
	rc = dp_queue_park(q, q->dp->queue_timeout_ms, queue_retry);
	if (!rc) {
		metrics_limit_hit(limit, "queue");
		log_debug("data: key %s over %s of %s: queued, id=%s", q->auth.id, limit, h->subject,
			  http_req_id(q->req));
		return true;
	}
	if (rc == -EBUSY)
		snprintf(note, len, " (not queued: key %s has %u calls waiting already)", q->auth.id,
			 q->dp->queue_depth);
	else
		snprintf(note, len, " (not queued: %s)", strerror(-rc));
	metrics_limit_hit(limit, "block");
	metrics_enforcement("block");
	return false;
}

/* The queued call's time in the queue, on its answer. */
static void queued_header(struct dp_req *q)
{
	char ms[24];

	if (!q->queued_ns)
		return;
	snprintf(ms, sizeof(ms), "%lld", (long long)dp_queue_waited_ms(q));
	http_add_header(q->req, "X-Tollgate-Queued-Ms", ms);
}

/* Switches plan to the downgrade model of its model; false if there is none usable. */
static bool downgrade(struct dp_req *q, struct dp_plan *pl)
{
	const struct model_price *price = NULL;
	const struct provider *p;
	char to[MODEL_NAME_MAX + 1];

	if (!budget_downgrade_of(q->dp->downgrade, pl->model, to, sizeof(to)))
		return false;
	p = providers_route(q->dp->d.prov, to, &price);
	if (!p)
		return false;
	snprintf(pl->from, sizeof(pl->from), "%s", pl->model);
	snprintf(pl->model, sizeof(pl->model), "%s", to);
	pl->p = p;
	pl->price = price;
	pl->downgraded = true;
	return true;
}

/*
 * A new tenant past limits.max_tenants: 400 on the field that named it, not 429, because
 * waiting does not help (the bound frees nothing by itself) and OpenAI SDKs retry a 429
 * on their own; the request is fine without the tenant, or once the admin sets limits for
 * it (such tenants are always accepted).
 */
static void tenant_refused(struct dp_req *q)
{
	const char *param = q->tenant_param ? q->tenant_param : "metadata.tenant";

	metrics_tenant_refused();
	log_info("data: key %s named a new tenant past limits.max_tenants (%" PRIu64
		 "): refused, id=%s",
		 q->auth.id, budget_opts(q->dp->d.budget)->max_tenants, http_req_id(q->req));
	http_reply_error(q->req, 400, "invalid_request_error", "tenant_limit_reached", param,
			 "%s: '%s' would be a new tenant, and tollgate takes at most %" PRIu64
			 " tenants from requests (limits.max_tenants); name a known tenant or "
			 "none, or ask the administrator to set limits for this one",
			 param, q->tenant, budget_opts(q->dp->d.budget)->max_tenants);
}

bool dp_budget_reserve(struct dp_req *q, struct dp_plan *pl)
{
	struct budget_verdict v;
	int64_t now = q->time_ms / 1000;
	char note[128] = "";
	int rc;

	if (!q->dp->d.budget)
		return true;
	rc = reserve(q, pl, &v);
	if (!rc && !v.allowed && v.hit.action == LIMIT_ACT_DOWNGRADE && downgrade(q, pl)) {
		/* re-estimated at the cheaper price and re-checked; over again: blocked */
		log_info("data: key %s over %s of %s: %s downgraded to %s, id=%s", q->auth.id,
			 limit_descs[v.hit.limit].name, v.hit.subject, pl->from, pl->model,
			 http_req_id(q->req));
		rc = reserve(q, pl, &v);
		if (!rc && v.allowed) {
			http_add_header(q->req, "X-Tollgate-Downgraded-From", pl->from);
			metrics_limit_hit(limit_descs[v.hit.limit].name, "downgrade");
			metrics_enforcement("downgrade");
		}
	}
	if (rc == -EDQUOT) {
		tenant_refused(q);
		return false;
	}
	if (rc) {
		dp_reply_500(q->req, "reserving the call's budget", rc);
		return false;
	}
	/* queued (or still waiting): no headers yet, the answer comes from a later attempt */
	if (!v.allowed && v.hit.action == LIMIT_ACT_QUEUE && !pl->downgraded &&
	    queue_wait(q, &v.hit, note, sizeof(note)))
		return false;
	dp_budget_headers(q->req, &v, now);
	queued_header(q);
	if (v.allowed) {
		if (v.warned)
			annotate(q, &v.warn);
		return true;
	}
	if (q->queued_ns)
		q->queue_verdict = DP_QUEUE_ANSWERED;
	if (v.hit.action != LIMIT_ACT_QUEUE || pl->downgraded) {
		metrics_limit_hit(limit_descs[v.hit.limit].name, "block");
		metrics_enforcement("block");
	}
	if (pl->downgraded)
		snprintf(note, sizeof(note), " (after a downgrade, which did not fit either)");
	dp_reply_limit(q->req, &v.hit, note[0] ? note : NULL);
	return false;
}

void dp_budget_settle(struct dp_call *c, const struct usage_record *r)
{
	uint64_t actual[WIN_M__COUNT];

	usage_record_amounts(r, actual); /* what the roll-ups will count for r */
	if (c->dp->d.budget)
		budget_settle(c->dp->d.budget, &c->bc, actual);
}

void dp_budget_peek_headers(struct dp_req *q)
{
	struct budget_req r = {.key_id = q->auth.id,
			       .key_limits = &q->auth.limits,
			       .owner = q->auth.owner,
			       .now = q->time_ms / 1000};
	struct budget_verdict v;
	const char *t = http_req_header(q->req, TENANT_HEADER);

	if (!q->dp->d.budget)
		return;
	if (t && budget_tenant_valid(t))
		r.tenant = t;
	if (budget_peek(q->dp->d.budget, &r, &v) == 0)
		dp_budget_headers(q->req, &v, r.now);
}

/* ---- consumer endpoints ---- */

bool dp_limits_json(struct dp_req *q, bool quotas_only, cJSON *arr)
{
	struct budget *b = q->dp->d.budget;
	int64_t now = q->time_ms / 1000;
	char subject[BUDGET_SUBJECT_MAX];
	const char *tenant = http_req_header(q->req, TENANT_HEADER);

	if (!b)
		return true;
	snprintf(subject, sizeof(subject), "key:%s", q->auth.id);
	if (!budget_status_json(b, subject, &q->auth.limits, now, quotas_only, arr))
		return false;
	if (q->auth.owner[0] && !budget_status_json(b, q->auth.owner, NULL, now, quotas_only, arr))
		return false;
	if (tenant && budget_tenant_valid(tenant)) {
		snprintf(subject, sizeof(subject), "tenant:%s", tenant);
		return budget_status_json(b, subject, NULL, now, quotas_only, arr);
	}
	return true;
}

void dp_h_quotas(struct dp_req *q)
{
	cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "data") : NULL;

	if (!arr || !dp_limits_json(q, true, arr)) {
		cJSON_Delete(o);
		o = NULL;
	}
	dp_reply_obj(q->req, 200, o);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's side of the limits engine (budget.h): the request's tenant, the
 * reservation before a call is forwarded (with the action of a limit it would exceed:
 * block, queue, downgrade; soft mode and alert annotate), the token and budget headers,
 * the 429s of the contract, and the settlement of a finished call from what its usage
 * record says (so memory and the LMDB roll-ups count the same amounts).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
	return true;
bad:
	http_reply_error(q->req, 400, "invalid_request_error", "invalid_tenant", param,
			 "%s: a tenant is 1 to 64 characters of A-Z a-z 0-9 . _ : -", param);
	return false;
}

/* OpenAI's duration format of the -reset headers: "1h2m3s", "45s", "0s". */
static void duration_format(int64_t sec, char *buf, size_t len)
{
	int n = 0;

	if (sec < 0)
		sec = 0;
	if (sec >= 3600)
		n = snprintf(buf, len, "%" PRId64 "h", sec / 3600);
	if (sec >= 60 && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, "%" PRId64 "m", sec % 3600 / 60);
	if (n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "%" PRId64 "s", sec % 60);
}

/* A USD amount for the X-Budget-* headers: the decimal without the unit. */
static void usd(uint64_t nano, char *buf, size_t len)
{
	char *sp;

	budget_amount(BUDGET_KIND_COST, nano, buf, len);
	sp = strchr(buf, ' ');
	if (sp)
		*sp = '\0';
}

void dp_budget_headers(struct http_req *req, const struct budget_verdict *v, int64_t now)
{
	char buf[48];

	if (v->has_tokens) {
		snprintf(buf, sizeof(buf), "%" PRIu64, v->tokens_limit);
		http_add_header(req, "x-ratelimit-limit-tokens", buf);
		snprintf(buf, sizeof(buf), "%" PRIu64, v->tokens_remaining);
		http_add_header(req, "x-ratelimit-remaining-tokens", buf);
		duration_format(v->tokens_reset_at - now, buf, sizeof(buf));
		http_add_header(req, "x-ratelimit-reset-tokens", buf);
	}
	if (v->has_cost) {
		usd(v->cost_limit, buf, sizeof(buf));
		http_add_header(req, "X-Budget-Limit", buf);
		usd(v->cost_used, buf, sizeof(buf));
		http_add_header(req, "X-Budget-Used", buf);
		usd(v->cost_remaining, buf, sizeof(buf));
		http_add_header(req, "X-Budget-Remaining", buf);
		snprintf(buf, sizeof(buf), "%" PRId64,
			 v->cost_reset_at > now ? v->cost_reset_at - now : 0);
		http_add_header(req, "X-Budget-Reset", buf);
	}
}

void dp_reply_limit(struct http_req *req, const struct budget_hit *h, const char *note)
{
	char msg[512], retry[24];

	budget_message(h, msg, sizeof(msg));
	snprintf(retry, sizeof(retry), "%" PRIu64, h->retry_after_sec ? h->retry_after_sec : 1);
	http_add_header(req, "Retry-After", retry);
	/* metrics: tollgate_limit_hits_total{limit,action} and enforcement_actions{block} */
	metrics_quota_exceeded(limit_descs[h->limit].name);
	http_reply_error(req, 429, budget_is_quota(h->limit) ? "insufficient_quota"
							      : "rate_limit_exceeded",
			 limit_descs[h->limit].name, NULL, "%s%s", msg, note ? note : "");
}

/* Allowed over a limit (soft mode, action alert): the warning header and a log line. */
static void annotate(struct dp_req *q, const struct budget_hit *h)
{
	char hdr[96];
	const char *why = h->mode == LIMIT_MODE_SOFT ? "soft mode" : "alert";

	snprintf(hdr, sizeof(hdr), "%s exceeded (%s)", limit_descs[h->limit].name, why);
	http_add_header(q->req, "X-Tollgate-Limit-Warning", hdr);
	/* metrics: tollgate_enforcement_actions_total{soft|alert} */
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

	http_req_body(q->req, &body);
	/* every prompt token comes from the request's bytes and is at least one byte long */
	budget_estimate(pl->price, body, pl->completion_est, body, r.est);
	return budget_reserve(q->dp->d.budget, &r, &q->bc, v);
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

bool dp_budget_reserve(struct dp_req *q, struct dp_plan *pl)
{
	struct budget_verdict v;
	int64_t now = q->time_ms / 1000;
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
		if (!rc && v.allowed)
			http_add_header(q->req, "X-Tollgate-Downgraded-From", pl->from);
	}
	if (rc) {
		dp_reply_500(q->req, "reserving the call's budget", rc);
		return false;
	}
	dp_budget_headers(q->req, &v, now);
	if (v.allowed) {
		if (v.warned)
			annotate(q, &v.warn);
		return true;
	}
	/*
	 * queue: helper A parks the call here (no thread held) and retries dp_budget_reserve
	 * from budget_on_release until limits.queue_timeout_ms; until then it is blocked.
	 */
	if (v.hit.action == LIMIT_ACT_QUEUE)
		log_debug("data: key %s: queue action not available yet, blocked", q->auth.id);
	dp_reply_limit(q->req, &v.hit,
		       pl->downgraded ? " (after a downgrade, which did not fit either)" : NULL);
	return false;
}

void dp_budget_settle(struct dp_call *c, const struct usage_record *r)
{
	uint64_t actual[WIN_M__COUNT] = {
	    [WIN_M_REQUESTS] = 1,
	    [WIN_M_TOKENS] = r->prompt_tokens + r->completion_tokens,
	    [WIN_M_COST] = r->cost_nano,
	    [WIN_M_BYTES] = r->bytes_in + r->bytes_out,
	    [WIN_M_COMPUTE] = r->latency_us / 1000,
	};

	if (c->dp->d.budget)
		budget_settle(c->dp->d.budget, &c->bc, actual);
}

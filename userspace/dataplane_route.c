/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Routing and failover of a forwarded call (see router.h for the choice itself). Each
 * attempt asks the router for a provider the call has not tried, sends the same body there
 * with the provider's credential, and when it ends reports the outcome (latency to the
 * answer's headers, Retry-After). An attempt that ended in 429, 5xx, a timeout or a
 * connection error is followed by the next one - unless the client has seen bytes of the
 * answer already (a stream that started), the client left, routing.max_attempts were made,
 * less than DP_ATTEMPT_MIN_MS of routing.call_timeout_sec is left, or no other provider is
 * available. Then the call is over: with the last provider's answer when it was the only
 * provider there was to try, else as a 503 naming every attempt and every provider passed
 * over (DP_OUT_ALL_FAILED). A call is metered once, whatever its attempts (dp_finish).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane_internal.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define NS_PER_MS 1000000LL

static void log_add(struct dp_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends "; <text>" to the call's attempts log (cut when full). */
static void log_add(struct dp_call *c, const char *fmt, ...)
{
	size_t cap = DP_ATTEMPTS_LOG, at = c->attempts_log_len;
	va_list ap;
	int n;

	if (at + 3 >= cap)
		return;
	if (!c->attempts_log && !(c->attempts_log = calloc(1, cap)))
		return; /* the 503 then names no attempts, nothing worse */
	if (at) {
		memcpy(c->attempts_log + at, "; ", 3);
		at += 2;
	}
	va_start(ap, fmt);
	n = vsnprintf(c->attempts_log + at, cap - at, fmt, ap);
	va_end(ap);
	if (n < 0)
		c->attempts_log[c->attempts_log_len] = '\0';
	else
		c->attempts_log_len = at + (size_t)n >= cap ? cap - 1 : at + (size_t)n;
}

/* Retry-After as whole seconds; an HTTP-date (or anything else) counts as none. */
static uint32_t retry_after_sec(const char *s)
{
	unsigned long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return 0;
	v = strtoul(s, &end, 10);
	if (*end && *end != ' ')
		return 0;
	return v > 86400 ? 86400 : (uint32_t)v;
}

/* How the attempt that just ended went, for the router. */
static enum router_outcome attempt_outcome(const struct dp_call *c)
{
	if (c->err == UPSTREAM_CANCELLED && !c->too_large && !c->sse_broken)
		return ROUTER_CANCELLED;
	if (c->hs)
		return c->err == UPSTREAM_TIMEOUT		? ROUTER_TIMEOUT
		       : c->err != UPSTREAM_OK || c->sse_broken ? ROUTER_BROKEN
								: ROUTER_OK;
	if (c->status_seen) {
		if (c->up_status == 429)
			return ROUTER_RATE_LIMITED;
		if (c->up_status >= 500)
			return ROUTER_SERVER_ERROR;
		if (c->up_status >= 400)
			return ROUTER_CLIENT_ERROR;
	}
	switch (c->err) {
	case UPSTREAM_OK:
		return c->status_seen ? ROUTER_OK : ROUTER_BROKEN;
	case UPSTREAM_CONNECT:
		return ROUTER_CONNECT;
	case UPSTREAM_TIMEOUT:
		return ROUTER_TIMEOUT;
	case UPSTREAM_INTERNAL:
		return ROUTER_CANCELLED; /* ours, not the provider's */
	default:
		return c->too_large ? ROUTER_OK : ROUTER_BROKEN;
	}
}

/* Forgets what the failed attempt left, before the next one. */
static void attempt_reset(struct dp_call *c)
{
	c->up_status = 0;
	c->status_seen = false;
	c->ctype[0] = '\0';
	c->retry_after[0] = '\0';
	c->len = 0;
	if (c->body)
		c->body[0] = '\0';
	c->too_large = false;
	c->err = UPSTREAM_OK;
	c->detail[0] = '\0';
}

/*
 * Submits the attempt to ch's provider; false (c->err says why) if it could not. first: the
 * call's first attempt, submitted by a listener (or verification) thread.
 */
static bool attempt_submit(struct dp_call *c, const struct router_choice *ch, int64_t now,
			   bool first)
{
	char url[sizeof(ch->prov->base_url) + 32];
	int64_t left_ms = (c->deadline_ns - now) / NS_PER_MS;
	uint32_t tmo = ch->prov->timeout_sec * 1000u;
	struct upstream_call uc = {.url = url,
				   .api_key = ch->prov->api_key,
				   .method = "POST",
				   .body = c->up_body,
				   .body_len = c->up_len,
				   /* the call holds it (request or up_owned) until it is freed,
				    * after every attempt's on_done */
				   .body_kept = true,
				   .timeout_ms = left_ms < (int64_t)tmo ? (uint32_t)left_ms : tmo,
				   .stream = c->stream,
				   .http2 = ch->prov->http == PROVIDER_HTTP_2,
				   .ca_file = ch->prov->ca_file,
				   .on_status = dp_up_on_status,
				   .on_data = dp_up_on_data,
				   .on_done = dp_up_on_done,
				   .ctx = c};
	uint64_t h = 0, zero = 0;
	struct upstream *up;
	int rc;

	c->choice = *ch;
	c->prov = ch->prov;
	c->price = ch->price;
	c->tried |= 1ULL << ch->idx;
	c->attempts++;
	c->attempt_ns = now;
	c->headers_ns = 0;
	snprintf(url, sizeof(url), "%s%s", ch->prov->base_url, c->up_path);
	up = dp_call_upstream(c);
	rc = upstream_submit(up, &uc, &h);
	if (rc) {
		router_report(c->dp->d.router, ch, ROUTER_CANCELLED, 0, 0, now);
		c->err = rc == -ESHUTDOWN ? UPSTREAM_CANCELLED : UPSTREAM_INTERNAL;
		snprintf(c->detail, sizeof(c->detail), "submit: %s", strerror(-rc));
		return false;
	}
	/*
	 * The first attempt is submitted by a listener thread and may be over (and followed by
	 * another, whose handle counts) before this line: only an unset handle is written then.
	 * (dp_call_submit holds a reference meanwhile, so c itself stays.)
	 */
	if (first) {
		atomic_compare_exchange_strong(&c->handle, &zero, h);
		return true;
	}
	atomic_store(&c->handle, h);
	/* the client may have left between the attempts, when there was nothing to cancel */
	if (atomic_load(&c->client_gone))
		upstream_cancel(up, h);
	return true;
}

bool dp_attempt(struct dp_call *c)
{
	struct router_choice ch;
	int64_t now = tg_now_mono_ns();
	char why[DP_ATTEMPTS_LOG];
	int rc = router_pick(c->dp->d.router, c->model, c->service, c->tried, now, &ch, why,
			     sizeof(why));

	if (rc) {
		/* nothing was sent anywhere: a 503 naming why each provider was passed over */
		log_add(c, "%s", rc == -ENOENT ? "no provider serves the model" : why);
		c->all_failed = true;
		c->err = UPSTREAM_CONNECT;
		return false;
	}
	return attempt_submit(c, &ch, now, true);
}

/* The attempt's outcome in the log of attempts: "a: status 503", "b: timeout". */
static void log_attempt(struct dp_call *c, enum router_outcome o)
{
	if (o == ROUTER_RATE_LIMITED || o == ROUTER_SERVER_ERROR)
		log_add(c, "%s: status %u", c->prov->name, c->up_status);
	else
		log_add(c, "%s: %s", c->prov->name, router_outcome_name(o));
}

/* Reports the attempt's end to the router and the metrics. */
static enum router_outcome attempt_report(struct dp_call *c, int64_t now)
{
	enum router_outcome o = attempt_outcome(c);
	int64_t lat = (c->headers_ns ? c->headers_ns : now) - c->attempt_ns;

	router_report(c->dp->d.router, &c->choice, o, lat, retry_after_sec(c->retry_after), now);
	if (c->headers_ns || o == ROUTER_TIMEOUT)
		metrics_provider_latency(c->prov->name, lat > 0 ? (uint64_t)lat : 0);
	if (router_outcome_retryable(o))
		metrics_provider_error(c->prov->name, router_outcome_name(o));
	return o;
}

bool dp_attempt_done(struct dp_call *c)
{
	const struct routing_cfg *cfg = router_cfg(c->dp->d.router);
	int64_t now = tg_now_mono_ns();
	enum router_outcome o = attempt_report(c, now);
	struct router_choice ch;
	char why[DP_ATTEMPTS_LOG], from[PROVIDER_NAME_MAX + 1];
	int rc;

	if (!router_outcome_retryable(o) || c->hs || c->write_failed ||
	    atomic_load(&c->client_gone))
		return false;
	log_attempt(c, o);
	if (c->attempts >= cfg->max_attempts ||
	    now + DP_ATTEMPT_MIN_MS * NS_PER_MS >= c->deadline_ns) {
		/* out of attempts or time: a 503 naming them if there were several */
		c->all_failed = c->attempts > 1;
		log_add(c, "%s",
			c->attempts >= cfg->max_attempts ? "routing.max_attempts reached"
							 : "routing.call_timeout_sec reached");
		return false;
	}
	rc = router_pick(c->dp->d.router, c->model, c->service, c->tried, now, &ch, why,
			 sizeof(why));
	if (rc) {
		c->all_failed = c->attempts > 1 || why[0];
		if (why[0])
			log_add(c, "%s", why);
		return false;
	}
	snprintf(from, sizeof(from), "%s", c->prov->name);
	log_debug("data: %s failed over from %s to %s, id=%s", c->model, from, ch.prov->name,
		  http_req_id(c->req));
	metrics_provider_failover(from, ch.prov->name);
	attempt_reset(c);
	if (attempt_submit(c, &ch, now, false))
		return true;
	c->all_failed = c->err != UPSTREAM_CANCELLED; /* else: shutting down */
	log_add(c, "%s: not sent (%s)", ch.prov->name, c->detail);
	return false;
}

void dp_route_headers(struct dp_call *c)
{
	char n[12];

	if (!c->attempts)
		return;
	snprintf(n, sizeof(n), "%u", c->attempts);
	http_add_header(c->req, "X-Tollgate-Provider", c->prov->name);
	http_add_header(c->req, "X-Tollgate-Attempts", n);
}

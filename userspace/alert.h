/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Limit alerts: when a subject's usage of a limit first crosses its alert threshold, or the
 * limit itself, in a window (the quota engine decides when; see budget_on_threshold), the
 * alert is logged, counted, and - with limits.webhook_url set - POSTed as JSON to that URL:
 *
 *   {"event":"limit_threshold"|"limit_exceeded","subject":"key:abc","limit":"cost_per_day",
 *    "value":10.0,"used":8.1,"ratio":0.81,"window_reset_at":"2026-11-24T00:00:00Z",
 *    "time":"2026-11-23T15:02:11Z"}
 *
 * alert_raise never blocks its caller: the event is copied into a bounded queue (when full
 * it is dropped and counted, tollgate_alert_webhooks_total{result="dropped"}), and one
 * delivery thread sends it through the upstream client (upstream_post_json): a 2xx answer
 * is delivered ({result="sent"}); anything else (no answer, timeout, another status) is
 * retried up to `retries` times with exponential backoff, then given up
 * ({result="failed"}, logged). Nothing secret goes into a payload or a log line: subjects
 * name keys by id, and the webhook URL (which may carry a token) is logged by host only.
 */
#ifndef TG_ALERT_H
#define TG_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALERT_SUBJECT_MAX 80 /* "tenant:" + 64, "key:" + id, ... */
#define ALERT_LIMIT_MAX	  40 /* a limit name, "compute_seconds_per_month" */

struct upstream;

enum alert_kind {
	ALERT_THRESHOLD = 0, /* usage crossed the alert threshold (event "limit_threshold") */
	ALERT_EXCEEDED,	     /* usage reached the limit (event "limit_exceeded") */
};

struct alert_event {
	enum alert_kind kind;
	char subject[ALERT_SUBJECT_MAX + 1]; /* "key:<id>", "team:ml", "tenant:acme" */
	char limit[ALERT_LIMIT_MAX + 1];     /* the limit's JSON name */
	double value;			     /* the limit, in its JSON unit (USD, tokens, s) */
	double used;			     /* usage in the window, same unit */
	double ratio;			     /* used / value */
	int64_t window_reset_at;	     /* Unix s the window resets; 0 = unknown (null) */
	int64_t time;			     /* Unix s of the crossing; 0 = when raised */
};

struct alert_opts {
	struct upstream *up;	 /* borrowed; NULL = no webhook (log and metric only) */
	const char *url;	 /* limits.webhook_url; NULL or "" = no webhook */
	unsigned retries;	 /* limits.webhook_retries: attempts after the first */
	unsigned timeout_ms;	 /* limits.webhook_timeout_ms: one attempt, default 2000 */
	unsigned backoff_ms;	 /* first retry after this, doubling, default 200 */
	unsigned backoff_max_ms; /* retry delays are capped here, default 30000 */
	unsigned queue_max;	 /* events waiting for delivery, default 1024 */
	unsigned inflight_max;	 /* deliveries at once (each with its retries), default 4 */
};

struct alerts;

/*
 * Starts the alerts (and the delivery thread when a webhook is set). NULL and errno:
 * EINVAL for a bad URL (logged with the reason) or a webhook without an upstream.
 */
struct alerts *alert_open(const struct alert_opts *o);
/*
 * Stops delivering: attempts in flight are cancelled (and their callbacks awaited), queued
 * events dropped (counted as dropped); later alert_raise calls only log and count. Call
 * before upstream_stop. Idempotent; accepts NULL.
 */
void alert_stop(struct alerts *a);
/* alert_stop, then frees: once nothing can call alert_raise any more. Accepts NULL. */
void alert_close(struct alerts *a);
/*
 * Raises one alert: logs it, counts it, queues its webhook. Never blocks (beyond a short
 * mutex); callable from any thread, the data plane's included. Accepts a NULL a (only
 * the log line then).
 */
void alert_raise(struct alerts *a, const struct alert_event *e);
/* The event name of the payload: "limit_threshold" or "limit_exceeded". */
const char *alert_kind_name(enum alert_kind k);
/*
 * Renders the webhook payload of e into a malloc'd NUL-terminated string (the caller
 * frees); NULL on allocation failure. now: Unix s used when e->time is 0.
 */
char *alert_payload(const struct alert_event *e, int64_t now);

struct budget_event;
/*
 * The limits engine's threshold hook (budget_on_threshold, arg: the alerts): raises the
 * event as an alert (amounts in their JSON units: USD, seconds, tokens, requests, bytes;
 * "used" counts what calls in flight reserved, as the ratio does) and keeps the highest
 * ratio per limit in tollgate_budget_usage_ratio.
 */
void alert_budget_hook(const struct budget_event *ev, void *arg);

struct alert_stats {
	uint64_t raised, sent, failed, dropped, attempts;
};
/* Counters since alert_open, for tests and status. */
void alert_stats(struct alerts *a, struct alert_stats *out);

#endif /* TG_ALERT_H */

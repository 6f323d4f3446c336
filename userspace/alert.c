/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Limit alerts (see alert.h). alert_raise logs, counts and appends a copy of the event to a
 * bounded FIFO under a mutex, then signals; it never waits for I/O. One delivery thread
 * moves events from the FIFO into a few delivery slots (inflight_max): a slot holds the
 * rendered payload, the attempts made and when the next one is due, and is in one of
 * three states: WAIT (due at due_ns), SENDING (an upstream_post_json in flight; its
 * callback, on the upstream thread, stores the answer and sets ANSWERED) and ANSWERED
 * (the thread decides: delivered, retry later, or give up). Backoff between attempts
 * doubles from backoff_ms up to backoff_max_ms. The thread sleeps on a monotonic condition
 * variable until the next due attempt or a signal; there is no polling.
 *
 * Ordering: one slot per event; with inflight_max > 1 and retries, events of different
 * subjects may arrive out of order (each carries its own time).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "alert.h"
#include "budget.h"
#include "log.h"
#include "metrics.h"
#include "upstream.h"
#include "util.h"

#define ALERT_TIMEOUT_DEF     2000
#define ALERT_BACKOFF_DEF     200
#define ALERT_BACKOFF_MAX_DEF 30000
#define ALERT_QUEUE_DEF	      1024
#define ALERT_INFLIGHT_DEF    4
#define ALERT_HOST_MAX	      128

enum slot_state {
	SLOT_FREE = 0,
	SLOT_WAIT,     /* next attempt at due_ns */
	SLOT_SENDING,  /* an attempt in flight */
	SLOT_ANSWERED, /* the attempt ended: status, err */
};

struct alert_item {
	struct alert_item *next;
	struct alert_event e;
};

struct alert_slot {
	struct alerts *a;
	enum slot_state state;
	char *payload;
	size_t len;
	unsigned attempts; /* made so far */
	int64_t due_ns;
	uint64_t handle; /* of the attempt in flight, for a cancel at close */
	unsigned status;
	enum upstream_err err;
	char subject[ALERT_SUBJECT_MAX + 1];
	char limit[ALERT_LIMIT_MAX + 1];
};

struct alerts {
	struct upstream *up;
	char *url;		   /* NULL: no webhook */
	char host[ALERT_HOST_MAX]; /* what logs show of the URL */
	unsigned retries, timeout_ms, backoff_ms, backoff_max_ms, queue_max, inflight_max;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* monotonic; the thread's wake-up, and close's wait */
	struct alert_item *head, *tail;
	unsigned queued;
	struct alert_slot *slots;
	unsigned sending; /* slots in SENDING */
	bool stopping;
	bool stopped; /* alert_stop is done */
	bool thread_started;
	pthread_t thread;
	_Atomic uint64_t raised, sent, failed, dropped, attempts;
};

const char *alert_kind_name(enum alert_kind k)
{
	return k == ALERT_EXCEEDED ? "limit_exceeded" : "limit_threshold";
}

char *alert_payload(const struct alert_event *e, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	char when[32], *text = NULL;
	bool ok = o != NULL;

	ok = ok && cJSON_AddStringToObject(o, "event", alert_kind_name(e->kind));
	ok = ok && cJSON_AddStringToObject(o, "subject", e->subject);
	ok = ok && cJSON_AddStringToObject(o, "limit", e->limit);
	ok = ok && cJSON_AddNumberToObject(o, "value", e->value);
	ok = ok && cJSON_AddNumberToObject(o, "used", e->used);
	ok = ok && cJSON_AddNumberToObject(o, "ratio", e->ratio);
	if (ok && e->window_reset_at > 0) {
		tg_rfc3339_format(e->window_reset_at, when);
		ok = cJSON_AddStringToObject(o, "window_reset_at", when) != NULL;
	} else if (ok) {
		ok = cJSON_AddNullToObject(o, "window_reset_at") != NULL;
	}
	tg_rfc3339_format(e->time ? e->time : now, when);
	ok = ok && cJSON_AddStringToObject(o, "time", when);
	if (ok)
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* The delay before attempt n + 1 (n >= 1 attempts made): base, doubling, capped. */
static unsigned alert_backoff(const struct alerts *a, unsigned n)
{
	uint64_t d = a->backoff_ms;

	for (unsigned i = 1; i < n && d < a->backoff_max_ms; i++)
		d *= 2;
	return d < a->backoff_max_ms ? (unsigned)d : a->backoff_max_ms;
}

/* --- the delivery thread --- */

/* The upstream's answer to an attempt (upstream thread). */
static void slot_answered(void *ctx, unsigned status, enum upstream_err err)
{
	struct alert_slot *s = ctx;
	struct alerts *a = s->a;

	pthread_mutex_lock(&a->mu);
	s->status = status;
	s->err = err;
	s->state = SLOT_ANSWERED;
	a->sending--;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

static void slot_free(struct alert_slot *s)
{
	free(s->payload);
	s->payload = NULL;
	s->state = SLOT_FREE;
}

/* Takes the queue's head into free slots. Holds a->mu. */
static void slots_fill(struct alerts *a, int64_t now)
{
	for (unsigned i = 0; i < a->inflight_max && a->head; i++) {
		struct alert_slot *s = &a->slots[i];
		struct alert_item *it;

		if (s->state != SLOT_FREE)
			continue;
		it = a->head;
		a->head = it->next;
		if (!a->head)
			a->tail = NULL;
		a->queued--;
		s->payload = alert_payload(&it->e, tg_now_unix());
		if (!s->payload) {
			atomic_fetch_add(&a->dropped, 1);
			metrics_alert_webhook("dropped");
			log_warnx("alert: out of memory, webhook of %s %s dropped", it->e.subject,
				  it->e.limit);
		} else {
			s->len = strlen(s->payload);
			s->attempts = 0;
			s->due_ns = now;
			s->state = SLOT_WAIT;
			memcpy(s->subject, it->e.subject, sizeof(s->subject));
			memcpy(s->limit, it->e.limit, sizeof(s->limit));
		}
		free(it);
	}
}

/* What an attempt's failure was, for the log. */
static void attempt_reason(const struct alert_slot *s, char *buf, size_t len)
{
	if (s->err == UPSTREAM_OK || s->status)
		snprintf(buf, len, "HTTP status %u", s->status);
	else
		snprintf(buf, len, "%s", upstream_err_name(s->err));
}

/* Decides on an answered attempt: delivered, retry later, or give up. Holds a->mu. */
static void slot_decide(struct alerts *a, struct alert_slot *s, int64_t now)
{
	char why[48];

	if (s->err == UPSTREAM_OK && s->status >= 200 && s->status < 300) {
		atomic_fetch_add(&a->sent, 1);
		metrics_alert_webhook("sent");
		log_debug("alert: webhook of %s %s delivered to %s", s->subject, s->limit, a->host);
		slot_free(s);
		return;
	}
	attempt_reason(s, why, sizeof(why));
	if (s->attempts > a->retries || a->stopping) {
		atomic_fetch_add(&a->failed, 1);
		metrics_alert_webhook("failed");
		log_warnx("alert: webhook of %s %s to %s failed after %u attempts (last: %s)",
			  s->subject, s->limit, a->host, s->attempts, why);
		slot_free(s);
		return;
	}
	s->due_ns = now + (int64_t)alert_backoff(a, s->attempts) * 1000000;
	s->state = SLOT_WAIT;
	log_info("alert: webhook of %s %s to %s: %s, retry %u of %u in %u ms", s->subject, s->limit,
		 a->host, why, s->attempts, a->retries, alert_backoff(a, s->attempts));
}

/* Starts an attempt of a due slot; drops a->mu around the submit. */
static void slot_send(struct alerts *a, struct alert_slot *s)
{
	uint64_t h = 0;
	int rc;

	s->state = SLOT_SENDING;
	s->attempts++;
	a->sending++;
	atomic_fetch_add(&a->attempts, 1);
	pthread_mutex_unlock(&a->mu);
	rc = upstream_post_json(a->up, a->url, s->payload, s->len, a->timeout_ms, slot_answered, s,
				&h);
	pthread_mutex_lock(&a->mu);
	if (rc) {
		/* counted as a failed attempt: retried like a refused connection */
		s->status = 0;
		s->err = UPSTREAM_INTERNAL;
		s->state = SLOT_ANSWERED;
		a->sending--;
	} else if (s->state == SLOT_SENDING) {
		s->handle = h; /* else the answer came already */
	}
}

/* One pass over the slots; returns the next due time (0: none waiting). Holds a->mu. */
static int64_t slots_run(struct alerts *a)
{
	int64_t now = tg_now_mono_ns(), next = 0;
	bool again = true;

	while (again) {
		again = false;
		slots_fill(a, now);
		for (unsigned i = 0; i < a->inflight_max; i++) {
			struct alert_slot *s = &a->slots[i];

			if (s->state == SLOT_ANSWERED) {
				slot_decide(a, s, now);
				again = again || s->state == SLOT_FREE;
			}
			if (s->state == SLOT_WAIT && s->due_ns <= now && !a->stopping) {
				slot_send(a, s);
				again = true; /* the lock was dropped: look again */
			}
		}
		now = tg_now_mono_ns();
	}
	for (unsigned i = 0; i < a->inflight_max; i++)
		if (a->slots[i].state == SLOT_WAIT && (!next || a->slots[i].due_ns < next))
			next = a->slots[i].due_ns;
	return next;
}

static void cond_wait_until(struct alerts *a, int64_t due_ns)
{
	struct timespec ts;

	if (!due_ns) {
		pthread_cond_wait(&a->cv, &a->mu);
		return;
	}
	ts.tv_sec = (time_t)(due_ns / 1000000000);
	ts.tv_nsec = (long)(due_ns % 1000000000);
	pthread_cond_timedwait(&a->cv, &a->mu, &ts);
}

static void *alert_main(void *arg)
{
	struct alerts *a = arg;

	pthread_mutex_lock(&a->mu);
	while (!a->stopping) {
		int64_t next = slots_run(a);

		/* everything due was done under the lock: a raise or an answer signals */
		if (!a->stopping)
			cond_wait_until(a, next);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* --- the API --- */

void alert_raise(struct alerts *a, const struct alert_event *e)
{
	struct alert_item *it;
	bool queued = false;

	log_warnx("alert: %s: %s %s used %.6g of %.6g (ratio %.3f)", alert_kind_name(e->kind),
		  e->subject, e->limit, e->used, e->value, e->ratio);
	if (!a)
		return;
	atomic_fetch_add(&a->raised, 1);
	if (!a->url)
		return;
	it = malloc(sizeof(*it));
	pthread_mutex_lock(&a->mu);
	if (it && !a->stopping && a->queued < a->queue_max) {
		it->e = *e;
		it->e.subject[ALERT_SUBJECT_MAX] = '\0';
		it->e.limit[ALERT_LIMIT_MAX] = '\0';
		if (!it->e.time)
			it->e.time = tg_now_unix();
		it->next = NULL;
		if (a->tail)
			a->tail->next = it;
		else
			a->head = it;
		a->tail = it;
		a->queued++;
		queued = true;
		pthread_cond_broadcast(&a->cv);
	}
	pthread_mutex_unlock(&a->mu);
	if (queued)
		return;
	free(it);
	atomic_fetch_add(&a->dropped, 1);
	metrics_alert_webhook("dropped");
	log_warnx("alert: webhook queue full (%u events), webhook of %s %s dropped", a->queue_max,
		  e->subject, e->limit);
}

/* scheme://host[:port] of the URL, for logs: its path or query may hold a token. */
static void url_host(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://"), *end, *at;

	p = p ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1; /* user:password@ stays out */
	snprintf(out, len, "%.*s", (int)(end - p), p);
}

static void alert_free(struct alerts *a)
{
	struct alert_item *it;

	while ((it = a->head)) {
		a->head = it->next;
		free(it);
	}
	for (unsigned i = 0; a->slots && i < a->inflight_max; i++)
		free(a->slots[i].payload);
	free(a->slots);
	free(a->url);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static void alert_set_opts(struct alerts *a, const struct alert_opts *o)
{
	a->up = o->up;
	a->retries = o->retries;
	a->timeout_ms = o->timeout_ms ? o->timeout_ms : ALERT_TIMEOUT_DEF;
	a->backoff_ms = o->backoff_ms ? o->backoff_ms : ALERT_BACKOFF_DEF;
	a->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : ALERT_BACKOFF_MAX_DEF;
	if (a->backoff_max_ms < a->backoff_ms)
		a->backoff_max_ms = a->backoff_ms;
	a->queue_max = o->queue_max ? o->queue_max : ALERT_QUEUE_DEF;
	a->inflight_max = o->inflight_max ? o->inflight_max : ALERT_INFLIGHT_DEF;
}

/* The webhook part of alert_open: URL check, slots, thread. 0 or -errno. */
static int alert_webhook_start(struct alerts *a, const char *url)
{
	char why[96];
	int err = upstream_url_check(url, why, sizeof(why));

	url_host(url, a->host, sizeof(a->host));
	if (err) {
		log_warnx("alert: limits.webhook_url (host %s): %s", a->host, why);
		return err;
	}
	if (!a->up) {
		log_warnx("alert: a webhook needs the upstream client");
		return -EINVAL;
	}
	a->url = strdup(url);
	a->slots = calloc(a->inflight_max, sizeof(*a->slots));
	if (!a->url || !a->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < a->inflight_max; i++)
		a->slots[i].a = a;
	err = -pthread_create(&a->thread, NULL, alert_main, a);
	a->thread_started = err == 0;
	return err;
}

struct alerts *alert_open(const struct alert_opts *o)
{
	struct alerts *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return NULL;
	if (pthread_mutex_init(&a->mu, NULL)) {
		free(a);
		errno = ENOMEM;
		return NULL;
	}
	err = tg_cond_init_mono(&a->cv);
	if (err) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		errno = -err;
		return NULL;
	}
	alert_set_opts(a, o);
	if (o->url && o->url[0]) {
		err = alert_webhook_start(a, o->url);
		if (err) {
			alert_free(a);
			errno = -err;
			return NULL;
		}
		log_info("alert: webhook to %s (%u retries, %u ms timeout)", a->host, a->retries,
			 a->timeout_ms);
	}
	return a;
}

/* Cancels the attempts in flight and waits for their callbacks. Holds a->mu. */
static void alert_drain(struct alerts *a)
{
	for (unsigned i = 0; i < a->inflight_max; i++)
		if (a->slots[i].state == SLOT_SENDING && a->slots[i].handle)
			upstream_cancel(a->up, a->slots[i].handle);
	/* exactly one callback follows every submitted attempt (upstream.h) */
	while (a->sending)
		pthread_cond_wait(&a->cv, &a->mu);
}

void alert_stop(struct alerts *a)
{
	unsigned left = 0;

	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	if (a->stopped) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	a->stopping = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	a->thread_started = false;
	pthread_mutex_lock(&a->mu);
	if (a->slots)
		alert_drain(a);
	left = a->queued;
	for (unsigned i = 0; a->slots && i < a->inflight_max; i++) {
		/* an answer that came during the drain still counts as delivered or failed */
		if (a->slots[i].state == SLOT_ANSWERED)
			slot_decide(a, &a->slots[i], tg_now_mono_ns());
		left += a->slots[i].state != SLOT_FREE;
		slot_free(&a->slots[i]);
	}
	while (a->head) {
		struct alert_item *it = a->head;

		a->head = it->next;
		free(it);
	}
	a->tail = NULL;
	a->queued = 0;
	a->stopped = true;
	pthread_mutex_unlock(&a->mu);
	if (left) {
		atomic_fetch_add(&a->dropped, left);
		for (unsigned i = 0; i < left; i++)
			metrics_alert_webhook("dropped");
		log_warnx("alert: stopping: %u webhooks not delivered", left);
	}
}

void alert_close(struct alerts *a)
{
	if (!a)
		return;
	alert_stop(a);
	alert_free(a);
}

/* An engine amount in its JSON unit (contract: USD, seconds; the rest as counted). */
static double json_amount(enum budget_kind k, uint64_t v)
{
	if (k == BUDGET_KIND_COST)
		return (double)v / 1e9;
	if (k == BUDGET_KIND_COMPUTE)
		return (double)v / 1e3;
	return (double)v;
}

void alert_budget_hook(const struct budget_event *ev, void *arg)
{
	const struct budget_hit *h = &ev->hit;
	struct alert_event e = {.kind = ev->exceeded ? ALERT_EXCEEDED : ALERT_THRESHOLD,
				.value = json_amount(h->kind, h->value),
				.used = json_amount(h->kind, h->used + h->reserved),
				.ratio = ev->ratio,
				.window_reset_at = h->reset_at,
				.time = ev->time};

	snprintf(e.subject, sizeof(e.subject), "%s", h->subject);
	snprintf(e.limit, sizeof(e.limit), "%s", limit_descs[h->limit].name);
	metrics_budget_ratio(e.limit, ev->ratio);
	alert_raise(arg, &e);
}

void alert_stats(struct alerts *a, struct alert_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!a)
		return;
	out->raised = atomic_load(&a->raised);
	out->sent = atomic_load(&a->sent);
	out->failed = atomic_load(&a->failed);
	out->dropped = atomic_load(&a->dropped);
	out->attempts = atomic_load(&a->attempts);
}

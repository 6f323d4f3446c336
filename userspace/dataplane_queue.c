/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The data plane's queue: the `queue` enforcement action. A request over a limit whose
 * action is queue is parked instead of refused: deferred (http_defer: its connection is
 * suspended, no thread held) into a FIFO of its key, with a deadline (queue_timeout_ms).
 * When capacity frees (the quota engine's release hook calls dp_queue_kick) and every
 * DPQ_RETRY_MS anyway (rate windows and rolling windows free capacity with time, which no
 * release reports), the heads of the FIFOs are retried in order: the retry function runs
 * the request's limit check again and either proceeds (forwards the call, which adopts the
 * request), answers, or says "still no capacity" - then that head stays first and the
 * waiters behind it keep waiting (FIFO per key: no overtaking). A waiter whose deadline
 * passed gets a last retry that must answer: proceed if capacity came just then, else a
 * 429 saying it waited. At most queue_depth waiters per key: the next one is refused at
 * once by the caller (dp_queue_park says -EBUSY). A client that goes away while parked is
 * noticed within DPQ_GONE_MS (http_req_client_gone) and dropped.
 *
 * One thread runs every retry, expiry and disconnect check (no thread per waiter); it is
 * the only one that removes waiters, so it may drop the lock while a retry runs on the
 * head it holds. Parking only appends to a FIFO's tail under the lock.
 *
 * The FIFO and deadline bookkeeping (dpq_*) is pure, for unit tests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane_internal.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define DPQ_BUCKETS  256 /* FIFO hash buckets (a power of two) */
#define DPQ_RETRY_MS 50	 /* heads are retried at least this often while anyone waits */
#define DPQ_GONE_MS  200 /* parked clients are checked for a closed connection this often */

/* ---- the pure part: FIFOs per key, deadlines ---- */

static size_t dpq_bucket(const struct dpq *q, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return (size_t)h & (q->nbuckets - 1);
}

int dpq_init(struct dpq *q, unsigned depth_max)
{
	memset(q, 0, sizeof(*q));
	q->nbuckets = DPQ_BUCKETS;
	q->depth_max = depth_max;
	q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
	return q->buckets ? 0 : -ENOMEM;
}

void dpq_fini(struct dpq *q)
{
	for (size_t i = 0; q->buckets && i < q->nbuckets; i++) {
		while (q->buckets[i]) {
			struct dpq_fifo *f = q->buckets[i];

			q->buckets[i] = f->hnext;
			free(f);
		}
	}
	free(q->buckets);
	q->buckets = NULL;
}

struct dpq_fifo *dpq_fifo(struct dpq *q, const char *key)
{
	struct dpq_fifo *f = q->buckets[dpq_bucket(q, key)];

	while (f && strcmp(f->key, key) != 0)
		f = f->hnext;
	return f;
}

int dpq_push(struct dpq *q, const char *key, struct dpq_waiter *w, int64_t now_ns,
	     int64_t deadline_ns)
{
	struct dpq_fifo *f = dpq_fifo(q, key);
	size_t b;

	if (f && f->depth >= q->depth_max)
		return -EBUSY;
	if (!f) {
		if (q->depth_max == 0 || strlen(key) >= sizeof(f->key))
			return q->depth_max == 0 ? -EBUSY : -EINVAL;
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		snprintf(f->key, sizeof(f->key), "%s", key);
		b = dpq_bucket(q, key);
		f->hnext = q->buckets[b];
		q->buckets[b] = f;
		q->nfifos++;
	}
	w->fifo = f;
	w->parked_ns = now_ns;
	w->deadline_ns = deadline_ns;
	w->next = NULL;
	w->prev = f->tail;
	if (f->tail)
		f->tail->next = w;
	else
		f->head = w;
	f->tail = w;
	f->depth++;
	q->nwaiters++;
	return 0;
}

/* Unlinks an empty FIFO from its bucket and frees it. */
static void dpq_fifo_drop(struct dpq *q, struct dpq_fifo *f)
{
	struct dpq_fifo **pp = &q->buckets[dpq_bucket(q, f->key)];

	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	q->nfifos--;
	free(f);
}

void dpq_remove(struct dpq *q, struct dpq_waiter *w)
{
	struct dpq_fifo *f = w->fifo;

	if (!f)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		f->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		f->tail = w->prev;
	w->next = w->prev = NULL;
	w->fifo = NULL;
	q->nwaiters--;
	if (--f->depth == 0)
		dpq_fifo_drop(q, f);
}

struct dpq_waiter *dpq_expired(const struct dpq *q, int64_t now_ns)
{
	for (size_t i = 0; i < q->nbuckets; i++)
		for (struct dpq_fifo *f = q->buckets[i]; f; f = f->hnext)
			for (struct dpq_waiter *w = f->head; w; w = w->next)
				if (w->deadline_ns <= now_ns)
					return w;
	return NULL;
}

int64_t dpq_next_deadline(const struct dpq *q)
{
	int64_t next = 0;

	for (size_t i = 0; i < q->nbuckets; i++)
		for (struct dpq_fifo *f = q->buckets[i]; f; f = f->hnext)
			for (struct dpq_waiter *w = f->head; w; w = w->next)
				if (!next || w->deadline_ns < next)
					next = w->deadline_ns;
	return next;
}

/* ---- parked requests ---- */

struct dp_parked {
	struct dpq_waiter w; /* first: a waiter is its parked request */
	struct dp_req q;     /* as the handler left it; q.deferred: we hold the reference */
	dp_queue_retry_fn retry;
};

static struct dp_parked *parked_of(struct dpq_waiter *w)
{
	return (struct dp_parked *)w;
}

/* The request leaves the queue: drops the reference unless a forwarded call adopted it. */
static void parked_free(struct dp_parked *p)
{
	if (p->q.deferred)
		http_req_release(p->q.req);
	explicit_bzero(&p->q.auth, sizeof(p->q.auth));
	free(p);
}

int64_t dp_queue_waited_ms(const struct dp_req *q)
{
	int64_t ns = q->queued_ns ? tg_now_mono_ns() - q->queued_ns : 0;

	return ns > 0 ? ns / 1000000 : 0;
}

int dp_queue_park(struct dp_req *q, unsigned timeout_ms, dp_queue_retry_fn retry)
{
	struct dp_queue *dq = &q->dp->queue;
	struct dp_parked *p;
	int64_t now = tg_now_mono_ns();
	bool adopted = q->deferred;
	int rc;

	if (!retry || !dq->ready)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	rc = adopted ? 0 : http_defer(q->req);
	if (rc) {
		free(p);
		return rc;
	}
	p->q = *q;
	p->q.deferred = true;
	p->q.queued_ns = q->queued_ns ? q->queued_ns : now;
	p->retry = retry;
	pthread_mutex_lock(&dq->mu);
	rc = dq->stopping
		 ? -ESHUTDOWN
		 : dpq_push(&dq->q, q->auth.id, &p->w, now, now + (int64_t)timeout_ms * 1000000);
	if (!rc) {
		atomic_store(&dq->nwaiters, dq->q.nwaiters);
		pthread_cond_broadcast(&dq->cv); /* the thread may need an earlier wake-up */
	}
	pthread_mutex_unlock(&dq->mu);
	if (!rc) {
		q->deferred = false; /* the queue holds the reference now */
		metrics_enforcement("queue");
		return 0;
	}
	/* not parked: the caller answers (synchronously, or through the deferral it had) */
	if (!adopted)
		http_req_release(q->req);
	explicit_bzero(&p->q.auth, sizeof(p->q.auth));
	free(p);
	return rc;
}

void dp_queue_kick(struct dataplane *dp, const char *key)
{
	struct dp_queue *dq = &dp->queue;
	struct dpq_fifo *f;

	/* the common case, nobody waiting, costs one atomic load */
	if (!dq->ready || atomic_load(&dq->nwaiters) == 0)
		return;
	pthread_mutex_lock(&dq->mu);
	f = key ? dpq_fifo(&dq->q, key) : NULL;
	if (f)
		f->kicked = true;
	if (f || !key) {
		dq->kicked = true;
		pthread_cond_broadcast(&dq->cv);
	}
	pthread_mutex_unlock(&dq->mu);
}

void dp_queue_on_release(const char *const *subjects, unsigned n, void *arg)
{
	struct dataplane *dp = arg;

	for (unsigned i = 0; i < n; i++) {
		/* an owner's or tenant's capacity may let any key's waiter go */
		bool key = strncmp(subjects[i], "key:", 4) == 0;

		dp_queue_kick(dp, key ? subjects[i] + 4 : NULL);
	}
}

/* ---- the queue thread ---- */

/* Runs a parked request's retry without the lock (the thread alone removes waiters). */
static enum dp_queue_verdict parked_retry(struct dp_queue *dq, struct dp_parked *p, bool last)
{
	enum dp_queue_verdict v;

	pthread_mutex_unlock(&dq->mu);
	p->q.queue_last = last;
	v = p->retry(&p->q, last);
	if (last && v == DP_QUEUE_WAIT)
		v = DP_QUEUE_ANSWERED; /* a last retry must answer; it said it did not */
	pthread_mutex_lock(&dq->mu);
	return v;
}

/* Removes and frees a waiter the thread is done with. Holds dq->mu. */
static void parked_done(struct dp_queue *dq, struct dp_parked *p)
{
	dpq_remove(&dq->q, &p->w);
	atomic_store(&dq->nwaiters, dq->q.nwaiters);
	parked_free(p);
}

/* Gives the expired waiters their last retry. Holds dq->mu. */
static void queue_expire(struct dp_queue *dq, int64_t now)
{
	struct dpq_waiter *w;

	while ((w = dpq_expired(&dq->q, now))) {
		struct dp_parked *p = parked_of(w);

		if (parked_retry(dq, p, true) == DP_QUEUE_ANSWERED)
			metrics_enforcement("queue_timeout");
		parked_done(dq, p);
	}
}

/*
 * Retries one FIFO's heads in order until one still has to wait. Holds dq->mu; f stays
 * valid across the dropped lock (only this thread frees FIFOs) until its last waiter goes.
 */
static void fifo_retry(struct dp_queue *dq, struct dpq_fifo *f)
{
	f->kicked = false;
	for (;;) {
		struct dp_parked *p = parked_of(f->head);
		bool last_one;

		if (parked_retry(dq, p, false) == DP_QUEUE_WAIT)
			return;
		last_one = f->depth == 1; /* after the retry: parks may have come meanwhile */
		parked_done(dq, p);
		if (last_one)
			return; /* f is freed */
	}
}

/* Retries the heads of every FIFO (all: a sweep) or of the kicked ones. Holds dq->mu. */
static void queue_retry(struct dp_queue *dq, bool all)
{
	for (size_t i = 0; i < dq->q.nbuckets; i++) {
		struct dpq_fifo *f = dq->q.buckets[i], *next;

		/* parks add FIFOs at a chain's head, never after f; only fifo_retry frees f */
		for (; f; f = next) {
			next = f->hnext;
			if (all || f->kicked)
				fifo_retry(dq, f);
		}
	}
}

/* Drops the waiters whose clients went away. Holds dq->mu. */
static void queue_drop_gone(struct dp_queue *dq)
{
	for (size_t i = 0; i < dq->q.nbuckets; i++) {
		struct dpq_fifo *f = dq->q.buckets[i], *fnext;

		for (; f; f = fnext) {
			struct dpq_waiter *w = f->head, *wnext;

			fnext = f->hnext; /* read before a removal may free f */
			for (; w; w = wnext) {
				struct dp_parked *p = parked_of(w);

				wnext = w->next;
				if (!http_req_client_gone(p->q.req))
					continue;
				log_debug("data: queued request of key %s: client gone, id=%s",
					  p->q.auth.id, http_req_id(p->q.req));
				/* answered to end it: the library finds the closed socket */
				http_reply_error(p->q.req, 499, "invalid_request_error",
						 "client_closed_request", NULL, "client went away");
				parked_done(dq, p);
			}
		}
	}
}

static void queue_wait(struct dp_queue *dq, int64_t now)
{
	int64_t due = dpq_next_deadline(&dq->q);
	int64_t poll = now + (int64_t)DPQ_RETRY_MS * 1000000;
	struct timespec ts;

	if (!dq->q.nwaiters) {
		pthread_cond_wait(&dq->cv, &dq->mu);
		return;
	}
	if (!due || due > poll)
		due = poll;
	ts.tv_sec = (time_t)(due / 1000000000);
	ts.tv_nsec = (long)(due % 1000000000);
	pthread_cond_timedwait(&dq->cv, &dq->mu, &ts);
}

static void *queue_main(void *arg)
{
	struct dp_queue *dq = arg;
	int64_t next_sweep = 0, next_gone = 0;

	pthread_mutex_lock(&dq->mu);
	while (!dq->stopping) {
		int64_t now = tg_now_mono_ns();
		bool sweep = now >= next_sweep;

		queue_expire(dq, now);
		if (sweep || dq->kicked) {
			dq->kicked = false;
			queue_retry(dq, sweep);
			if (sweep)
				next_sweep = now + (int64_t)DPQ_RETRY_MS * 1000000;
		}
		if (now >= next_gone) {
			queue_drop_gone(dq);
			next_gone = now + (int64_t)DPQ_GONE_MS * 1000000;
		}
		if (!dq->stopping && !dq->kicked)
			queue_wait(dq, tg_now_mono_ns());
	}
	pthread_mutex_unlock(&dq->mu);
	return NULL;
}

/* ---- lifecycle ---- */

int dp_queue_start(struct dataplane *dp, unsigned depth_max)
{
	struct dp_queue *dq = &dp->queue;
	int rc = dpq_init(&dq->q, depth_max);

	if (rc)
		return rc;
	if (pthread_mutex_init(&dq->mu, NULL)) {
		dpq_fini(&dq->q);
		return -ENOMEM;
	}
	rc = tg_cond_init_mono(&dq->cv);
	if (!rc)
		rc = -pthread_create(&dq->thread, NULL, queue_main, dq);
	if (rc) {
		pthread_mutex_destroy(&dq->mu);
		dpq_fini(&dq->q);
		return rc;
	}
	atomic_init(&dq->nwaiters, 0);
	dq->ready = true;
	return 0;
}

/* Answers every waiter 503 (the gateway stops). Holds dq->mu; the thread is gone. */
static void queue_flush(struct dp_queue *dq)
{
	for (size_t i = 0; i < dq->q.nbuckets; i++) {
		while (dq->q.buckets[i]) {
			struct dp_parked *p = parked_of(dq->q.buckets[i]->head);

			http_reply_error(p->q.req, 503, "server_error", "shutting_down", NULL,
					 "the gateway is shutting down; retry");
			parked_done(dq, p);
		}
	}
}

void dp_queue_stop(struct dataplane *dp)
{
	struct dp_queue *dq = &dp->queue;

	if (!dq->ready || dq->stopped)
		return;
	pthread_mutex_lock(&dq->mu);
	dq->stopping = true;
	pthread_cond_broadcast(&dq->cv);
	pthread_mutex_unlock(&dq->mu);
	pthread_join(dq->thread, NULL);
	pthread_mutex_lock(&dq->mu);
	queue_flush(dq);
	pthread_mutex_unlock(&dq->mu);
	dq->stopped = true;
}

void dp_queue_close(struct dataplane *dp)
{
	struct dp_queue *dq = &dp->queue;

	if (!dq->ready)
		return;
	dp_queue_stop(dp);
	dq->ready = false;
	pthread_cond_destroy(&dq->cv);
	pthread_mutex_destroy(&dq->mu);
	dpq_fini(&dq->q);
}

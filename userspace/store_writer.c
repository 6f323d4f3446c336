/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store's group-commit writer (see store.h). Appenders copy records into nodes linked in
 * sequence order; the writer thread detaches up to max_batch of them, writes them in one
 * transaction with MDB_APPEND (keys only grow, so pages fill completely), runs the batch hook
 * in the same transaction, and on success frees them and publishes the batch's last sequence.
 * On failure the batch goes back to the head of the queue and is retried after a backoff, so
 * a transient error (a full disk freed later, a hook that could not allocate) loses nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"
#include "store_internal.h"
#include "util.h"

#define WRITER_REC_MAX	      4096
#define WRITER_BACKOFF_MIN_NS 10000000LL   /* 10 ms */
#define WRITER_BACKOFF_MAX_NS 1000000000LL /* 1 s */
#define WRITER_STOP_ATTEMPTS  5		   /* failed commits while stopping before giving up */

/* Batches committed by any writer: for tests/unit/test_store.c only, not part of store.h. */
atomic_ulong store_writer_debug_batches;

struct wrec {
	struct wrec *next;
	uint64_t seq;
	int64_t queued_ns; /* CLOCK_MONOTONIC when appended */
	size_t len;
	unsigned char data[];
};

struct store_writer {
	struct store *s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work;	  /* to the writer thread: first record, full batch, or stop */
	pthread_cond_t room;	  /* to appenders: nheld went below queue_cap, or stop */
	pthread_cond_t done;	  /* to waiters: committed advanced, a commit failed, or exit */
	struct wrec *head, *tail; /* queued, not yet in a batch */
	size_t nqueued;		  /* records in head..tail */
	size_t nheld;		  /* queued plus the batch being written: at most queue_cap */
	uint64_t next_seq;
	_Atomic uint64_t committed;
	int err; /* of the last failed commit; 0 after a success */
	bool stopping;
	bool exited;
	unsigned max_batch, max_delay_us, queue_cap;
	int (*on_batch)(struct store_txn *t, const void *const *recs, const size_t *lens, size_t n,
			void *arg);
	void *on_batch_arg;
	store_commit_fn on_commit; /* under mu; called without it, on the writer thread */
	void *on_commit_arg;
	unsigned notifying; /* on_commit calls running (store_writer_on_commit waits for 0) */
	bool committing;    /* a batch is being written, by the thread or an appender */
};

struct wbatch {
	const struct store_writer *w;
	struct wrec *first, *last;
	size_t n;
};

/* Hands the batch's records to the writer's hook, in the transaction that put them. */
static int batch_hook(struct store_txn *t, const struct wbatch *b)
{
	const struct store_writer *w = b->w;
	const struct wrec *r = b->first;
	const void **recs = malloc(b->n * sizeof(*recs));
	size_t *lens = malloc(b->n * sizeof(*lens));
	int rc = -ENOMEM;

	if (!recs || !lens)
		goto out;
	for (size_t i = 0; i < b->n; i++, r = r->next) {
		recs[i] = r->data;
		lens[i] = r->len;
	}
	rc = w->on_batch(t, recs, lens, b->n, w->on_batch_arg);
	rc = rc < 0 ? rc : 0;
out:
	free(lens);
	free(recs);
	return rc;
}

static int batch_txn(struct store_txn *t, void *arg)
{
	const struct wbatch *b = arg;
	const struct wrec *r = b->first;
	MDB_dbi dbi = t->s->dbi[STORE_DB_USAGE];

	for (size_t i = 0; i < b->n; i++, r = r->next) {
		uint8_t key[8];
		MDB_val k = {sizeof(key), key}, v = {r->len, (void *)r->data};
		int rc;

		codec_be_put(key, r->seq, 8);
		rc = mdb_put(t->txn, dbi, &k, &v, MDB_APPEND);
		if (rc)
			return store_err(t->s, t, rc, "append usage");
	}
	return b->w->on_batch ? batch_hook(t, b) : 0;
}

static void timespec_at(int64_t mono_ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(mono_ns / 1000000000);
	ts->tv_nsec = (long)(mono_ns % 1000000000);
}

/*
 * Waits until a batch is due and no appender is committing one (lock held); false when
 * stopping with nothing left.
 */
static bool writer_collect(struct store_writer *w)
{
	struct timespec ts;
	int64_t due;

	for (;;) {
		while ((!w->head || w->committing) && !w->stopping)
			pthread_cond_wait(&w->work, &w->mu);
		while (w->committing) /* stopping: an appender's commit finishes first */
			pthread_cond_wait(&w->done, &w->mu);
		if (!w->head)
			return false;
		due = w->head->queued_ns + (int64_t)w->max_delay_us * 1000;
		timespec_at(due, &ts);
		while (w->nqueued < w->max_batch && !w->stopping && tg_now_mono_ns() < due)
			pthread_cond_timedwait(&w->work, &w->mu, &ts);
		if (w->head && !w->committing) /* else an appender took the queue meanwhile */
			return true;
	}
}

/* Detaches up to max_batch records from the head of the queue (lock held). */
static void writer_take(struct store_writer *w, struct wbatch *b)
{
	b->w = w;
	b->first = b->last = w->head;
	b->n = 1;
	while (b->n < w->max_batch && b->last->next) {
		b->last = b->last->next;
		b->n++;
	}
	w->head = b->last->next;
	if (!w->head)
		w->tail = NULL;
	b->last->next = NULL;
	w->nqueued -= b->n;
}

static void wrecs_free(struct wrec *r)
{
	while (r) {
		struct wrec *next = r->next;

		free(r);
		r = next;
	}
}

/* Tells the commit hook, if any, where commits stand (lock held; released around the call). */
static void writer_notify(struct store_writer *w, int err)
{
	store_commit_fn fn = w->on_commit;
	void *arg = w->on_commit_arg;

	if (!fn)
		return;
	w->notifying++;
	pthread_mutex_unlock(&w->mu);
	fn(atomic_load(&w->committed), err, arg);
	pthread_mutex_lock(&w->mu);
	if (--w->notifying == 0)
		pthread_cond_broadcast(&w->done);
}

/* A commit failed: put the batch back in front and wait a while (lock held). */
static void writer_retry_later(struct store_writer *w, struct wbatch *b, int err, unsigned n)
{
	int64_t delay = WRITER_BACKOFF_MIN_NS << (n < 7 ? n - 1 : 6);
	struct timespec ts;

	b->last->next = w->head;
	w->head = b->first;
	if (!w->tail)
		w->tail = b->last;
	w->nqueued += b->n;
	w->err = err;
	pthread_cond_broadcast(&w->done);
	if ((n & (n - 1)) == 0) /* the 1st, 2nd, 4th, 8th... failure in a row: bounded noise */
		log_warnx("store %s: committing %zu usage records failed %u times (%s); retrying",
			  w->s->path, w->nqueued, n, strerror(-err));
	if (delay > WRITER_BACKOFF_MAX_NS)
		delay = WRITER_BACKOFF_MAX_NS;
	writer_notify(w, err);
	pthread_mutex_unlock(&w->mu);
	timespec_at(delay, &ts);
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&w->mu);
}

/* Stopping and the store keeps refusing: give the records up rather than hang (lock held). */
static void writer_give_up(struct store_writer *w)
{
	log_error("store %s: %zu usage records could not be committed before stopping (%s) and "
		  "are lost",
		  w->s->path, w->nqueued, strerror(-w->err));
	wrecs_free(w->head);
	w->head = w->tail = NULL;
	w->nheld -= w->nqueued;
	w->nqueued = 0;
}

/* A batch committed (lock held, committing set): publish it, free it, tell the hook. */
static void writer_committed(struct store_writer *w, struct wbatch *b)
{
	w->err = 0;
	w->nheld -= b->n;
	atomic_store(&w->committed, b->last->seq);
	atomic_fetch_add(&store_writer_debug_batches, 1);
	w->committing = false;
	pthread_cond_broadcast(&w->room);
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
	wrecs_free(b->first);
	pthread_mutex_lock(&w->mu);
	writer_notify(w, 0);
}

static void *writer_main(void *arg)
{
	struct store_writer *w = arg;
	unsigned failures = 0;

	pthread_mutex_lock(&w->mu);
	while (writer_collect(w)) {
		struct wbatch b;
		int rc;

		writer_take(w, &b);
		w->committing = true;
		pthread_mutex_unlock(&w->mu);
		rc = store_write_lazy(w->s, batch_txn, &b);
		pthread_mutex_lock(&w->mu);
		if (rc < 0) {
			w->committing = false;
			pthread_cond_broadcast(&w->done);
			writer_retry_later(w, &b, rc, ++failures);
			if (w->stopping && failures >= WRITER_STOP_ATTEMPTS)
				writer_give_up(w);
			continue;
		}
		failures = 0;
		writer_committed(w, &b);
	}
	w->exited = true;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int store_usage_last(struct store_txn *t, uint64_t *last)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_USAGE], &c);

	if (rc)
		return store_err(t->s, t, rc, "open cursor");
	*last = 0;
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8) {
		*last = codec_be_get(k.mv_data, 8);
	} else if (rc == 0) {
		log_warnx("store %s: usage key of %zu bytes, expected 8", t->s->path, k.mv_size);
		rc = -EIO;
	} else {
		rc = rc == MDB_NOTFOUND ? 0 : store_err(t->s, t, rc, "last usage record");
	}
	mdb_cursor_close(c);
	return rc;
}

static int last_seq_txn(struct store_txn *t, void *arg)
{
	return store_usage_last(t, arg);
}

static int writer_init_sync(struct store_writer *w)
{
	int rc = -pthread_mutex_init(&w->mu, NULL);

	/* Deadlines come from tg_now_mono_ns(): wall-clock steps must not stretch a batch. */
	if (!rc)
		rc = tg_cond_init_mono(&w->work);
	if (!rc)
		rc = tg_cond_init_mono(&w->room);
	if (!rc)
		rc = tg_cond_init_mono(&w->done);
	return rc;
}

static void writer_free(struct store_writer *w)
{
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	wrecs_free(w->head);
	free(w);
}

struct store_writer *store_writer_start(struct store *s, const struct store_writer_opts *o)
{
	struct store_writer *w;
	uint64_t last = 0;
	int rc;

	if (s->read_only || !s->have_db[STORE_DB_USAGE]) {
		errno = EROFS;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->s = s;
	w->max_batch = o && o->max_batch ? o->max_batch : 4096;
	/* 0 is a real setting (commit what is queued at once; batches still form while a
	 * commit runs): the 2 ms default applies only without options */
	w->max_delay_us = o ? o->max_delay_us : 2000;
	w->queue_cap = o && o->queue_cap ? o->queue_cap : 65536;
	w->on_batch = o ? o->on_batch : NULL;
	w->on_batch_arg = o ? o->on_batch_arg : NULL;
	rc = store_read(s, last_seq_txn, &last);
	if (rc)
		goto fail;
	w->next_seq = last + 1;
	atomic_store(&w->committed, last);
	rc = writer_init_sync(w);
	if (rc)
		goto fail;
	rc = -pthread_create(&w->thread, NULL, writer_main, w);
	if (rc)
		goto fail_sync;
	return w;
fail_sync:
	writer_free(w);
	errno = -rc;
	return NULL;
fail:
	free(w);
	errno = -rc;
	return NULL;
}

void store_writer_stop(struct store_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->work);
	pthread_cond_broadcast(&w->room);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	writer_free(w);
}

/* Queues a copy of rec; returns with the lock held on success (0), released on failure. */
static int writer_enqueue(struct store_writer *w, const void *rec, size_t len, uint64_t *seq,
			  bool *wake)
{
	struct wrec *r;

	if (len > WRITER_REC_MAX)
		return -EMSGSIZE;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return -ENOMEM;
	if (len)
		memcpy(r->data, rec, len);
	r->len = len;
	r->next = NULL;
	r->queued_ns = tg_now_mono_ns();
	pthread_mutex_lock(&w->mu);
	while (w->nheld >= w->queue_cap && !w->stopping)
		pthread_cond_wait(&w->room, &w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		free(r);
		return -ESHUTDOWN;
	}
	r->seq = w->next_seq++;
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	w->nheld++;
	/* The writer waits only for the first record of a batch or for a full one. */
	*wake = ++w->nqueued == 1 || w->nqueued == w->max_batch;
	if (seq)
		*seq = r->seq;
	return 0;
}

int store_writer_append(struct store_writer *w, const void *rec, size_t len, uint64_t *seq)
{
	bool wake = false;
	int rc = writer_enqueue(w, rec, len, seq, &wake);

	if (rc)
		return rc;
	pthread_mutex_unlock(&w->mu);
	/* after the unlock: a writer woken under the lock would block on it at once */
	if (wake)
		pthread_cond_signal(&w->work);
	return 0;
}

/*
 * Commits the queue (up to max_batch) on the calling thread, hooks included, when commits
 * are lazy, none is running and the last did not fail; else leaves it to the writer thread
 * (woken if wake). Called with w->mu held; returns with it released.
 */
static void writer_commit_here(struct store_writer *w, bool wake)
{
	struct wbatch b;
	int rc;

	if (!w->head) { /* a flush with nothing queued: nobody to wake either */
		pthread_mutex_unlock(&w->mu);
		return;
	}
	if (w->committing || w->err || !w->s->syncer) {
		/* a commit is running (ours comes next) or failing (the thread backs off), or
		 * commits are synced (sync_interval_ms 0): an fsync is no work for this thread */
		pthread_mutex_unlock(&w->mu);
		if (wake)
			pthread_cond_signal(&w->work);
		return;
	}
	writer_take(w, &b);
	w->committing = true;
	pthread_mutex_unlock(&w->mu);
	rc = store_write_lazy(w->s, batch_txn, &b);
	pthread_mutex_lock(&w->mu);
	if (rc < 0) {
		/* back in front; the thread retries with its backoff and reports the error */
		b.last->next = w->head;
		w->head = b.first;
		if (!w->tail)
			w->tail = b.last;
		w->nqueued += b.n;
		w->err = rc; /* until a commit succeeds, appenders leave commits to the thread */
		w->committing = false;
		pthread_cond_broadcast(&w->done);
	} else {
		writer_committed(w, &b);
	}
	wake = w->head != NULL; /* appended by others meanwhile, or the failed batch */
	pthread_mutex_unlock(&w->mu);
	if (wake)
		pthread_cond_signal(&w->work);
}

int store_writer_append_commit(struct store_writer *w, const void *rec, size_t len,
			       uint64_t *seq)
{
	bool wake = false;
	int rc = writer_enqueue(w, rec, len, seq, &wake);

	if (rc)
		return rc;
	writer_commit_here(w, wake);
	return 0;
}

int store_writer_append_deferred(struct store_writer *w, const void *rec, size_t len,
				 uint64_t *seq)
{
	bool wake = false;
	int rc = writer_enqueue(w, rec, len, seq, &wake);

	if (rc)
		return rc;
	if (w->nqueued >= w->max_batch || w->committing || w->err || !w->s->syncer) {
		/* a full batch, or one the caller's flush could not commit anyway: as append_commit */
		writer_commit_here(w, wake);
		return 0;
	}
	/* not even the writer thread is woken: the caller's store_writer_flush commits it */
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void store_writer_flush(struct store_writer *w)
{
	pthread_mutex_lock(&w->mu);
	writer_commit_here(w, true);
}

void store_writer_on_commit(struct store_writer *w, store_commit_fn fn, void *arg)
{
	pthread_mutex_lock(&w->mu);
	while (w->notifying) /* a caller may free arg once this returns */
		pthread_cond_wait(&w->done, &w->mu);
	w->on_commit = fn;
	w->on_commit_arg = arg;
	pthread_mutex_unlock(&w->mu);
}

uint64_t store_writer_committed(struct store_writer *w)
{
	return atomic_load(&w->committed);
}

int store_writer_wait(struct store_writer *w, uint64_t seq, int timeout_ms)
{
	int64_t due = tg_now_mono_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec ts;
	int rc = 0;

	timespec_at(due, &ts);
	pthread_mutex_lock(&w->mu);
	while (atomic_load(&w->committed) < seq) {
		if (w->exited) {
			rc = w->err ? w->err : -ESHUTDOWN;
			break;
		}
		if (timeout_ms >= 0 && tg_now_mono_ns() >= due) {
			rc = w->err ? w->err : -ETIMEDOUT;
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&w->done, &w->mu);
		else
			pthread_cond_timedwait(&w->done, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store's syncer (see store_internal.h). Usage batches commit without an fsync: a commit
 * is in the page cache when mdb_txn_commit() returns, which is all a kill -9 of the daemon
 * needs, so the answer that waits for its usage record no longer waits for the disk. What a
 * system crash or power loss could take is bounded by this thread: every interval it forces
 * one sync of the data file if lazy commits happened since its last round, so one fdatasync
 * per interval replaces one per batch. It syncs once more when the store closes.
 *
 * mdb_env_sync(env, 1) needs no transaction and runs beside commits; the read side of the
 * map lock keeps a map resize (which remaps) from running under it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "store_internal.h"
#include "util.h"

/* Syncs done by any syncer: for tests/unit/test_store.c only, not part of store.h. */
atomic_ulong store_sync_debug_rounds;

struct store_syncer {
	struct store *s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* stop */
	bool stopping;
	unsigned interval_ms;
	uint64_t synced; /* lazy_commits value covered by the last sync */
	unsigned failures;
};

/* One round: sync if lazy commits happened since the last one. */
static void syncer_round(struct store_syncer *y)
{
	uint64_t seen = atomic_load(&y->s->lazy_commits);
	int rc;

	if (seen == y->synced)
		return;
	pthread_rwlock_rdlock(&y->s->map_lock);
	rc = mdb_env_sync(y->s->env, 1);
	pthread_rwlock_unlock(&y->s->map_lock);
	if (rc) {
		/* the commits stay in the page cache; the next round tries again */
		y->failures++;
		if ((y->failures & (y->failures - 1)) == 0) /* 1st, 2nd, 4th...: bounded noise */
			log_warnx("store %s: periodic sync failed %u times: %s", y->s->path,
				  y->failures, mdb_strerror(rc));
		return;
	}
	y->failures = 0;
	y->synced = seen;
	atomic_fetch_add(&store_sync_debug_rounds, 1);
}

static void *syncer_main(void *arg)
{
	struct store_syncer *y = arg;
	struct timespec ts;

	pthread_mutex_lock(&y->mu);
	while (!y->stopping) {
		int64_t due = tg_now_mono_ns() + (int64_t)y->interval_ms * 1000000;

		ts.tv_sec = (time_t)(due / 1000000000);
		ts.tv_nsec = (long)(due % 1000000000);
		while (!y->stopping && tg_now_mono_ns() < due)
			pthread_cond_timedwait(&y->wake, &y->mu, &ts);
		pthread_mutex_unlock(&y->mu);
		syncer_round(y);
		pthread_mutex_lock(&y->mu);
	}
	pthread_mutex_unlock(&y->mu);
	return NULL;
}

static int syncer_init(struct store_syncer *y)
{
	int rc = -pthread_mutex_init(&y->mu, NULL);

	/* deadlines come from tg_now_mono_ns(): wall-clock steps must not stretch a round */
	if (!rc) {
		rc = tg_cond_init_mono(&y->wake);
		if (rc)
			pthread_mutex_destroy(&y->mu);
	}
	return rc;
}

int store_syncer_start(struct store *s, unsigned interval_ms, struct store_syncer **out)
{
	struct store_syncer *y = calloc(1, sizeof(*y));
	int rc = -ENOMEM;

	if (!y)
		goto fail;
	y->s = s;
	y->interval_ms = interval_ms;
	y->synced = atomic_load(&s->lazy_commits);
	rc = syncer_init(y);
	if (rc)
		goto fail;
	rc = -pthread_create(&y->thread, NULL, syncer_main, y);
	if (rc) {
		pthread_cond_destroy(&y->wake);
		pthread_mutex_destroy(&y->mu);
		goto fail;
	}
	*out = y;
	return 0;
fail:
	free(y);
	return rc;
}

void store_syncer_stop(struct store_syncer *y)
{
	if (!y)
		return;
	pthread_mutex_lock(&y->mu);
	y->stopping = true;
	pthread_cond_signal(&y->wake);
	pthread_mutex_unlock(&y->mu);
	pthread_join(y->thread, NULL);
	syncer_round(y); /* the last lazy commits reach the disk before the store closes */
	pthread_cond_destroy(&y->wake);
	pthread_mutex_destroy(&y->mu);
	free(y);
}

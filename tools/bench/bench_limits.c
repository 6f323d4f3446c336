/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Micro-benchmark of one full limit check (issue 5 goal: under 1 us median): budget_reserve
 * then budget_release of a call whose subjects are a key, its owner (team) and a tenant,
 * every one with every window set (requests per day and month, tokens per minute, hour, day
 * and month, cost per hour, day and month, bytes and compute per month, concurrency), all
 * far above what the run uses so that every check passes and reserves. Baseline in the
 * same run: ratelimit_charge alone on one slot (the request-rate check every call already
 * pays). Timed per batch of BENCH_BATCH pairs; the figure is the median (and p99) of the batch
 * means. The engine's clock is the wall clock of the run (Unix s), as in the data plane.
 *
 * With a second argument THREADS > 1 it also times THREADS threads checking at once, each
 * on its own key under the same team and tenant (the shared subjects' locks contend).
 * A third figure, the same run: reserve then budget_settle with real usage (a call that
 * went upstream: its usage lands in the buckets and the running totals, and the alert
 * thresholds are checked), which is what the daemon does for every allowed call.
 *
 * usage: bench_limits [pairs, default 2000000] [threads, default 2]
 * Prints metric lines as tools/bench/run expects.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget.h"
#include "bench_stats.h"
#include "log.h"
#include "model.h"
#include "ratelimit.h"
#include "tollgate/abi.h"
#include "util.h"

#define BIG	    (UINT64_C(1) << 50) /* a limit nothing in the run reaches */
#define THREADS_MAX 16

/* Every amount limit set (far above the run), hard mode, action block. */
static void limits_all(struct limits *l)
{
	memset(l, 0, sizeof(*l));
	l->v[LIMIT_RPS] = 1000000000; /* milli-requests/s: 1e6 r/s */
	l->v[LIMIT_BURST] = 1000000000;
	l->v[LIMIT_RPM] = BIG;
	l->v[LIMIT_RPH] = BIG;
	l->v[LIMIT_RPD] = BIG;
	l->v[LIMIT_TPM] = BIG;
	l->v[LIMIT_TOKENS_MONTH] = BIG;
	l->v[LIMIT_MAX_CONCURRENT] = 1000000;
	l->v[LIMIT_RP_MONTH] = BIG;
	l->v[LIMIT_TPH] = BIG;
	l->v[LIMIT_TPD] = BIG;
	l->v[LIMIT_COST_HOUR] = BIG;
	l->v[LIMIT_COST_DAY] = BIG;
	l->v[LIMIT_COST_MONTH] = BIG;
	l->v[LIMIT_BYTES_MONTH] = BIG;
	l->v[LIMIT_COMPUTE_MONTH] = BIG;
	l->v[LIMIT_MODE] = LIMIT_MODE_HARD;
	l->v[LIMIT_ACTION] = LIMIT_ACT_BLOCK;
}

struct worker {
	struct budget *b;
	const struct limits *lim;
	char key[TG_ID_LEN + 1];
	bool settle; /* budget_settle with usage instead of budget_release */
	size_t batches;
	int64_t *batch_ns; /* per batch: ns for BENCH_BATCH reserve + release pairs */
	int err;
};

/* BENCH_BATCH pairs of reserve + release, timed per batch. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct budget_req r = {.key_id = w->key,
			       .key_limits = w->lim,
			       .owner = "team:bench",
			       .tenant = "bench-tenant",
			       .now = (int64_t)time(NULL)};
	struct budget_verdict v;
	const uint64_t used[WIN_M__COUNT] = {1, 90, 1000, 900, 40};

	budget_estimate(NULL, 20, 100, 300, r.est);
	for (size_t i = 0; i < w->batches; i++) {
		int64_t t0 = tg_now_mono_ns();

		for (int j = 0; j < BENCH_BATCH; j++) {
			struct budget_call c = {0};

			if (budget_reserve(w->b, &r, &c, &v) || !v.allowed) {
				w->err = v.allowed ? -ENOMEM : -EDQUOT;
				return NULL;
			}
			if (w->settle)
				budget_settle(w->b, &c, used);
			else
				budget_release(w->b, &c);
		}
		w->batch_ns[i] = tg_now_mono_ns() - t0;
	}
	return NULL;
}

/* The same loop shape over ratelimit_charge of one slot (always allowed). */
static int baseline(const struct limits *lim, size_t batches, int64_t *batch_ns)
{
	struct tg_slot *slot = calloc(1, sizeof(*slot));
	struct rl_verdict v;
	int err = 0;

	if (!slot)
		return -ENOMEM;
	slots_assign(slot, lim);
	for (size_t i = 0; i < batches && !err; i++) {
		int64_t t0 = tg_now_mono_ns();

		for (int j = 0; j < BENCH_BATCH; j++)
			if (!ratelimit_charge(slot, lim, (uint64_t)tg_now_mono_ns(), false, &v))
				err = -EDQUOT;
		batch_ns[i] = tg_now_mono_ns() - t0;
	}
	free(slot);
	return err;
}

static struct budget *engine(void)
{
	struct budget_opts o = {.enabled = true,
				.mode = LIMIT_MODE_HARD,
				.action = LIMIT_ACT_BLOCK,
				.alert_permille = 800,
				.completion_estimate = 1024};
	struct budget *b = budget_new(&o);
	struct limits sub;

	if (!b)
		return NULL;
	limits_all(&sub);
	if (budget_set_limits(b, "team:bench", &sub) ||
	    budget_set_limits(b, "tenant:bench-tenant", &sub)) {
		budget_free(b);
		return NULL;
	}
	return b;
}

/* THREADS workers at once; median over every worker's batches. */
static int run_threads(struct budget *b, const struct limits *lim, unsigned n, size_t batches,
		       double *med, double *p99)
{
	pthread_t th[THREADS_MAX];
	struct worker w[THREADS_MAX];
	int64_t *all = calloc(batches * n, sizeof(*all));
	int err = all ? 0 : -ENOMEM;

	for (unsigned i = 0; i < n && !err; i++) {
		w[i] = (struct worker){
		    .b = b, .lim = lim, .batches = batches, .batch_ns = all + i * batches};
		snprintf(w[i].key, sizeof(w[i].key), "benchkey%04u", i);
		if (pthread_create(&th[i], NULL, worker_run, &w[i]))
			err = -EAGAIN;
		for (unsigned k = 0; err && k < i; k++)
			pthread_join(th[k], NULL);
	}
	for (unsigned i = 0; i < n && !err; i++) {
		pthread_join(th[i], NULL);
		err = err ? err : w[i].err;
	}
	if (!err)
		bench_stats(all, batches * n, med, p99);
	free(all);
	return err;
}

int main(int argc, char **argv)
{
	size_t pairs = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
	unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2;
	size_t batches = pairs / BENCH_BATCH ? pairs / BENCH_BATCH : 1;
	int64_t *bn = calloc(batches, sizeof(*bn)), *ln = calloc(batches, sizeof(*ln));
	int64_t *sn = calloc(batches, sizeof(*sn));
	struct worker w = {.batches = batches, .batch_ns = ln};
	double bmed, bp99, lmed, lp99, smed, sp99, tmed = 0, tp99 = 0;
	struct limits lim;
	int err;

	log_init("bench_limits", LOG_LVL_WARN);
	if (threads > THREADS_MAX)
		threads = THREADS_MAX;
	limits_all(&lim);
	w.b = engine();
	w.lim = &lim;
	snprintf(w.key, sizeof(w.key), "benchkey0one");
	if (!bn || !ln || !sn || !w.b) {
		fprintf(stderr, "bench_limits: out of memory\n");
		return 1;
	}
	/* warm: the subjects exist (created on first use), caches are hot */
	w.batches = batches / 10 + 1;
	worker_run(&w);
	w.batches = batches;
	err = baseline(&lim, batches, bn);
	if (!err) {
		worker_run(&w);
		err = w.err;
	}
	if (!err) {
		struct worker ws = w;

		ws.settle = true;
		ws.batch_ns = sn;
		worker_run(&ws);
		err = ws.err;
	}
	if (!err && threads > 1)
		err = run_threads(w.b, &lim, threads, batches / threads + 1, &tmed, &tp99);
	if (err) {
		fprintf(stderr, "bench_limits: a check failed: %s\n", strerror(-err));
		return 1;
	}
	bench_stats(bn, batches, &bmed, &bp99);
	bench_stats(ln, batches, &lmed, &lp99);
	bench_stats(sn, batches, &smed, &sp99);
	printf("# bench_limits: %zu reserve+release pairs (key, team, tenant; every window set), "
	       "batches of %d; baseline ratelimit_charge of one slot\n",
	       batches * BENCH_BATCH, BENCH_BATCH);
	printf("metric=limit_check_median value=%.0f unit=ns baseline=%.0f ratio=%.2f goal=<1000 "
	       "pass=%s\n",
	       lmed, bmed, lmed / bmed, lmed < 1000 ? "yes" : "no");
	printf("metric=limit_check_p99 value=%.0f unit=ns baseline=%.0f ratio=%.2f goal=- pass=-\n",
	       lp99, bp99, lp99 / bp99);
	printf("# reserve + settle with usage (p99 %.0f ns); baseline: reserve + release\n", sp99);
	printf("metric=limit_check_settle_median value=%.0f unit=ns baseline=%.0f ratio=%.2f "
	       "goal=- pass=-\n",
	       smed, lmed, smed / lmed);
	if (threads > 1) {
		printf("# %u threads at once, each on its own key, sharing the team and the tenant "
		       "(p99 %.0f ns); baseline: one thread\n",
		       threads, tp99);
		printf("metric=limit_check_median_%ut value=%.0f unit=ns baseline=%.0f ratio=%.2f "
		       "goal=- pass=-\n",
		       threads, tmed, lmed, tmed / lmed);
	}
	budget_free(w.b);
	free(bn);
	free(ln);
	free(sn);
	return 0;
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the C micro-benchmarks that time batches of BENCH_BATCH operations share: the median
 * and p99 of the per-batch times, as nanoseconds per operation. Time comes from the daemon's
 * own monotonic clock (util.h tg_now_mono_ns).
 */
#ifndef TG_BENCH_STATS_H
#define TG_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define BENCH_BATCH 1000 /* operations timed together */

static int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Median and p99 per operation of n per-batch times in ns (v is sorted in place; n > 0). */
static inline void bench_stats(int64_t *v, size_t n, double *median, double *p99)
{
	size_t i99 = n * 99 / 100 < n ? n * 99 / 100 : n - 1;

	qsort(v, n, sizeof(*v), bench_cmp_i64);
	*median = (double)v[n / 2] / BENCH_BATCH;
	*p99 = (double)v[i99] / BENCH_BATCH;
}

#endif /* TG_BENCH_STATS_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Micro-benchmark of the key registry, each number next to a baseline measured in the same
 * run:
 *   1. cached keys_verify (median and p99 ns per call, timed per batch of 1000) against one
 *      tg_siphash128 of the key plus a lookup in a plain open-addressing table, i.e. the
 *      least any cached verification must do;
 *   2. keys_open on a store of R key records (milliseconds, keys/s, bytes of memory per key),
 *      against a bare store_iter over the same records that decodes nothing;
 *   3. sync_reconcile of those R keys into a slot array, with a kernel reconcile op that
 *      only counts its entries (milliseconds; the kernel's batch updates are not in it),
 *      against the same bare store_iter.
 * Bytes per key is the growth of anonymous resident memory (statm resident - shared, so
 * LMDB's file-backed map does not count) across keys_open, divided by R; its baseline is
 * sizeof(struct key_record), what keeping the decoded records would cost.
 *
 * usage: bench_keys [N keys for the verify test, default 10000]
 *                   [R records for the load test, default 1000000]
 *                   [verifies, default 1000000]
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "bench_stats.h"
#include "log.h"
#include "model.h"
#include "ratelimit.h"
#include "store.h"
#include "sync.h"
#include "util.h"
#include "tollgate/siphash.h"

#define WRITE_BATCH 20000

/*
 * One line in tools/bench/run's format. goal_op is '<' or '>' with goal_v the bound the
 * value should meet, or 0 for a figure with no goal.
 */
static void metric(const char *name, double v, const char *unit, double base, char goal_op,
		   double goal_v)
{
	bool pass = goal_op == '<' ? v < goal_v : v > goal_v;

	printf("metric=%s value=%.1f unit=%s baseline=%.1f ratio=%.2f", name, v, unit, base,
	       base ? v / base : 0.0);
	if (goal_op)
		printf(" goal=%c%g pass=%s\n", goal_op, goal_v, pass ? "yes" : "no");
	else
		printf(" goal=- pass=-\n");
}

static struct store *store_tmp(char dir[64], size_t map, size_t max)
{
	struct store_opts so = {.map_size = map, .max_map_size = max, .sync = STORE_SYNC_NONE};

	snprintf(dir, 64, "/tmp/tg_bench_XXXXXX");
	if (!mkdtemp(dir))
		return NULL;
	so.path = dir;
	return store_open(&so);
}

static void rm_tmp(const char *dir)
{
	char path[400];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- 1. cached verification ---- */

struct plain_table {
	uint64_t *tags; /* 2 words per slot; 0,0 = empty */
	uint32_t *vals;
	size_t mask;
};

static void plain_put(struct plain_table *t, const uint64_t tag[2], uint32_t v)
{
	size_t i = tag[0] & t->mask;

	while (t->tags[2 * i] || t->tags[2 * i + 1])
		i = (i + 1) & t->mask;
	t->tags[2 * i] = tag[0];
	t->tags[2 * i + 1] = tag[1];
	t->vals[i] = v;
}

static int64_t plain_get(const struct plain_table *t, const uint64_t tag[2])
{
	size_t i = tag[0] & t->mask;

	for (; t->tags[2 * i] || t->tags[2 * i + 1]; i = (i + 1) & t->mask) {
		if (t->tags[2 * i] == tag[0] && t->tags[2 * i + 1] == tag[1])
			return t->vals[i];
	}
	return -1;
}

static void tag_of(const uint8_t key[16], const char *s, size_t len, uint64_t tag[2])
{
	__u64 t[2];

	tg_siphash128(key, s, len, t);
	tag[0] = t[0];
	tag[1] = t[1];
}

/* Times verifies over the keys in pt; per-batch ns into v (n / BENCH_BATCH entries). */
static int time_verify(struct keys *k, char (*pt)[TG_CRED_MAX], size_t *len, size_t nkeys,
		       size_t n, int64_t *v)
{
	struct keys_auth a;
	size_t j = 0;

	for (size_t b = 0; b < n / BENCH_BATCH; b++) {
		int64_t t0 = tg_now_mono_ns();
		int bad = 0;

		for (int i = 0; i < BENCH_BATCH; i++, j = (j + 7919) % nkeys)
			bad |= keys_verify(k, pt[j], len[j], KEYS_API, NULL, &a);
		v[b] = tg_now_mono_ns() - t0;
		if (bad)
			return -1;
	}
	return 0;
}

static int64_t time_plain(const struct plain_table *t, const uint8_t key[16],
			  char (*pt)[TG_CRED_MAX], size_t *len, size_t nkeys, size_t n, int64_t *v)
{
	volatile int64_t sink = 0;
	size_t j = 0;

	for (size_t b = 0; b < n / BENCH_BATCH; b++) {
		int64_t t0 = tg_now_mono_ns(), acc = 0;

		for (int i = 0; i < BENCH_BATCH; i++, j = (j + 7919) % nkeys) {
			uint64_t tag[2];

			tag_of(key, pt[j], len[j], tag);
			acc += plain_get(t, tag);
		}
		v[b] = tg_now_mono_ns() - t0;
		sink += acc;
	}
	return sink;
}

/* The same keys in the registry (each verified once, so cached) and in the plain table. */
static int verify_setup(struct keys *k, struct plain_table *t, const uint8_t key[16],
			char (*pt)[TG_CRED_MAX], size_t *len, size_t nkeys)
{
	t->mask = 1;
	while (t->mask + 1 < nkeys * 2)
		t->mask = t->mask * 2 + 1;
	t->tags = calloc((t->mask + 1) * 2, sizeof(*t->tags));
	t->vals = calloc(t->mask + 1, sizeof(*t->vals));
	if (!t->tags || !t->vals)
		return -ENOMEM;
	for (size_t i = 0; i < nkeys; i++) {
		struct key_spec sp = {.name = "bench", .owner = "team:bench"};
		struct key_record r;
		struct keys_auth a;
		uint64_t tag[2];
		int rc;

		limits_clear(&sp.overrides);
		rc = keys_create(k, &sp, &r, pt[i]);
		if (rc)
			return rc;
		len[i] = strlen(pt[i]);
		rc = keys_verify(k, pt[i], len[i], KEYS_API, NULL, &a);
		if (rc)
			return rc;
		tag_of(key, pt[i], len[i], tag);
		plain_put(t, tag, (uint32_t)i);
	}
	return 0;
}

static int bench_verify(size_t nkeys, size_t nverify)
{
	char dir[64], (*pt)[TG_CRED_MAX] = calloc(nkeys, TG_CRED_MAX);
	size_t *len = calloc(nkeys, sizeof(*len)), nb = nverify / BENCH_BATCH;
	int64_t *v = calloc(nb, sizeof(*v)), *bv = calloc(nb, sizeof(*bv));
	struct plain_table t = {0};
	struct store *s = store_tmp(dir, 64 << 20, 1ul << 32);
	struct keys_opts o;
	struct keys *k = NULL;
	uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	double med, p99, bmed, bp99;
	int rc = -1;

	keys_opts_default(&o);
	o.t_cost = 1; /* tiny argon2: only the cached path is timed */
	o.m_cost_kib = 64;
	o.argon2_per_sec = 1000000;
	o.cache_max = (uint32_t)(nkeys * 2 > 1024 ? nkeys * 2 : 1024);
	if (!pt || !len || !v || !bv || !s || !(k = keys_open(s, &o)) ||
	    verify_setup(k, &t, key, pt, len, nkeys) || time_verify(k, pt, len, nkeys, nb * BENCH_BATCH, v))
		goto out;
	time_plain(&t, key, pt, len, nkeys, nb * BENCH_BATCH, bv);
	bench_stats(v, nb, &med, &p99);
	bench_stats(bv, nb, &bmed, &bp99);
	printf("# cached verify: %zu keys, %zu verifies in batches of %d; baseline: one "
	       "tg_siphash128 and a plain hash lookup\n",
	       nkeys, nb * BENCH_BATCH, BENCH_BATCH);
	metric("cached_verify_median_ns", med, "ns", bmed, '<', 1000);
	metric("cached_verify_p99_ns", p99, "ns", bp99, 0, 0);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench_keys: verify benchmark failed\n");
	keys_close(k);
	store_close(s);
	if (s)
		rm_tmp(dir);
	if (pt)
		explicit_bzero(pt, nkeys * TG_CRED_MAX);
	free(pt);
	free(len);
	free(v);
	free(bv);
	free(t.tags);
	free(t.vals);
	return rc;
}

/* ---- 2. loading ---- */

static const char *const tier_names[3] = {"basic", "premium", "enterprise"};

/* A plausible record number i: ids in key order, 1000 owners, 10 services, 10% overrides. */
static void fake_record(size_t i, struct key_record *r)
{
	static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t x = i * 0x9e3779b97f4a7c15ull;

	memset(r, 0, sizeof(*r));
	for (int d = TG_ID_LEN - 1, n = (int)i; d >= 0; d--, n /= 36)
		r->id[d] = b36[n % 36];
	snprintf(r->name, sizeof(r->name), "key %zu", i);
	snprintf(r->owner, sizeof(r->owner), "team:t%zu", i % 1000);
	snprintf(r->service, sizeof(r->service), "svc%zu", i % 10);
	snprintf(r->tier, sizeof(r->tier), "%s", tier_names[i % 3]);
	limits_clear(&r->overrides);
	if (i % 10 == 0)
		r->overrides.v[LIMIT_BURST] = 5 + i % 7;
	r->created_at = 1900000000 + (int64_t)i;
	r->cur.t_cost = 2;
	r->cur.m_cost_kib = 19456;
	r->cur.parallelism = 1;
	for (int b = 0; b < 16; b++)
		r->cur.salt[b] = (uint8_t)(x >> (b * 4));
	for (int b = 0; b < 32; b++)
		r->cur.hash[b] = (uint8_t)(x >> (b * 2) ^ (uint64_t)b);
	r->khash_cur = x;
	r->slot = (uint32_t)i;
}

struct fill_ctx {
	size_t from, to;
};

static int fill_txn(struct store_txn *t, void *arg)
{
	struct fill_ctx *c = arg;
	uint8_t buf[MODEL_KEY_MAX];
	struct key_record r;

	for (size_t i = c->from; i < c->to; i++) {
		int n, rc;

		fake_record(i, &r);
		n = key_record_encode(&r, buf, sizeof(buf));
		if (n < 0)
			return n;
		rc = store_put(t, STORE_DB_KEYS, r.id, TG_ID_LEN, buf, (size_t)n, 0);
		if (rc)
			return rc;
	}
	return 0;
}

static int count_one(const void *k, size_t kl, const void *v, size_t vl, void *arg)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(size_t *)arg)++;
	return 0;
}

static int iter_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_KEYS, NULL, 0, count_one, arg);
}

/* Anonymous resident bytes: statm resident minus shared (file-backed) pages. */
static long anon_rss(void)
{
	long size, res, shared;
	FILE *f = fopen("/proc/self/statm", "r");
	int n = f ? fscanf(f, "%ld %ld %ld", &size, &res, &shared) : 0;

	if (f)
		fclose(f);
	return n == 3 ? (res - shared) * sysconf(_SC_PAGESIZE) : -1;
}

/* Fills a new store with nrec records and reopens it, so the writer's memory is gone. */
static struct store *load_prepare(char dir[64], size_t nrec)
{
	struct store_opts so = {.path = dir, .map_size = 1ul << 30, .max_map_size = 1ul << 36,
				.sync = STORE_SYNC_NONE};
	struct store *s = store_tmp(dir, so.map_size, so.max_map_size);

	for (size_t i = 0; s && i < nrec; i += WRITE_BATCH) {
		struct fill_ctx c = {i, i + WRITE_BATCH < nrec ? i + WRITE_BATCH : nrec};

		if (store_write(s, fill_txn, &c)) {
			store_close(s);
			rm_tmp(dir);
			return NULL;
		}
	}
	store_close(s);
	return s ? store_open(&so) : NULL;
}

static int count_entries(void *kctx, const uint64_t *khash, const uint32_t *slot,
			 const uint32_t *key_gen, size_t n)
{
	(void)khash, (void)slot, (void)key_gen;
	*(size_t *)kctx = n;
	return 0;
}

/* sync_reconcile of every key of k into a fresh slot array (goal: a million in under 2 s). */
static int bench_reconcile(struct keys *k, size_t nrec, int64_t t_iter)
{
	static const struct sync_kernel_ops ops = {.reconcile = count_entries};
	struct slots *sl = slots_open((uint32_t)nrec);
	size_t entries = 0;
	struct sync *sy = sl ? sync_new(sl, &ops, &entries) : NULL;
	int64_t t0;
	int rc = -1;

	if (!sy)
		goto out;
	t0 = tg_now_mono_ns();
	rc = sync_reconcile(sy, k);
	t0 = tg_now_mono_ns() - t0;
	/* record 0 has key hash 0, which never goes to the kernel */
	if (rc || sync_active_count(sy) != nrec || entries != nrec - 1) {
		rc = -1;
		goto out;
	}
	printf("# reconcile: %zu active keys into slots, kernel op counting only; baseline: "
	       "store_iter decoding nothing\n",
	       nrec);
	metric("reconcile_ms", t0 / 1e6, "ms", t_iter / 1e6, '<', 2000.0 * (double)nrec / 1e6);
out:
	sync_free(sy);
	slots_close(sl);
	return rc;
}

static int bench_load(size_t nrec)
{
	char dir[64];
	struct store *s = load_prepare(dir, nrec);
	struct keys_opts o;
	struct keys *k = NULL;
	size_t seen = 0;
	int64_t t0, t_iter, t_open;
	long rss0, rss1;
	int rc = -1;

	if (!s)
		goto out;
	/* the baseline first, so both runs find the data in the page cache */
	t0 = tg_now_mono_ns();
	if (store_read(s, iter_txn, &seen) || seen != nrec)
		goto out;
	t_iter = tg_now_mono_ns() - t0;
	keys_opts_default(&o);
	malloc_trim(0); /* freed memory back to the kernel: growth below is keys_open's own */
	rss0 = anon_rss();
	t0 = tg_now_mono_ns();
	k = keys_open(s, &o);
	t_open = tg_now_mono_ns() - t0;
	rss1 = anon_rss();
	if (!k || keys_count(k) != nrec)
		goto out;
	printf("# load: %zu records; baseline: store_iter decoding nothing\n", nrec);
	/* the goal: a million keys in under a second */
	metric("load_ms", t_open / 1e6, "ms", t_iter / 1e6, '<', nrec / 1e3);
	metric("load_keys_per_sec", nrec / (t_open / 1e9), "keys/s", nrec / (t_iter / 1e9), '>',
	       1e6);
	printf("# bytes per key: anonymous RSS growth across keys_open / records; baseline: "
	       "sizeof(struct key_record)\n");
	metric("load_bytes_per_key", (double)(rss1 - rss0) / (double)nrec, "B",
	       (double)sizeof(struct key_record), '<', 200);
	rc = bench_reconcile(k, nrec, t_iter);
out:
	if (rc)
		fprintf(stderr, "bench_keys: load benchmark failed\n");
	keys_close(k);
	store_close(s);
	if (s)
		rm_tmp(dir);
	return rc;
}

int main(int argc, char **argv)
{
	size_t nkeys = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t nrec = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
	size_t nverify = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000000;
	int rc = 0;

	log_init("bench_keys", LOG_LVL_WARN);
	if (nkeys < 1 || nverify < BENCH_BATCH || nrec < 1) {
		fprintf(stderr, "usage: %s [keys >= 1] [records >= 1] [verifies >= %d]\n",
			argv[0], BENCH_BATCH);
		return 2;
	}
	rc |= bench_verify(nkeys, nverify);
	rc |= bench_load(nrec);
	return rc ? 1 : 0;
}

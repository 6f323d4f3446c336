/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tg_keys kept in step with LMDB (the sync_kernel_ops side of sync.h), and what status shows:
 * the per-verdict counters summed over CPUs, the penalty box.
 *
 * Reconcile makes tg_keys hold exactly the active keys' hashes: one walk over the map with
 * batched lookups (bpf_map_lookup_batch, BATCH entries a call) against a hash index of the
 * wanted entries finds the entries LMDB does not have and those already right; the first are
 * deleted in batches, then only the missing or changed ones are written (batched updates).
 * A restart with nothing changed thus writes nothing. Without batch operations for hash
 * maps, updates and deletes fall back to one call per element.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kernel_internal.h"
#include "log.h"

#define BATCH 8192u
#ifndef ENOTSUPP
#define ENOTSUPP 524 /* the kernel's "operation not supported" (not in libc) */
#endif

int kernel_key_put(void *kctx, uint64_t khash, uint32_t slot, uint32_t key_gen)
{
	struct kernel *k = kctx;
	struct tg_key_val v = {.slot = slot, .key_gen = key_gen};

	if (slot >= k->capacity)
		return -ERANGE;
	if (bpf_map_update_elem(k->keys_fd, &khash, &v, BPF_ANY)) {
		int rc = -errno;

		log_warn("cannot write slot %u into %s", slot, TG_MAP_KEYS);
		return rc;
	}
	return 0;
}

int kernel_key_get(void *kctx, uint64_t khash, uint32_t *slot, uint32_t *key_gen)
{
	struct kernel *k = kctx;
	struct tg_key_val v;

	if (bpf_map_lookup_elem(k->keys_fd, &khash, &v))
		return -errno;
	*slot = v.slot;
	*key_gen = v.key_gen;
	return 0;
}

int kernel_key_del(void *kctx, uint64_t khash)
{
	struct kernel *k = kctx;

	if (bpf_map_delete_elem(k->keys_fd, &khash) && errno != ENOENT) {
		int rc = -errno;

		log_warn("cannot delete an entry of %s", TG_MAP_KEYS);
		return rc;
	}
	return 0;
}

/* One wanted tg_keys entry. */
struct want {
	uint64_t khash;
	struct tg_key_val v;
	bool present; /* tg_keys already holds exactly this entry: nothing to write */
};

/* An open-addressing index of the wanted entries by hash (the hashes are SipHash tags,
 * already uniform: the low bits place them). Slots hold entry index + 1; 0 = empty. A
 * sorted array with binary search cost seconds at a million keys (cache misses). */
struct want_index {
	uint32_t *slot;
	size_t mask;
};

static int want_index_build(struct want_index *x, const struct want *w, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size <<= 1;
	x->slot = calloc(size, sizeof(*x->slot));
	x->mask = size - 1;
	if (!x->slot)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t h = (size_t)w[i].khash & x->mask;

		while (x->slot[h] && w[x->slot[h] - 1].khash != w[i].khash)
			h = (h + 1) & x->mask;
		x->slot[h] = (uint32_t)i + 1; /* a duplicate hash: the later entry wins */
	}
	return 0;
}

static struct want *want_find(const struct want_index *x, struct want *w, uint64_t khash)
{
	size_t h = (size_t)khash & x->mask;

	for (; x->slot[h]; h = (h + 1) & x->mask) {
		if (w[x->slot[h] - 1].khash == khash)
			return &w[x->slot[h] - 1];
	}
	return NULL;
}

static int stale_add(uint64_t **stale, size_t *n, size_t *cap, uint64_t h)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 1024;
		uint64_t *p = realloc(*stale, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*stale = p;
		*cap = c;
	}
	(*stale)[(*n)++] = h;
	return 0;
}

/* One batched walk over tg_keys: entries not wanted go to *stale; wanted ones already
 * right are marked present. */
static int keys_scan(struct kernel *k, struct want *w, const struct want_index *x, uint64_t **stale,
		     size_t *n_stale)
{
	uint64_t *keys = malloc(BATCH * sizeof(*keys)), in = 0, out = 0;
	struct tg_key_val *vals = malloc(BATCH * sizeof(*vals));
	size_t cap = 0;
	bool first = true, done = false;
	int rc = keys && vals ? 0 : -ENOMEM;

	*stale = NULL;
	*n_stale = 0;
	while (!rc && !done) {
		uint32_t cnt = BATCH;

		if (bpf_map_lookup_batch(k->keys_fd, first ? NULL : &in, &out, keys, vals, &cnt,
					 NULL)) {
			if (errno != ENOENT) {
				rc = -errno;
				break;
			}
			done = true; /* the last batch (cnt may still hold entries) */
		}
		first = false;
		in = out;
		for (uint32_t j = 0; j < cnt && !rc; j++) {
			struct want *hit = want_find(x, w, keys[j]);

			if (!hit)
				rc = stale_add(stale, n_stale, &cap, keys[j]);
			else if (!memcmp(&hit->v, &vals[j], sizeof(vals[j])))
				hit->present = true;
		}
	}
	free(keys);
	free(vals);
	return rc;
}

static int keys_delete(struct kernel *k, const uint64_t *stale, size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);

	for (size_t i = 0; i < n; i += BATCH) {
		uint32_t cnt = (uint32_t)(n - i < BATCH ? n - i : BATCH);

		if (bpf_map_delete_batch(k->keys_fd, stale + i, &cnt, &bo) == 0)
			continue;
		for (uint32_t j = 0; j < cnt; j++) {
			if (kernel_key_del(k, stale[i + j]))
				return -errno;
		}
	}
	return 0;
}

/* Writes the wanted entries not already present, BATCH a call; *n_put counts them. */
static int keys_put(struct kernel *k, const struct want *w, size_t n, size_t *n_put)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
	uint64_t *keys = malloc(BATCH * sizeof(*keys));
	struct tg_key_val *vals = malloc(BATCH * sizeof(*vals));
	size_t i = 0;
	int rc = keys && vals ? 0 : -ENOMEM;

	*n_put = 0;
	while (!rc && i < n) {
		uint32_t cnt = 0;

		for (; i < n && cnt < BATCH; i++) {
			if (w[i].present)
				continue;
			keys[cnt] = w[i].khash;
			vals[cnt++] = w[i].v;
		}
		*n_put += cnt;
		if (cnt == 0 || bpf_map_update_batch(k->keys_fd, keys, vals, &cnt, &bo) == 0)
			continue;
		if (errno != EINVAL && errno != ENOTSUPP && errno != EOPNOTSUPP) {
			rc = -errno;
			break;
		}
		for (uint32_t j = 0; j < cnt && !rc; j++) /* no batch support: one by one */
			rc = kernel_key_put(k, keys[j], vals[j].slot, vals[j].key_gen);
	}
	free(keys);
	free(vals);
	return rc;
}

static double ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int kernel_keys_reconcile(void *kctx, const uint64_t *khash, const uint32_t *slot,
			  const uint32_t *key_gen, size_t n)
{
	struct kernel *k = kctx;
	struct want_index x = {0};
	struct want *w = NULL;
	uint64_t *stale = NULL;
	size_t n_stale = 0, n_put = 0;
	double t[4] = {0};
	int rc = -ENOMEM;

	if (n > k->keys_max) {
		log_warnx("reconcile: %zu key hashes do not fit %s (%u entries)", n, TG_MAP_KEYS,
			  k->keys_max);
		return -ENOSPC;
	}
	w = malloc((n ? n : 1) * sizeof(*w));
	if (!w)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (slot[i] >= k->capacity) {
			rc = -ERANGE;
			goto out;
		}
		w[i] =
		    (struct want){.khash = khash[i], .v = {.slot = slot[i], .key_gen = key_gen[i]}};
	}
	t[0] = ms_now();
	rc = want_index_build(&x, w, n);
	if (rc)
		goto out;
	t[1] = ms_now();
	/* Stale entries go first, so the writes never meet a map full of old hashes. */
	rc = keys_scan(k, w, &x, &stale, &n_stale);
	t[2] = ms_now();
	if (!rc)
		rc = keys_delete(k, stale, n_stale);
	if (!rc)
		rc = keys_put(k, w, n, &n_put);
	t[3] = ms_now();
out:
	if (rc)
		log_warnx("reconcile of %s failed: %s", TG_MAP_KEYS, strerror(-rc));
	else
		log_info("reconciled %s: %zu keys (%zu written, %zu already there), %zu stale "
			 "entries removed; index %.0f ms, scan %.0f ms, writes %.0f ms",
			 TG_MAP_KEYS, n, n_put, n - n_put, n_stale, t[1] - t[0], t[2] - t[1],
			 t[3] - t[2]);
	free(x.slot);
	free(w);
	free(stale);
	return rc;
}

/* ---- status ---- */

static int stats_read(struct kernel *k, uint64_t out[TG_V__COUNT])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *per;

	memset(out, 0, sizeof(uint64_t) * TG_V__COUNT);
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return -ENOMEM;
	for (uint32_t v = 0; v < TG_V__COUNT; v++) {
		if (bpf_map_lookup_elem(k->stats_fd, &v, per))
			continue; /* a shorter map of an older program: that counter reads 0 */
		for (int c = 0; c < ncpu; c++)
			out[v] += per[c];
	}
	free(per);
	return 0;
}

static uint64_t penalty_count(struct kernel *k)
{
	struct tg_addr key, next;
	uint64_t n = 0;

	while (bpf_map_get_next_key(k->penalty_fd, n ? &key : NULL, &next) == 0) {
		key = next;
		n++;
	}
	return n;
}

/* The kernel's own account of a map's memory: "memlock:" in /proc/self/fdinfo/FD. */
static uint64_t map_bytes(int fd)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "memlock: %llu", &v) == 1)
			break;
	}
	if (f)
		fclose(f);
	return v;
}

int kernel_status(struct kernel *k, struct kernel_status *st)
{
	memset(st, 0, sizeof(*st));
	st->mode = k->mode;
	st->origin = k->origin;
	snprintf(st->pin_dir, sizeof(st->pin_dir), "%s", k->pin_dir);
	st->n_ifaces = k->n_ifaces;
	memcpy(st->ifaces, k->ifaces, sizeof(st->ifaces));
	st->slots = k->capacity;
	st->keys_max = k->keys_max;
	st->penalty_entries = penalty_count(k);
	st->keys_bytes = map_bytes(k->keys_fd);
	st->slots_bytes = map_bytes(k->slots_fd);
	return stats_read(k, st->verdicts);
}

static void addr_text(const struct tg_addr *a, char *buf, size_t len)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (!memcmp(a->addr, v4mapped, sizeof(v4mapped)))
		inet_ntop(AF_INET, a->addr + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a->addr, buf, (socklen_t)len);
}

static void penalty_entry(const struct tg_addr *a, const struct tg_penalty *p,
			  struct kernel_penalty_entry *e)
{
	struct timespec mono, wall;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &wall);
	now = (uint64_t)mono.tv_sec * 1000000000ull + (uint64_t)mono.tv_nsec;
	memset(e, 0, sizeof(*e));
	addr_text(a, e->addr, sizeof(e->addr));
	e->refusals_total = p->refusals_total;
	e->dropped_total = p->dropped_total;
	e->strikes = p->strikes;
	/* until is CLOCK_MONOTONIC in the map; people read wall-clock times */
	if (p->until_ns > now)
		e->until_unix = (int64_t)wall.tv_sec +
				(int64_t)((p->until_ns - now + 999999999ull) / 1000000000ull);
}

int kernel_penalty_list(struct kernel *k, struct kernel_penalty_entry *out, size_t cap, size_t *n)
{
	struct tg_addr key, next;
	struct tg_penalty p;
	bool first = true;

	*n = 0;
	while (*n < cap && bpf_map_get_next_key(k->penalty_fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		if (bpf_map_lookup_elem(k->penalty_fd, &next, &p))
			continue; /* expired from the LRU between the two calls */
		penalty_entry(&next, &p, &out[(*n)++]);
	}
	return 0;
}

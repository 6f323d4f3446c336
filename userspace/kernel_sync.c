/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * tg_keys kept in step with LMDB (the sync_kernel_ops side of sync.h), and what status shows:
 * the per-verdict counters summed over CPUs, the penalty box.
 *
 * Reconcile makes tg_keys hold exactly the active keys' hashes: one pass of batched updates
 * (bpf_map_update_batch, BATCH entries a call), one pass of batched lookups over the map to
 * find entries LMDB does not have (a sorted copy of the wanted hashes, binary search), then
 * batched deletes of those. On a kernel without batch operations for hash maps, it falls
 * back to one call per element.
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

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int keys_put_batch(struct kernel *k, const uint64_t *khash, const uint32_t *slot,
			  const uint32_t *key_gen, size_t n, struct tg_key_val *vals)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);

	for (size_t i = 0; i < n; i += BATCH) {
		uint32_t cnt = (uint32_t)(n - i < BATCH ? n - i : BATCH);

		for (uint32_t j = 0; j < cnt; j++) {
			if (slot[i + j] >= k->capacity)
				return -ERANGE;
			vals[j] = (struct tg_key_val){.slot = slot[i + j], .key_gen = key_gen[i + j]};
		}
		if (bpf_map_update_batch(k->keys_fd, khash + i, vals, &cnt, &bo) == 0)
			continue;
		if (errno != EINVAL && errno != ENOTSUPP && errno != EOPNOTSUPP)
			return -errno;
		for (uint32_t j = 0; j < cnt; j++) { /* no batch support: one by one */
			if (bpf_map_update_elem(k->keys_fd, &khash[i + j], &vals[j], BPF_ANY))
				return -errno;
		}
	}
	return 0;
}

/* Collects into *stale (grown as needed) the keys of tg_keys not in the sorted want. */
static int keys_find_stale(struct kernel *k, const uint64_t *want, size_t n, uint64_t **stale,
			   size_t *n_stale)
{
	uint64_t *keys = malloc(BATCH * sizeof(*keys)), in = 0, out = 0;
	struct tg_key_val *vals = malloc(BATCH * sizeof(*vals));
	size_t cap = 0;
	bool first = true, done = false;
	int rc = 0;

	*stale = NULL;
	*n_stale = 0;
	while (keys && vals && !done && !rc) {
		uint32_t cnt = BATCH;

		if (bpf_map_lookup_batch(k->keys_fd, first ? NULL : &in, &out, keys, vals, &cnt,
					 NULL)) {
			if (errno != ENOENT) {
				rc = -errno;
				break;
			}
			done = true;
		}
		first = false;
		in = out;
		for (uint32_t j = 0; j < cnt && !rc; j++) {
			if (bsearch(&keys[j], want, n, sizeof(*want), u64_cmp))
				continue;
			if (*n_stale == cap) {
				uint64_t *p = realloc(*stale, (cap = cap ? cap * 2 : 1024) * sizeof(*p));

				if (!p) {
					rc = -ENOMEM;
					break;
				}
				*stale = p;
			}
			(*stale)[(*n_stale)++] = keys[j];
		}
	}
	if (!keys || !vals)
		rc = -ENOMEM;
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

int kernel_keys_reconcile(void *kctx, const uint64_t *khash, const uint32_t *slot,
			  const uint32_t *key_gen, size_t n)
{
	struct kernel *k = kctx;
	struct tg_key_val *vals = malloc(BATCH * sizeof(*vals));
	uint64_t *sorted = malloc((n ? n : 1) * sizeof(*sorted)), *stale = NULL;
	size_t n_stale = 0;
	int rc = -ENOMEM;

	if (n > k->keys_max) {
		log_warnx("reconcile: %zu key hashes do not fit %s (%u entries)", n, TG_MAP_KEYS,
			  k->keys_max);
		rc = -ENOSPC;
		goto out;
	}
	if (!vals || !sorted)
		goto out;
	/* Stale entries go first, so the updates never meet a map full of old hashes. */
	memcpy(sorted, khash, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), u64_cmp);
	rc = keys_find_stale(k, sorted, n, &stale, &n_stale);
	if (!rc)
		rc = keys_delete(k, stale, n_stale);
	if (!rc)
		rc = keys_put_batch(k, khash, slot, key_gen, n, vals);
	if (rc)
		log_warnx("reconcile of %s failed: %s", TG_MAP_KEYS, strerror(-rc));
	else
		log_info("reconciled %s: %zu keys, %zu stale entries removed", TG_MAP_KEYS, n,
			 n_stale);
out:
	free(vals);
	free(sorted);
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
		e->until_unix = (int64_t)wall.tv_sec + (int64_t)((p->until_ns - now + 999999999ull) /
								  1000000000ull);
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

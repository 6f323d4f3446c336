/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The verification cache of the key registry: 128-bit SipHash tags of presented
 * credentials (never the credentials) mapped to the index entry and secret generation they
 * were verified against, or to a failure remembered for a while.
 *
 * A miss costs an argon2id computation (tens of milliseconds with production parameters),
 * so the cache must hold its full capacity without conflict misses: a set-associative
 * array would evict working keys from crowded sets long before it is full. It is therefore
 * split into shards by tag, each an exact-capacity table (linear probing over a fixed entry
 * array) with CLOCK eviction once full. Shards have their own mutex, so hits on different
 * shards do not contend; nothing allocates after init.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "keys_internal.h"

#define KCACHE_MAX_SHARDS 256
#define KCACHE_MIN_SHARD 64 /* entries; fewer shards for small caches */

int kcache_init(struct kcache *c, uint32_t max_entries)
{
	size_t n = 1, cap, slots = 2, per;
	uint8_t *p;

	memset(c, 0, sizeof(*c));
	while (n < KCACHE_MAX_SHARDS && max_entries / (n * 2) >= KCACHE_MIN_SHARD)
		n *= 2;
	cap = max_entries / n ? max_entries / n : 1;
	while (slots < cap * 2)
		slots *= 2;
	per = cap * sizeof(struct kcache_ent) + slots * sizeof(uint32_t);
	c->shards = calloc(n, sizeof(*c->shards));
	if (!c->shards)
		return -ENOMEM;
	/* Anonymous memory is zero and costs nothing until touched: a cache sized for a
	 * million credentials takes memory only as credentials are verified. */
	p = mmap(NULL, n * per, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		free(c->shards);
		c->shards = NULL;
		return -ENOMEM;
	}
	c->mem = p;
	c->mem_len = n * per;
	c->nshards = n;
	for (size_t i = 0; i < n; i++) {
		struct kcache_shard *s = &c->shards[i];

		s->cap = (uint32_t)cap;
		s->mask = (uint32_t)slots - 1;
		s->ents = (struct kcache_ent *)(p + i * per);
		s->slots = (uint32_t *)(p + i * per + cap * sizeof(struct kcache_ent));
		pthread_mutex_init(&s->mu, NULL);
	}
	return 0;
}

void kcache_free(struct kcache *c)
{
	for (size_t i = 0; c->shards && i < c->nshards; i++)
		pthread_mutex_destroy(&c->shards[i].mu);
	if (c->mem)
		munmap(c->mem, c->mem_len);
	free(c->shards);
	memset(c, 0, sizeof(*c));
}

static struct kcache_shard *kcache_shard(struct kcache *c, const uint64_t tag[2])
{
	return &c->shards[tag[1] & (c->nshards - 1)];
}

static uint32_t home_slot(const struct kcache_shard *s, const uint64_t tag[2])
{
	return (uint32_t)tag[0] & s->mask;
}

/* Slot holding tag, or the empty slot where it would go. */
static uint32_t find_slot(const struct kcache_shard *s, const uint64_t tag[2])
{
	uint32_t i = home_slot(s, tag);

	while (s->slots[i]) {
		const struct kcache_ent *e = &s->ents[s->slots[i] - 1];

		if (e->tag[0] == tag[0] && e->tag[1] == tag[1])
			break;
		i = (i + 1) & s->mask;
	}
	return i;
}

bool kcache_lookup(struct kcache *c, const uint64_t tag[2], struct kcache_ent *out)
{
	struct kcache_shard *s = kcache_shard(c, tag);
	bool found = false;
	uint32_t i;

	pthread_mutex_lock(&s->mu);
	i = find_slot(s, tag);
	if (s->slots[i]) {
		struct kcache_ent *e = &s->ents[s->slots[i] - 1];

		e->ref = 1;
		*out = *e;
		found = true;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

/* Empties slot i, shifting later entries of the probe run back (no tombstones). */
static void slot_remove(struct kcache_shard *s, uint32_t i)
{
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		j = (j + 1) & s->mask;
		if (!s->slots[j])
			break;
		k = home_slot(s, s->ents[s->slots[j] - 1].tag);
		/* the entry at j may move to i unless its home lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		s->slots[i] = s->slots[j];
		i = j;
	}
	s->slots[i] = 0;
}

/* An entry to reuse: a free one, else the first unreferenced one the clock hand finds. */
static uint32_t entry_take(struct kcache_shard *s)
{
	struct kcache_ent *e;

	if (s->count < s->cap)
		return s->count++;
	for (;;) {
		uint32_t v = s->hand;

		s->hand = (s->hand + 1) % s->cap;
		e = &s->ents[v];
		if (e->ref) {
			e->ref = 0;
			continue;
		}
		slot_remove(s, find_slot(s, e->tag));
		return v;
	}
}

void kcache_put(struct kcache *c, const struct kcache_ent *in)
{
	struct kcache_shard *s = kcache_shard(c, in->tag);
	uint32_t i, v;

	pthread_mutex_lock(&s->mu);
	i = find_slot(s, in->tag);
	if (s->slots[i]) {
		v = s->slots[i] - 1;
	} else {
		v = entry_take(s);
		i = find_slot(s, in->tag); /* the removal may have shifted the run */
		s->slots[i] = v + 1;
	}
	s->ents[v] = *in;
	s->ents[v].ref = 1;
	pthread_mutex_unlock(&s->mu);
}

void kcache_clear(struct kcache *c)
{
	for (size_t i = 0; i < c->nshards; i++)
		pthread_mutex_lock(&c->shards[i].mu);
	/* private anonymous pages read back as zeros: everything empties, memory is returned */
	if (madvise(c->mem, c->mem_len, MADV_DONTNEED) != 0)
		memset(c->mem, 0, c->mem_len);
	for (size_t i = 0; i < c->nshards; i++) {
		c->shards[i].count = 0;
		c->shards[i].hand = 0;
	}
	for (size_t i = c->nshards; i-- > 0;)
		pthread_mutex_unlock(&c->shards[i].mu);
}

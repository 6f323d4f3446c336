/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry's request-rate slots and its sync listener. Each key that is not revoked
 * owns a slot index, persisted in its record; the allocator is a bitmap rebuilt from the
 * records at open and changed only under write_mu, lowest free slot first. The listener
 * (sync.c in the daemon) hears every committed key change, in commit order, as a
 * keys_sync_key: the key's slot, keyed hashes and effective limits, never a secret.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys_internal.h"
#include "log.h"
#include "store.h"

/* ---- the allocator ---- */

static size_t kslots_words(uint32_t cap)
{
	return ((size_t)cap + 63) / 64;
}

int kslots_init(struct kslots *ks, uint32_t cap)
{
	memset(ks, 0, sizeof(*ks));
	ks->bits = calloc(kslots_words(cap), sizeof(*ks->bits));
	if (!ks->bits)
		return -ENOMEM;
	ks->cap = cap;
	return 0;
}

void kslots_free(struct kslots *ks)
{
	free(ks->bits);
	memset(ks, 0, sizeof(*ks));
}

int64_t kslots_take(struct kslots *ks)
{
	size_t nw = kslots_words(ks->cap);

	for (size_t w = ks->low_word; w < nw; w++) {
		uint64_t free_bits = ~ks->bits[w];
		uint32_t slot;

		if (!free_bits) {
			ks->low_word = (uint32_t)w + 1;
			continue;
		}
		slot = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(free_bits));
		if (slot >= ks->cap)
			break;
		ks->bits[w] |= 1ull << (slot % 64);
		ks->used++;
		ks->low_word = (uint32_t)w;
		return slot;
	}
	return -ENOBUFS;
}

int kslots_mark(struct kslots *ks, uint32_t slot)
{
	uint64_t bit = 1ull << (slot % 64);

	if (slot >= ks->cap)
		return -ERANGE;
	if (ks->bits[slot / 64] & bit)
		return -EEXIST;
	ks->bits[slot / 64] |= bit;
	ks->used++;
	return 0;
}

void kslots_put(struct kslots *ks, uint32_t slot)
{
	uint64_t bit = 1ull << (slot % 64);

	if (slot >= ks->cap || !(ks->bits[slot / 64] & bit))
		return;
	ks->bits[slot / 64] &= ~bit;
	ks->used--;
	if (slot / 64 < ks->low_word)
		ks->low_word = slot / 64;
}

/* One key entry's slot at open; logs a bad one and leaves the key without a slot. */
static void slot_load_one(struct keys *k, struct kentry *e, uint32_t *bad)
{
	int rc;

	if (e->kind != KENT_KEY || e->revoked_at || e->slot == TG_SLOT_NONE) {
		if (e->kind == KENT_KEY && !e->revoked_at)
			log_warnx("key %.12s has no request-rate slot in the store (run "
				  "'tollgated migrate'); its requests are refused with 503",
				  e->id);
		return;
	}
	rc = kslots_mark(&k->slots, e->slot);
	if (rc == 0)
		return;
	if (++*bad <= 10)
		log_warnx("key %.12s: request-rate slot %u %s; its requests are refused with 503",
			  e->id, e->slot,
			  rc == -ERANGE ? "is beyond data.rate_slots"
					: "is held by another key too");
	e->slot = TG_SLOT_NONE;
}

int keys_slots_load(struct keys *k)
{
	uint32_t bad = 0;

	for (uint32_t i = 0; i < k->idx.nentries; i++)
		slot_load_one(k, kidx_at(&k->idx, i), &bad);
	if (bad)
		log_warnx(
		    "key registry: %u keys without a usable request-rate slot (data.rate_slots "
		    "is %u)",
		    bad, k->slots.cap);
	return 0;
}

uint32_t keys_slots_used(struct keys *k)
{
	uint32_t n;

	pthread_mutex_lock(&k->write_mu);
	n = k->slots.used;
	pthread_mutex_unlock(&k->write_mu);
	return n;
}

uint32_t keys_slots_capacity(struct keys *k)
{
	return k->slots.cap;
}

/* ---- the sync listener ---- */

void keys_set_sync(struct keys *k, const struct keys_sync_ops *ops, void *ctx)
{
	pthread_mutex_lock(&k->write_mu);
	k->sync_ops = ops;
	k->sync_ctx = ctx;
	pthread_mutex_unlock(&k->write_mu);
}

/*
 * The listener's view of a record at now. The record's tier must exist (tiers in use cannot
 * be removed); if it does not, the key is reported inactive rather than with made-up limits.
 */
static void sync_key_of(struct keys *k, const struct key_record *r, uint32_t slot, int64_t now,
			struct keys_sync_key *out)
{
	const struct ktier *t;

	memset(out, 0, sizeof(*out));
	memcpy(out->id, r->id, sizeof(out->id)); /* both TG_ID_LEN + 1, NUL-terminated */
	out->slot = slot;
	out->khash_cur = r->khash_cur;
	out->khash_prev = r->prev_valid_until ? r->khash_prev : 0;
	out->prev_until = out->khash_prev ? r->prev_valid_until : 0;
	out->expires_at = r->expires_at;
	out->kernel_refuse = true; /* the limits policy is applied by the sync (sync_kernel_refuse) */
	pthread_rwlock_rdlock(&k->lock);
	t = kidx_tier(&k->idx, r->tier);
	if (t)
		limits_merge(&t->t.lim, &r->overrides, &out->limits);
	pthread_rwlock_unlock(&k->lock);
	out->active = t && slot != TG_SLOT_NONE && key_status_at(r, now) == KEY_ACTIVE;
}

void keys_sync_record(struct keys *k, const struct key_record *r, uint32_t old_slot)
{
	struct keys_sync_key sk;
	uint32_t slot = r->slot != TG_SLOT_NONE ? r->slot : old_slot;

	if (!k->sync_ops || !k->sync_ops->changed || slot == TG_SLOT_NONE)
		return;
	sync_key_of(k, r, slot, keys_now_unix(k), &sk);
	if (r->slot == TG_SLOT_NONE)
		sk.active = false;
	k->sync_ops->changed(k->sync_ctx, &sk);
}

struct foreach_ctx {
	struct keys *k;
	int64_t now;
	const char *tier; /* NULL: every key */
	bool only_active; /* skip inactive keys (keys_foreach_active) */
	int (*fn)(void *ctx, const struct keys_sync_key *);
	void *ctx;
	struct key_record r;
	struct keys_sync_key sk;
};

static int foreach_one(const void *key, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct foreach_ctx *c = arg;
	int rc = key_record_decode(v, vlen, &c->r);

	(void)key, (void)klen;
	if (rc)
		return rc;
	if (c->r.revoked_at || c->r.slot == TG_SLOT_NONE ||
	    (c->tier && strcmp(c->tier, c->r.tier) != 0))
		return 0;
	sync_key_of(c->k, &c->r, c->r.slot, c->now, &c->sk);
	if (c->only_active && !c->sk.active)
		return 0;
	rc = c->fn(c->ctx, &c->sk);
	return rc > 0 ? 1 : rc;
}

static int foreach_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_KEYS, NULL, 0, foreach_one, arg);
}

/* Runs the iteration; caller holds write_mu. */
static int foreach_locked(struct keys *k, struct foreach_ctx *c)
{
	c->k = k;
	c->now = keys_now_unix(k);
	return store_read(k->store, foreach_txn, c);
}

/* Stops the iteration with fn's non-zero value, which foreach_one turns into 1 or -errno. */
struct stop_ctx {
	int (*fn)(void *ctx, const struct keys_sync_key *);
	void *ctx;
	int stopped; /* fn's non-zero return */
};

static int stop_fn(void *arg, const struct keys_sync_key *sk)
{
	struct stop_ctx *s = arg;

	s->stopped = s->fn(s->ctx, sk);
	return s->stopped ? 1 : 0;
}

int keys_foreach_active(struct keys *k, int (*fn)(void *ctx, const struct keys_sync_key *),
			void *ctx)
{
	struct stop_ctx s = {fn, ctx, 0};
	struct foreach_ctx *c;
	int rc;

	if (!k || !fn)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->only_active = true;
	c->fn = stop_fn;
	c->ctx = &s;
	pthread_mutex_lock(&k->write_mu);
	rc = foreach_locked(k, c);
	pthread_mutex_unlock(&k->write_mu);
	free(c);
	return rc ? rc : s.stopped;
}

static int tier_changed_one(void *arg, const struct keys_sync_key *sk)
{
	struct keys *k = arg;

	k->sync_ops->changed(k->sync_ctx, sk);
	return 0;
}

void keys_sync_tier(struct keys *k, const char *tier)
{
	struct foreach_ctx *c;
	int rc;

	if (!k->sync_ops || !k->sync_ops->changed)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_warnx("key sync: out of memory; limits of tier %s reach the slots at their "
			  "next request",
			  tier ? tier : "(all)");
		return;
	}
	c->tier = tier;
	c->fn = tier_changed_one;
	c->ctx = k;
	rc = foreach_locked(k, c);
	if (rc < 0)
		log_warnx("key sync: tier %s: %s", tier ? tier : "(all)", strerror(-rc));
	free(c);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Key sync (sync.h): the registry's committed key changes applied to the slot array and,
 * through the kernel loader's ops, to tg_keys. One remembered entry per slot says what the
 * kernel was told (hashes, key_gen) and when it stops being true (expiry, end of a rotation
 * grace), so removals never need the registry. Kernel errors are logged and do not undo
 * anything: a key missing from tg_keys is enforced by the daemon (the kernel fails open).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "ratelimit.h"
#include "sync.h"

/* What sync last did for one slot. */
struct sync_ent {
	uint64_t cur;	    /* khash given to the kernel for the current secret, 0 = none */
	uint64_t prev;	    /* khash of the previous secret in its grace, 0 = none */
	int64_t prev_until; /* Unix s: prev is deleted at this time; 0 = none */
	int64_t expires_at; /* Unix s: the key is retired at this time; 0 = never */
	uint32_t key_gen;   /* the slot's key_gen when sync (re)assigned or adopted it */
	bool known;	    /* a key is active on this slot */
	char id[TG_ID_LEN + 1];
};

struct sync {
	pthread_mutex_t mu;
	struct slots *slots;
	const struct sync_kernel_ops *kops; /* NULL: no kernel path */
	void *kctx;
	struct sync_ent *ent; /* cap entries, anonymous mapping (untouched pages cost nothing) */
	uint32_t cap;
	uint32_t hi;	   /* entries >= hi are all unknown */
	size_t active;	   /* known entries */
	int64_t next_due;  /* earliest expires_at/prev_until of known entries, or INT64_MAX */
	uint64_t *seen;	   /* during sync_reconcile: slots reported active (bitmap) */
	bool range_logged; /* a slot beyond the array was logged once */
	struct sync_policy policy; /* under mu */
};

bool sync_kernel_refuse(const struct sync_policy *p, const struct limits *lim)
{
	/* the windows the kernel enforces (tg_slot's): requests per second always, per minute
	 * and per hour when set; one flag covers them all, so each must block */
	static const enum limit_field rate[] = {LIMIT_RPS, LIMIT_RPM, LIMIT_RPH};
	uint64_t mode = lim->v[LIMIT_MODE];

	/* LIMIT_UNSET only in override sets; effective limits hold 0 (inherit) or a value */
	if (mode == LIMIT_MODE_INHERIT || mode == LIMIT_UNSET)
		mode = p->mode;
	if (!p->limits_enabled || mode != LIMIT_MODE_HARD)
		return false;
	for (size_t i = 0; i < sizeof(rate) / sizeof(rate[0]); i++) {
		if (rate[i] != LIMIT_RPS && (!lim->v[rate[i]] || lim->v[rate[i]] == LIMIT_UNSET))
			continue;
		if (limit_action_of(lim, rate[i], p->action) != LIMIT_ACT_BLOCK)
			return false;
	}
	return true;
}

void sync_set_policy(struct sync *s, const struct sync_policy *p)
{
	pthread_mutex_lock(&s->mu);
	s->policy = *p;
	pthread_mutex_unlock(&s->mu);
}

struct sync *sync_new(struct slots *slots, const struct sync_kernel_ops *kops, void *kctx)
{
	struct sync *s;

	if (!slots || slots_capacity(slots) == 0) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cap = slots_capacity(slots);
	s->ent = mmap(NULL, (size_t)s->cap * sizeof(*s->ent), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->ent == MAP_FAILED) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->slots = slots;
	s->kops = kops;
	s->kctx = kctx;
	s->next_due = INT64_MAX;
	/* the config's defaults: the kernel refuses keys that block in hard mode */
	s->policy = (struct sync_policy){true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK};
	return s;
}

void sync_free(struct sync *s)
{
	if (!s)
		return;
	munmap(s->ent, (size_t)s->cap * sizeof(*s->ent));
	free(s->seen);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

size_t sync_active_count(struct sync *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->active;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- kernel calls (errors logged by key id, never by hash) ---- */

static void kput(struct sync *s, const char *id, uint64_t khash, uint32_t slot, uint32_t gen)
{
	int rc;

	if (!khash || !s->kops || !s->kops->key_put)
		return;
	rc = s->kops->key_put(s->kctx, khash, slot, gen);
	if (rc)
		log_warnx("key sync: kernel entry of key %s not written (%s); the daemon enforces "
			  "it alone",
			  id, strerror(-rc));
}

static void kdel(struct sync *s, const char *id, uint64_t khash)
{
	int rc;

	if (!khash || !s->kops || !s->kops->key_del)
		return;
	rc = s->kops->key_del(s->kctx, khash);
	if (rc && rc != -ENOENT)
		log_warnx("key sync: kernel entry of key %s not deleted: %s", id, strerror(-rc));
}

/* ---- per-slot changes; caller holds mu ---- */

static void due_note(struct sync *s, const struct sync_ent *e)
{
	if (e->expires_at && e->expires_at < s->next_due)
		s->next_due = e->expires_at;
	if (e->prev_until && e->prev_until < s->next_due)
		s->next_due = e->prev_until;
}

static void ent_forget(struct sync *s, struct sync_ent *e)
{
	if (e->known)
		s->active--;
	memset(e, 0, sizeof(*e));
}

/* The slot of k, or NULL (logged once) when it lies beyond the array. */
static struct tg_slot *slot_of(struct sync *s, const struct keys_sync_key *k)
{
	struct tg_slot *sl = slots_at(s->slots, k->slot);

	if (!sl && !s->range_logged) {
		s->range_logged = true;
		log_warnx("key sync: key %s has slot %u beyond the %u slots of the array", k->id,
			  k->slot, s->cap);
	}
	return sl;
}

/* The key no longer counts: its kernel entries go, its slot is retired. */
static void apply_inactive(struct sync *s, const struct keys_sync_key *k)
{
	struct tg_slot *sl = slot_of(s, k);
	struct sync_ent *e;

	if (!sl)
		return;
	e = &s->ent[k->slot];
	kdel(s, k->id, e->cur);
	kdel(s, k->id, e->prev);
	if (k->khash_cur != e->cur && k->khash_cur != e->prev)
		kdel(s, k->id, k->khash_cur);
	if (k->khash_prev && k->khash_prev != e->cur && k->khash_prev != e->prev)
		kdel(s, k->id, k->khash_prev);
	slots_set_flags(sl, 0);
	ent_forget(s, e);
	if (s->seen)
		s->seen[k->slot / 64] &= ~(1ull << (k->slot % 64));
}

/*
 * Does the key get a fresh bucket? At reconcile (adopt), a slot that is ACTIVE with the
 * key's parameters is kept: after a restart over pinned maps its TATs are the key's. After
 * that, the remembered key_gen decides: another key_gen means someone else assigned it.
 */
static bool needs_fresh(const struct sync_ent *e, const struct tg_slot *sl,
			const struct keys_sync_key *k, bool adopt)
{
	if (!(slots_flags(sl) & TG_SLOT_ACTIVE))
		return true;
	if (adopt && !e->known)
		return !slots_limits_match(sl, &k->limits);
	return !e->known || slots_key_gen(sl) != e->key_gen;
}

/* Hashes the kernel had for this slot that the key no longer has. */
static void drop_stale_hashes(struct sync *s, const struct sync_ent *e,
			      const struct keys_sync_key *k)
{
	const uint64_t old[2] = {e->cur, e->prev};

	for (int i = 0; i < 2; i++) {
		if (old[i] && old[i] != k->khash_cur && old[i] != k->khash_prev)
			kdel(s, k->id, old[i]);
	}
}

/* The key is active: its slot holds its limits and flags, the kernel knows its hashes. */
static void apply_active(struct sync *s, const struct keys_sync_key *k, bool batch)
{
	struct tg_slot *sl = slot_of(s, k);
	struct sync_ent *e;
	uint32_t gen;
	bool refuse;

	if (!sl)
		return;
	e = &s->ent[k->slot];
	if (needs_fresh(e, sl, k, batch))
		slots_assign(sl, &k->limits);
	else
		slots_set_limits(sl, &k->limits);
	refuse = k->kernel_refuse && sync_kernel_refuse(&s->policy, &k->limits);
	slots_set_flags(sl, TG_SLOT_ACTIVE | (refuse ? TG_SLOT_KERNEL_REFUSE : 0));
	gen = slots_key_gen(sl);
	drop_stale_hashes(s, e, k);
	if (!batch) { /* at reconcile the kernel gets every entry in one call at the end */
		kput(s, k->id, k->khash_cur, k->slot, gen);
		kput(s, k->id, k->khash_prev, k->slot, gen);
	}
	if (!e->known)
		s->active++;
	*e = (struct sync_ent){k->khash_cur,
			       k->khash_prev,
			       k->khash_prev ? k->prev_until : 0,
			       k->expires_at,
			       gen,
			       true,
			       {0}};
	memcpy(e->id, k->id, sizeof(e->id));
	e->id[TG_ID_LEN] = '\0';
	if (k->slot >= s->hi)
		s->hi = k->slot + 1;
	if (s->seen)
		s->seen[k->slot / 64] |= 1ull << (k->slot % 64);
	due_note(s, e);
}

void sync_key_changed(void *sv, const struct keys_sync_key *k)
{
	struct sync *s = sv;

	if (!s || !k)
		return;
	pthread_mutex_lock(&s->mu);
	if (k->active)
		apply_active(s, k, false);
	else
		apply_inactive(s, k);
	pthread_mutex_unlock(&s->mu);
}

/* ---- time ---- */

/* One known entry at now: retire it or drop its previous hash when due. */
static void tick_one(struct sync *s, uint32_t i, int64_t now)
{
	struct sync_ent *e = &s->ent[i];

	if (e->expires_at && now >= e->expires_at) {
		kdel(s, e->id, e->cur);
		kdel(s, e->id, e->prev);
		slots_set_flags(slots_at(s->slots, i), 0);
		log_info("key %s expired: its request-rate slot %u is retired", e->id, i);
		ent_forget(s, e);
		return;
	}
	if (e->prev_until && now >= e->prev_until) {
		kdel(s, e->id, e->prev);
		e->prev = 0;
		e->prev_until = 0;
	}
	due_note(s, e);
}

/*
 * Known imprecision: when something is due the scan covers every slot up to the highest
 * used one (a few ms for a million keys), at most once per due time.
 */
void sync_tick(struct sync *s, int64_t now_wall)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (now_wall >= s->next_due) {
		s->next_due = INT64_MAX;
		for (uint32_t i = 0; i < s->hi; i++) {
			if (s->ent[i].known)
				tick_one(s, i, now_wall);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* ---- reconcile ---- */

static int reconcile_one(void *arg, const struct keys_sync_key *k)
{
	struct sync *s = arg;

	pthread_mutex_lock(&s->mu);
	apply_active(s, k, true);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Slots no active key was reported on lose their flags and what sync knew of them. */
static void retire_unseen(struct sync *s)
{
	for (uint32_t i = 0; i < s->cap; i++) {
		struct tg_slot *sl;

		if (s->seen[i / 64] & (1ull << (i % 64)))
			continue;
		sl = slots_at(s->slots, i);
		if (slots_flags(sl))
			slots_set_flags(sl, 0);
		if (i < s->hi && s->ent[i].known)
			ent_forget(s, &s->ent[i]);
	}
}

struct kbatch {
	uint64_t *khash;
	uint32_t *slot, *gen;
	size_t n;
};

static void kbatch_add(struct kbatch *b, uint64_t khash, uint32_t slot, uint32_t gen)
{
	if (!khash)
		return;
	b->khash[b->n] = khash;
	b->slot[b->n] = slot;
	b->gen[b->n] = gen;
	b->n++;
}

/* tg_keys' new content, from what sync now knows (changes during reconcile included). */
static int kernel_reconcile(struct sync *s)
{
	struct kbatch b = {0};
	size_t max = 2 * s->active + 1;
	int rc = -ENOMEM;

	if (!s->kops || !s->kops->reconcile)
		return 0;
	b.khash = malloc(max * sizeof(*b.khash));
	b.slot = malloc(max * sizeof(*b.slot));
	b.gen = malloc(max * sizeof(*b.gen));
	if (!b.khash || !b.slot || !b.gen)
		goto out;
	for (uint32_t i = 0; i < s->hi; i++) {
		const struct sync_ent *e = &s->ent[i];

		if (!e->known)
			continue;
		kbatch_add(&b, e->cur, i, e->key_gen);
		kbatch_add(&b, e->prev, i, e->key_gen);
	}
	rc = s->kops->reconcile(s->kctx, b.khash, b.slot, b.gen, b.n);
	if (rc)
		log_warnx("key sync: kernel key table not reconciled (%s); the daemon enforces "
			  "every key",
			  strerror(-rc));
out:
	free(b.khash);
	free(b.slot);
	free(b.gen);
	return rc;
}

int sync_reconcile(struct sync *s, struct keys *k)
{
	uint64_t *seen;
	size_t active;
	int rc;

	if (!s || !k)
		return -EINVAL;
	seen = calloc(((size_t)s->cap + 63) / 64, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	s->seen = seen;
	pthread_mutex_unlock(&s->mu);
	rc = keys_foreach_active(k, reconcile_one, s);
	pthread_mutex_lock(&s->mu);
	if (!rc)
		retire_unseen(s);
	s->seen = NULL;
	if (!rc)
		rc = kernel_reconcile(s);
	active = s->active;
	pthread_mutex_unlock(&s->mu);
	free(seen);
	if (!rc)
		log_info("key sync: %zu active keys in their request-rate slots", active);
	return rc;
}

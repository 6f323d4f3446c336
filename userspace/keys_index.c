/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry's in-memory index: one compact entry per API key and admin token (what
 * verification needs, never a secret or a hash), two id tables, interned strings and
 * override sets, and the tiers. Sized for a million keys loaded in well under a second at
 * about a hundred bytes each. Callers hold the registry's rwlock (readers for lookups,
 * writer for changes); nothing here locks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "keys_internal.h"
#include "store.h"
#include "tollgate/siphash.h"
#include "util.h"

static uint64_t kidx_hash(const struct kidx *x, const void *p, size_t len)
{
	return tg_siphash64(x->hkey, p, len);
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;

	while (p < n)
		p <<= 1;
	return p;
}

struct kentry *kidx_at(const struct kidx *x, uint32_t eidx)
{
	return &x->chunks[eidx >> KIDX_CHUNK_SHIFT][eidx & (KIDX_CHUNK - 1)];
}

/*
 * Big arrays come straight from mmap with MAP_POPULATE: faulting pages in one call is far
 * cheaper than a fault per page on first touch (a third of the load time on a VM).
 */
static void *kmem_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void kmem_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

static int ktable_init(struct ktable *t, size_t hint)
{
	size_t n = pow2_at_least(hint * 2);

	t->slots = kmem_alloc(n * sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = n - 1;
	t->count = 0;
	return 0;
}

static void ktable_free(struct ktable *t)
{
	kmem_free(t->slots, (t->mask + 1) * sizeof(*t->slots));
	t->slots = NULL;
}

/* The 32-bit fingerprint of an id: its slot's upper half, and its home slot. */
static uint32_t id_fp(const struct kidx *x, const char id[TG_ID_LEN])
{
	return (uint32_t)(kidx_hash(x, id, TG_ID_LEN) >> 32);
}

/* Slot of id in t: its own if present, else the empty one where it would go. */
static size_t ktable_slot(const struct kidx *x, const struct ktable *t, const char id[TG_ID_LEN],
			  uint32_t fp)
{
	size_t i = fp & t->mask;

	for (; t->slots[i]; i = (i + 1) & t->mask) {
		uint64_t v = t->slots[i];

		/* the fingerprint spares loading the entry of nearly every other id */
		if ((uint32_t)(v >> 32) == fp &&
		    memcmp(kidx_at(x, (uint32_t)v - 1)->id, id, TG_ID_LEN) == 0)
			break;
	}
	return i;
}

static int ktable_grow(struct ktable *t)
{
	struct ktable n;

	if (ktable_init(&n, t->mask + 1))
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++) {
		size_t j;

		if (!t->slots[i])
			continue;
		j = (size_t)(t->slots[i] >> 32) & n.mask;
		while (n.slots[j])
			j = (j + 1) & n.mask;
		n.slots[j] = t->slots[i];
	}
	n.count = t->count;
	ktable_free(t);
	*t = n;
	return 0;
}

/* Pads a NUL-terminated id to the 12 bytes entries hold. */
static void id_pad(char out[TG_ID_LEN], const char *id)
{
	size_t n = strnlen(id, TG_ID_LEN);

	memset(out, 0, TG_ID_LEN);
	memcpy(out, id, n);
}

int kidx_find(const struct kidx *x, enum kent_kind kind, const char *id)
{
	const struct ktable *t = kind == KENT_KEY ? &x->keys : &x->tokens;
	char pid[TG_ID_LEN];
	size_t i;

	id_pad(pid, id);
	i = ktable_slot(x, t, pid, id_fp(x, pid));
	return t->slots[i] ? (int)((uint32_t)t->slots[i] - 1) : -ENOENT;
}

/* Makes room for one more entry (a chunk allocated ahead); 0 or -ENOMEM. */
static int kidx_reserve_entry(struct kidx *x)
{
	struct kentry **c;

	if ((x->nentries >> KIDX_CHUNK_SHIFT) < x->nchunks)
		return 0;
	c = realloc(x->chunks, (x->nchunks + 1) * sizeof(*c));
	if (!c)
		return -ENOMEM;
	x->chunks = c;
	c[x->nchunks] = kmem_alloc(KIDX_CHUNK * sizeof(struct kentry));
	if (!c[x->nchunks])
		return -ENOMEM;
	x->nchunks++;
	return 0;
}

/* Index of a new zeroed entry, growing the chunk list if needed; -ENOMEM. */
static int64_t kidx_alloc(struct kidx *x)
{
	if (kidx_reserve_entry(x))
		return -ENOMEM;
	return x->nentries++;
}

/* Finds or adds the entry for id in the table of kind; -ENOMEM. */
static int64_t kidx_upsert(struct kidx *x, enum kent_kind kind, const char *id)
{
	struct ktable *t = kind == KENT_KEY ? &x->keys : &x->tokens;
	char pid[TG_ID_LEN];
	uint32_t fp;
	int64_t e;
	size_t i;

	id_pad(pid, id);
	fp = id_fp(x, pid);
	i = ktable_slot(x, t, pid, fp);
	if (t->slots[i])
		return (uint32_t)t->slots[i] - 1; /* an update never allocates */
	if ((t->count + 1) * 2 > t->mask + 1) {
		if (ktable_grow(t))
			return -ENOMEM;
		i = ktable_slot(x, t, pid, fp);
	}
	e = kidx_alloc(x);
	if (e < 0)
		return e;
	memcpy(kidx_at(x, (uint32_t)e)->id, pid, TG_ID_LEN);
	kidx_at(x, (uint32_t)e)->kind = (uint8_t)kind;
	t->slots[i] = (uint64_t)fp << 32 | ((uint32_t)e + 1);
	t->count++;
	return e;
}

/* ---- interned strings and override sets ---- */

static int kstrings_rehash(struct kidx *x, struct kstrings *s, uint32_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (uint32_t sid = 0; sid < s->n; sid++) {
		uint32_t i = (uint32_t)kidx_hash(x, s->strs[sid], strlen(s->strs[sid])) & (nslots - 1);

		while (slots[i])
			i = (i + 1) & (nslots - 1);
		slots[i] = sid + 1;
	}
	free(s->slots);
	s->slots = slots;
	s->mask = nslots - 1;
	return 0;
}

/* Slot of str in the string table: its own, or the empty one where it would go. */
static uint32_t kstrings_probe(const struct kidx *x, const char *str)
{
	const struct kstrings *s = &x->strs;
	uint32_t i = (uint32_t)kidx_hash(x, str, strlen(str)) & s->mask;

	while (s->slots[i] && strcmp(s->strs[s->slots[i] - 1], str) != 0)
		i = (i + 1) & s->mask;
	return i;
}

/*
 * Returns the sid of str, adding it if new; -ENOMEM. A string already interned never
 * allocates: the table grows only to add one, so what kidx_prepare interned before a
 * commit cannot fail after it.
 */
static int64_t kstrings_intern(struct kidx *x, const char *str)
{
	struct kstrings *s = &x->strs;
	uint32_t i = kstrings_probe(x, str);

	if (s->slots[i])
		return s->slots[i] - 1;
	if ((s->n + 1) * 2 > s->mask + 1) {
		if (kstrings_rehash(x, s, (s->mask + 1) * 2))
			return -ENOMEM;
		i = kstrings_probe(x, str);
	}
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		char **n = realloc(s->strs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->strs = n;
		s->cap = cap;
	}
	s->strs[s->n] = strdup(str);
	if (!s->strs[s->n])
		return -ENOMEM;
	s->slots[i] = s->n + 1;
	return s->n++;
}

const char *kidx_str(const struct kidx *x, uint32_t sid)
{
	return x->strs.strs[sid];
}

/* No override and no per-limit action: the shared empty set (oid 0). */
static bool limits_empty(const struct limits *l)
{
	for (int f = 0; f < LIMIT__COUNT; f++) {
		if (l->v[f] != LIMIT_UNSET)
			return false;
	}
	for (int f = 0; f < LIMIT_ACT_SLOTS; f++) {
		if (l->act[f])
			return false;
	}
	return true;
}

static int koverrides_rehash(struct kidx *x, struct koverrides *o, uint32_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (uint32_t oid = 0; oid < o->n; oid++) {
		uint32_t i = (uint32_t)kidx_hash(x, &o->v[oid], sizeof(o->v[oid])) & (nslots - 1);

		while (slots[i])
			i = (i + 1) & (nslots - 1);
		slots[i] = oid + 1;
	}
	free(o->slots);
	o->slots = slots;
	o->mask = nslots - 1;
	return 0;
}

/* Slot of override set l: its own, or the empty one where it would go. */
static uint32_t koverrides_probe(const struct kidx *x, const struct limits *l)
{
	const struct koverrides *o = &x->ovr;
	uint32_t i = (uint32_t)kidx_hash(x, l, sizeof(*l)) & o->mask;

	while (o->slots[i] && memcmp(&o->v[o->slots[i] - 1], l, sizeof(*l)) != 0)
		i = (i + 1) & o->mask;
	return i;
}

/* Returns the oid of an override set (0 when empty), adding it if new; -ENOMEM. A set
 * already interned never allocates (as for strings). */
static int64_t koverrides_intern(struct kidx *x, const struct limits *l)
{
	struct koverrides *o = &x->ovr;
	uint32_t i;

	if (limits_empty(l))
		return 0;
	i = koverrides_probe(x, l);
	if (o->slots[i])
		return o->slots[i] - 1;
	if ((o->n + 1) * 2 > o->mask + 1) {
		if (koverrides_rehash(x, o, (o->mask + 1) * 2))
			return -ENOMEM;
		i = koverrides_probe(x, l);
	}
	if (o->n == o->cap) {
		uint32_t cap = o->cap * 2;
		struct limits *n = realloc(o->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		o->v = n;
		o->cap = cap;
	}
	o->v[o->n] = *l;
	o->slots[i] = o->n + 1;
	return o->n++;
}

const struct limits *kidx_overrides(const struct kidx *x, uint32_t oid)
{
	return &x->ovr.v[oid];
}

/* ---- entries from records ---- */

/* Sets the entry's fields from the record; the strings must be interned already. */
static void key_fill(struct kentry *k, const struct key_record *r, const int64_t sid[4])
{
	k->secret_gen = r->secret_gen;
	k->owner = (uint32_t)sid[0];
	k->service = (uint32_t)sid[1];
	k->tier = (uint32_t)sid[2];
	k->overrides = (uint32_t)sid[3];
	k->revoked_at = r->revoked_at;
	k->expires_at = r->expires_at;
	k->prev_valid_until = r->prev_valid_until;
	k->slot = r->revoked_at ? TG_SLOT_NONE : r->slot;
	if (r->last_used_at > atomic_load_explicit(&k->last_used, memory_order_relaxed))
		atomic_store_explicit(&k->last_used, r->last_used_at, memory_order_relaxed);
	if (r->last_used_at > k->last_flushed)
		k->last_flushed = r->last_used_at;
}

/* Interns the record's owner, service, tier and overrides into sid; -ENOMEM. */
static int key_intern(struct kidx *x, const struct key_record *r, int64_t sid[4])
{
	sid[0] = kstrings_intern(x, r->owner);
	sid[1] = kstrings_intern(x, r->service);
	sid[2] = kstrings_intern(x, r->tier);
	sid[3] = koverrides_intern(x, &r->overrides);
	return sid[0] < 0 || sid[1] < 0 || sid[2] < 0 || sid[3] < 0 ? -ENOMEM : 0;
}

/* Room for n more tiers without a reallocation; 0 or -ENOMEM. */
static int tiers_reserve(struct kidx *x, size_t n)
{
	size_t cap = x->tiers_cap ? x->tiers_cap : 8;
	struct ktier *t;

	while (cap < x->ntiers + n)
		cap *= 2;
	if (cap == x->tiers_cap)
		return 0;
	t = realloc(x->tiers, cap * sizeof(*t));
	if (!t)
		return -ENOMEM;
	x->tiers = t;
	x->tiers_cap = cap;
	return 0;
}

int kidx_prepare(struct kidx *x, const char *const *strs, size_t nstrs, const struct limits *ovr,
		 size_t ntiers)
{
	for (size_t i = 0; i < nstrs; i++) {
		if (strs[i] && kstrings_intern(x, strs[i]) < 0)
			return -ENOMEM;
	}
	if (ovr && koverrides_intern(x, ovr) < 0)
		return -ENOMEM;
	if (kidx_reserve_entry(x))
		return -ENOMEM;
	if ((x->keys.count + 1) * 2 > x->keys.mask + 1 && ktable_grow(&x->keys))
		return -ENOMEM;
	if ((x->tokens.count + 1) * 2 > x->tokens.mask + 1 && ktable_grow(&x->tokens))
		return -ENOMEM;
	return ntiers ? tiers_reserve(x, ntiers) : 0;
}

int kidx_put_key(struct kidx *x, const struct key_record *r)
{
	int64_t e, sid[4];

	if (key_intern(x, r, sid))
		return -ENOMEM;
	e = kidx_upsert(x, KENT_KEY, r->id);
	if (e < 0)
		return (int)e;
	key_fill(kidx_at(x, (uint32_t)e), r, sid);
	return (int)e;
}

int kidx_put_token(struct kidx *x, const struct token_record *r)
{
	int64_t e, consumer = kstrings_intern(x, r->consumer), tier = kstrings_intern(x, r->tier);
	struct kentry *k;

	if (consumer < 0 || tier < 0)
		return -ENOMEM;
	e = kidx_upsert(x, KENT_TOKEN, r->id);
	if (e < 0)
		return (int)e;
	k = kidx_at(x, (uint32_t)e);
	k->role = (uint8_t)r->role;
	k->owner = (uint32_t)consumer;
	k->tier = (uint32_t)tier;
	k->revoked_at = r->revoked_at;
	if (r->last_used_at > atomic_load_explicit(&k->last_used, memory_order_relaxed))
		atomic_store_explicit(&k->last_used, r->last_used_at, memory_order_relaxed);
	if (r->last_used_at > k->last_flushed)
		k->last_flushed = r->last_used_at;
	return (int)e;
}

/* ---- tiers ---- */

const struct ktier *kidx_tier(const struct kidx *x, const char *name)
{
	for (size_t i = 0; i < x->ntiers; i++) {
		if (strcmp(x->tiers[i].t.name, name) == 0)
			return &x->tiers[i];
	}
	return NULL;
}

const struct ktier *kidx_tier_sid(const struct kidx *x, uint32_t sid)
{
	for (size_t i = 0; i < x->ntiers; i++) {
		if (x->tiers[i].sid == sid)
			return &x->tiers[i];
	}
	return NULL;
}

int kidx_tier_set(struct kidx *x, const struct tier *t)
{
	int64_t sid = kstrings_intern(x, t->name);
	size_t i = 0;

	if (sid < 0)
		return -ENOMEM;
	while (i < x->ntiers && strcmp(x->tiers[i].t.name, t->name) < 0)
		i++;
	if (i < x->ntiers && strcmp(x->tiers[i].t.name, t->name) == 0) {
		x->tiers[i].t = *t;
		return 0;
	}
	if (tiers_reserve(x, 1))
		return -ENOMEM;
	memmove(&x->tiers[i + 1], &x->tiers[i], (x->ntiers - i) * sizeof(*x->tiers));
	x->tiers[i].t = *t;
	x->tiers[i].sid = (uint32_t)sid;
	x->ntiers++;
	return 0;
}

int kidx_tiers_build(struct kidx *x, const struct tier *t, size_t n, struct ktier **out,
		     size_t *cap)
{
	struct ktier *old = x->tiers;
	size_t oldn = x->ntiers, oldcap = x->tiers_cap;
	int rc = 0;

	/* kidx_tier_set sorts and interns; run it on an empty set, then put the old one back */
	x->tiers = NULL;
	x->ntiers = x->tiers_cap = 0;
	rc = tiers_reserve(x, n ? n : 1);
	for (size_t i = 0; !rc && i < n; i++)
		rc = kidx_tier_set(x, &t[i]);
	*out = x->tiers;
	*cap = x->tiers_cap;
	if (rc) {
		free(x->tiers);
		*out = NULL;
	}
	x->tiers = old;
	x->ntiers = oldn;
	x->tiers_cap = oldcap;
	return rc;
}

void kidx_tiers_install(struct kidx *x, struct ktier *tiers, size_t n, size_t cap)
{
	free(x->tiers);
	x->tiers = tiers;
	x->ntiers = n;
	x->tiers_cap = cap;
}

int kidx_tiers_set_all(struct kidx *x, const struct tier *t, size_t n)
{
	struct ktier *built;
	size_t cap;
	int rc = kidx_tiers_build(x, t, n, &built, &cap);

	if (!rc)
		kidx_tiers_install(x, built, n, cap);
	return rc;
}

bool kidx_tier_used(const struct kidx *x, const char *name)
{
	const struct ktier *t = kidx_tier(x, name);

	if (!t)
		return false;
	for (uint32_t e = 0; e < x->nentries; e++) {
		const struct kentry *k = kidx_at(x, e);

		if (k->tier == t->sid && (k->kind == KENT_KEY || k->role == ROLE_CONSUMER))
			return true;
	}
	return false;
}

/* ---- lifecycle and loading ---- */

int kidx_init(struct kidx *x, size_t nkeys, size_t ntokens)
{
	int rc;

	memset(x, 0, sizeof(*x));
	rc = tg_getrandom(x->hkey, sizeof(x->hkey));
	if (rc)
		return rc;
	x->ovr.cap = 16;
	x->ovr.v = malloc(x->ovr.cap * sizeof(*x->ovr.v));
	if (!x->ovr.v || ktable_init(&x->keys, nkeys) || ktable_init(&x->tokens, ntokens) ||
	    kstrings_rehash(x, &x->strs, 64) || koverrides_rehash(x, &x->ovr, 64))
		goto nomem;
	limits_clear(&x->ovr.v[0]);
	x->ovr.n = 1;
	if (kstrings_intern(x, "") != 0)
		goto nomem;
	return 0;
nomem:
	kidx_free(x);
	return -ENOMEM;
}

void kidx_free(struct kidx *x)
{
	for (uint32_t i = 0; i < x->nchunks; i++)
		kmem_free(x->chunks[i], KIDX_CHUNK * sizeof(struct kentry));
	free(x->chunks);
	ktable_free(&x->keys);
	ktable_free(&x->tokens);
	for (uint32_t i = 0; i < x->strs.n; i++)
		free(x->strs.strs[i]);
	free(x->strs.strs);
	free(x->strs.slots);
	free(x->ovr.v);
	free(x->ovr.slots);
	free(x->tiers);
	memset(x, 0, sizeof(*x));
}

struct kidx_load_ctx {
	struct kidx *x;
	uint32_t *fps; /* fingerprints of the keys loaded so far, for the bulk table build */
	size_t nfps, capfps;
	struct key_record kr;
	struct token_record tr;
	struct tier t;
};

/*
 * Loads one key record into a new entry, leaving the id table for ktable_bulk: inserting a
 * million random ids one by one waits on a cache miss each, which a bulk pass prefetches.
 * Ids are unique because they are the store's keys (checked against the record).
 */
static int load_key(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct kidx_load_ctx *c = arg;
	int64_t e, sid[4];
	char pid[TG_ID_LEN];
	int rc;

	rc = key_record_decode(v, vlen, &c->kr);
	if (rc)
		return rc;
	if (klen != strlen(c->kr.id) || memcmp(k, c->kr.id, klen) != 0)
		return -EINVAL;
	if (c->nfps == c->capfps) { /* more records than counted: cannot be in one snapshot */
		rc = kidx_put_key(c->x, &c->kr);
		return rc < 0 ? rc : 0;
	}
	if (key_intern(c->x, &c->kr, sid))
		return -ENOMEM;
	e = kidx_alloc(c->x);
	if (e < 0)
		return (int)e;
	id_pad(pid, c->kr.id);
	memcpy(kidx_at(c->x, (uint32_t)e)->id, pid, TG_ID_LEN);
	kidx_at(c->x, (uint32_t)e)->kind = KENT_KEY;
	key_fill(kidx_at(c->x, (uint32_t)e), &c->kr, sid);
	c->fps[c->nfps++] = id_fp(c->x, pid);
	return 0;
}

/* Inserts entries 0..n-1 (new, distinct ids with fingerprints fp) into the key table. */
static void ktable_bulk(struct kidx *x, const uint32_t *fp, size_t n)
{
	struct ktable *t = &x->keys;

	for (size_t i = 0; i < n; i++) {
		size_t j = fp[i] & t->mask;

		if (i + 16 < n)
			__builtin_prefetch(&t->slots[fp[i + 16] & t->mask], 1);
		while (t->slots[j])
			j = (j + 1) & t->mask;
		t->slots[j] = (uint64_t)fp[i] << 32 | (uint32_t)(i + 1);
	}
	t->count += n;
}

static int load_token(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct kidx_load_ctx *c = arg;
	int rc;

	(void)k;
	(void)klen;
	rc = token_record_decode(v, vlen, &c->tr);
	if (rc)
		return rc;
	rc = kidx_put_token(c->x, &c->tr);
	return rc < 0 ? rc : 0;
}

static int load_tier(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct kidx_load_ctx *c = arg;
	int rc;

	(void)k;
	(void)klen;
	rc = tier_decode(v, vlen, &c->t);
	return rc ? rc : kidx_tier_set(c->x, &c->t);
}

static int load_txn(struct store_txn *t, void *arg)
{
	struct kidx_load_ctx *c = arg;
	size_t nkeys = 0, ntokens = 0;
	int rc;

	rc = store_count(t, STORE_DB_KEYS, &nkeys);
	if (!rc)
		rc = store_count(t, STORE_DB_TOKENS, &ntokens);
	if (!rc)
		rc = kidx_init(c->x, nkeys, ntokens);
	if (rc)
		return rc;
	c->capfps = nkeys;
	c->fps = malloc((nkeys ? nkeys : 1) * sizeof(*c->fps));
	if (!c->fps)
		rc = -ENOMEM;
	if (!rc)
		rc = store_iter(t, STORE_DB_TIERS, NULL, 0, load_tier, c);
	/* keys first, so the bulk-built ones are entries 0..nfps-1 */
	if (!rc)
		rc = store_iter(t, STORE_DB_KEYS, NULL, 0, load_key, c);
	if (!rc)
		ktable_bulk(c->x, c->fps, c->nfps);
	if (!rc)
		rc = store_iter(t, STORE_DB_TOKENS, NULL, 0, load_token, c);
	free(c->fps);
	c->fps = NULL;
	if (rc)
		kidx_free(c->x);
	return rc;
}

int kidx_load(struct kidx *x, struct store *s)
{
	struct kidx_load_ctx *c = calloc(1, sizeof(*c));
	int rc;

	memset(x, 0, sizeof(*x));
	if (!c)
		return -ENOMEM;
	c->x = x;
	rc = store_read(s, load_txn, c);
	free(c);
	return rc;
}

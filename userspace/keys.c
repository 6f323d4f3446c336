/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry (keys.h): opening and closing it, the credential format, argon2id, and
 * verification with its cache and throttles. The only file of the daemon that includes
 * argon2.h. Changes to keys, tiers and tokens live in keys_admin.c and keys_tokens.c, the
 * index in keys_index.c, the cache in keys_cache.c.
 *
 * Verification order, cheapest first: format, cache (hit: a SipHash and two short locks),
 * index (unknown id), per-id failure window, global argon2 budget, then argon2id.
 */
#include <argon2.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys_internal.h"
#include "log.h"
#include "store.h"
#include "tollgate/siphash.h"
#include "util.h"

static atomic_ulong keys_argon2_calls;

void keys_opts_default(struct keys_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->t_cost = 2; /* OWASP's argon2id recommendation: m=19 MiB, t=2, p=1 */
	o->m_cost_kib = 19456;
	o->parallelism = 1;
	o->rotation_grace_sec = 86400;
	o->argon2_per_sec = 32;
	o->fail_limit = 5;
	o->fail_window_sec = 60;
	o->cache_max = 1048576;
	o->last_used_flush_sec = 60;
	o->clock_unix = NULL;
	o->clock_mono_ns = NULL;
	o->rate_slots = KEYS_RATE_SLOTS_DEFAULT;
}

int64_t keys_now_unix(const struct keys *k)
{
	return k->o.clock_unix ? k->o.clock_unix() : tg_now_unix();
}

int64_t keys_now_mono(const struct keys *k)
{
	return k->o.clock_mono_ns ? k->o.clock_mono_ns() : tg_now_mono_ns();
}

unsigned long keys_argon2_count(void)
{
	return atomic_load(&keys_argon2_calls);
}

/* ---- argon2id ---- */

int keys_pw_hash(const struct keys *k, const char *cred, size_t len, struct pwhash *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->t_cost = k->o.t_cost;
	out->m_cost_kib = k->o.m_cost_kib;
	out->parallelism = k->o.parallelism;
	rc = tg_getrandom(out->salt, sizeof(out->salt));
	if (rc)
		return rc;
	atomic_fetch_add(&keys_argon2_calls, 1);
	rc = argon2id_hash_raw(out->t_cost, out->m_cost_kib, out->parallelism, cred, len,
			       out->salt, sizeof(out->salt), out->hash, sizeof(out->hash));
	if (rc != ARGON2_OK) {
		log_warnx("argon2id: %s", argon2_error_message(rc));
		return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? -ENOMEM : -EINVAL;
	}
	return 0;
}

bool keys_pw_match(const struct pwhash *h, const char *cred, size_t len)
{
	uint8_t got[sizeof(h->hash)];
	bool ok;
	int rc;

	if (h->t_cost == 0) /* no such hash (an empty previous secret) */
		return false;
	atomic_fetch_add(&keys_argon2_calls, 1);
	rc = argon2id_hash_raw(h->t_cost, h->m_cost_kib, h->parallelism, cred, len, h->salt,
			       sizeof(h->salt), got, sizeof(got));
	ok = rc == ARGON2_OK && tg_ct_equal(got, h->hash, sizeof(got));
	explicit_bzero(got, sizeof(got));
	return ok;
}

/* ---- credential format ---- */

static bool id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool secret_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

struct cred {
	enum kent_kind kind;
	char id[TG_ID_LEN + 1];
};

/* Parses "<prefix><id>_<secret>" of exactly the right length and alphabets. */
static bool cred_parse_strict(const char *p, size_t len, const char *prefix, char *id)
{
	size_t pl = strlen(prefix);
	bool ok = len == pl + TG_ID_LEN + 1 + TG_SECRET_LEN && memcmp(p, prefix, pl) == 0 &&
		  p[pl + TG_ID_LEN] == '_';

	for (size_t i = 0; ok && i < TG_ID_LEN; i++)
		ok = id_char((unsigned char)p[pl + i]);
	for (size_t i = pl + TG_ID_LEN + 1; ok && i < len; i++)
		ok = secret_char((unsigned char)p[i]);
	if (ok) {
		memcpy(id, p + pl, TG_ID_LEN);
		id[TG_ID_LEN] = '\0';
	}
	return ok;
}

/* The bootstrap token: 32..256 printable characters, no spaces. */
static bool boot_valid(const char *p, size_t len)
{
	if (len < KEYS_BOOT_MIN || len > KEYS_BOOT_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] > '~')
			return false;
	}
	return true;
}

int keys_boot_check(const char *p, size_t len)
{
	char id[TG_ID_LEN + 1];

	return boot_valid(p, len) && !cred_parse_strict(p, len, TG_TOKEN_PREFIX, id) ? 0 : -EINVAL;
}

static int cred_parse(const char *p, size_t len, enum keys_kind kind, struct cred *c)
{
	if (!p)
		return -EINVAL;
	if (kind == KEYS_API) {
		c->kind = KENT_KEY;
		return cred_parse_strict(p, len, TG_KEY_PREFIX, c->id) ? 0 : -EINVAL;
	}
	if (kind != KEYS_ADMIN)
		return -EINVAL;
	c->kind = KENT_TOKEN;
	if (cred_parse_strict(p, len, TG_TOKEN_PREFIX, c->id))
		return 0;
	if (!boot_valid(p, len))
		return -EINVAL;
	strcpy(c->id, TG_BOOTSTRAP_ID);
	return 0;
}

int keys_cred_make(const char *prefix, const char *id, char out[TG_CRED_MAX])
{
	char secret[TG_SECRET_LEN + 1];
	int rc = tg_random_chars(secret, TG_SECRET_LEN, TG_SECRET_ALPHABET);

	if (!rc)
		snprintf(out, TG_CRED_MAX, "%s%s_%s", prefix, id, secret);
	explicit_bzero(secret, sizeof(secret));
	return rc;
}

int keys_new_id(struct keys *k, enum kent_kind kind, char id[TG_ID_LEN + 1])
{
	int rc, found;

	do {
		rc = tg_random_chars(id, TG_ID_LEN, TG_ID_ALPHABET);
		if (rc)
			return rc;
		pthread_rwlock_rdlock(&k->lock);
		found = kidx_find(&k->idx, kind, id);
		pthread_rwlock_unlock(&k->lock);
	} while (found >= 0);
	return 0;
}

/* ---- records in the store ---- */

int keys_rec_get(struct store_txn *t, const char *id, struct key_record *r)
{
	const void *v;
	size_t len;
	int rc = store_get_ref(t, STORE_DB_KEYS, id, strlen(id), &v, &len);

	return rc ? rc : key_record_decode(v, len, r);
}

int keys_rec_put(struct store_txn *t, const struct key_record *r, unsigned flags)
{
	uint8_t buf[MODEL_KEY_MAX];
	int n = key_record_encode(r, buf, sizeof(buf));

	return n < 0 ? n : store_put(t, STORE_DB_KEYS, r->id, strlen(r->id), buf, (size_t)n, flags);
}

int keys_tok_get(struct store_txn *t, const char *id, struct token_record *r)
{
	const void *v;
	size_t len;
	int rc = store_get_ref(t, STORE_DB_TOKENS, id, strlen(id), &v, &len);

	return rc ? rc : token_record_decode(v, len, r);
}

int keys_tok_put(struct store_txn *t, const struct token_record *r, unsigned flags)
{
	uint8_t buf[MODEL_TOKEN_MAX];
	int n = token_record_encode(r, buf, sizeof(buf));

	return n < 0 ? n
		     : store_put(t, STORE_DB_TOKENS, r->id, strlen(r->id), buf, (size_t)n, flags);
}

int keys_index_prepare(struct keys *k, const char *const *strs, size_t nstrs,
		       const struct limits *ovr, size_t ntiers)
{
	int rc;

	pthread_rwlock_wrlock(&k->lock);
	rc = kidx_prepare(&k->idx, strs, nstrs, ovr, ntiers);
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

/* After a commit the index must follow; keys_index_prepare made sure it can. */
static int index_after_commit(int rc, const char *kind, const char *id)
{
	if (rc < 0)
		log_warnx("%s %s: committed, but the in-memory index could not follow (%s); it "
			  "is corrected at the next start",
			  kind, id, strerror(-rc));
	return rc < 0 ? rc : 0;
}

int keys_index_key(struct keys *k, const struct key_record *r)
{
	int rc;

	pthread_rwlock_wrlock(&k->lock);
	rc = kidx_put_key(&k->idx, r);
	pthread_rwlock_unlock(&k->lock);
	return index_after_commit(rc, "key", r->id);
}

int keys_index_token(struct keys *k, const struct token_record *r)
{
	int rc;

	pthread_rwlock_wrlock(&k->lock);
	rc = kidx_put_token(&k->idx, r);
	pthread_rwlock_unlock(&k->lock);
	return index_after_commit(rc, "admin token", r->id);
}

/* Latest of the stored and in-memory last use of the entry of that kind and id. */
static int64_t last_used_of(struct keys *k, enum kent_kind kind, const char *id, int64_t stored)
{
	int64_t v = stored;
	int e;

	pthread_rwlock_rdlock(&k->lock);
	e = kidx_find(&k->idx, kind, id);
	if (e >= 0) {
		int64_t m = atomic_load_explicit(&kidx_at(&k->idx, (uint32_t)e)->last_used,
						 memory_order_relaxed);
		v = m > v ? m : v;
	}
	pthread_rwlock_unlock(&k->lock);
	return v;
}

void keys_export_key(struct keys *k, struct key_record *r)
{
	r->last_used_at = last_used_of(k, KENT_KEY, r->id, r->last_used_at);
	memset(&r->cur, 0, sizeof(r->cur));
	memset(&r->prev, 0, sizeof(r->prev));
}

void keys_export_token(struct keys *k, struct token_record *r)
{
	r->last_used_at = last_used_of(k, KENT_TOKEN, r->id, r->last_used_at);
	memset(&r->hash, 0, sizeof(r->hash));
}

/* ---- open, close, housekeeping ---- */

static bool opts_valid(const struct keys_opts *o)
{
	return o->t_cost >= 1 && o->parallelism >= 1 && o->m_cost_kib >= 8 * o->parallelism &&
	       o->argon2_per_sec >= 1 && o->fail_limit >= 1 && o->fail_window_sec >= 1 &&
	       o->cache_max >= 1 && o->last_used_flush_sec >= 1;
}

/* keys_opts.rate_slots, where 0 means the default. */
static uint32_t slots_cap(const struct keys_opts *o)
{
	return o->rate_slots ? o->rate_slots : KEYS_RATE_SLOTS_DEFAULT;
}

/* The (id, source) failure table, every way empty. */
static int fails_init(struct keys *k)
{
	k->fails = calloc(KFAIL_SETS * KFAIL_WAYS, sizeof(*k->fails));
	if (!k->fails)
		return -ENOMEM;
	for (uint32_t i = 0; i < KFAIL_SETS * KFAIL_WAYS; i++)
		k->fails[i].eidx = UINT32_MAX;
	return 0;
}

struct keys *keys_open(struct store *s, const struct keys_opts *o)
{
	struct keys *k;
	int rc = -EINVAL;

	if (!s || !o || !opts_valid(o)) {
		errno = EINVAL;
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		errno = ENOMEM;
		return NULL;
	}
	k->store = s;
	k->o = *o;
	pthread_rwlock_init(&k->lock, NULL);
	pthread_mutex_init(&k->write_mu, NULL);
	pthread_mutex_init(&k->flush_mu, NULL);
	pthread_mutex_init(&k->fail_mu, NULL);
	rc = fails_init(k);
	if (!rc)
		rc = tg_getrandom(k->cache_key, sizeof(k->cache_key));
	if (!rc)
		rc = kidx_load(&k->idx, s);
	if (!rc)
		rc = kcache_init(&k->cache, o->cache_max);
	if (!rc)
		rc = kslots_init(&k->slots, slots_cap(o));
	if (!rc)
		rc = keys_slots_load(k);
	if (rc)
		goto fail;
	k->mono_base_ns = keys_now_mono(k);
	k->bucket_tat_ns = k->mono_base_ns;
	k->last_flush_ns = k->mono_base_ns;
	log_info("key registry: %zu keys, %zu admin tokens, %zu tiers", k->idx.keys.count,
		 k->idx.tokens.count, k->idx.ntiers);
	return k;
fail:
	kslots_free(&k->slots);
	kcache_free(&k->cache);
	kidx_free(&k->idx);
	free(k->fails);
	pthread_mutex_destroy(&k->fail_mu);
	pthread_mutex_destroy(&k->flush_mu);
	pthread_mutex_destroy(&k->write_mu);
	pthread_rwlock_destroy(&k->lock);
	free(k);
	errno = -rc;
	return NULL;
}

void keys_close(struct keys *k)
{
	int rc;

	if (!k)
		return;
	rc = keys_flush_last_used(k);
	if (rc)
		log_warnx("key registry: last_used not written at close: %s", strerror(-rc));
	kcache_free(&k->cache);
	kslots_free(&k->slots);
	kidx_free(&k->idx);
	free(k->fails);
	pthread_mutex_destroy(&k->fail_mu);
	pthread_mutex_destroy(&k->flush_mu);
	pthread_mutex_destroy(&k->write_mu);
	pthread_rwlock_destroy(&k->lock);
	explicit_bzero(k->cache_key, sizeof(k->cache_key));
	free(k);
}

size_t keys_count(struct keys *k)
{
	size_t n;

	pthread_rwlock_rdlock(&k->lock);
	n = k->idx.keys.count;
	pthread_rwlock_unlock(&k->lock);
	return n;
}

size_t keys_token_count(struct keys *k)
{
	size_t n;

	pthread_rwlock_rdlock(&k->lock);
	n = k->idx.tokens.count;
	pthread_rwlock_unlock(&k->lock);
	return n;
}

void keys_tick(struct keys *k)
{
	int64_t now = keys_now_mono(k), last = atomic_load(&k->last_flush_ns);
	int rc;

	if (now - last < (int64_t)k->o.last_used_flush_sec * 1000000000)
		return;
	atomic_store(&k->last_flush_ns, now);
	rc = keys_flush_last_used(k);
	if (rc)
		log_warnx("key registry: cannot write last_used: %s", strerror(-rc));
}

/* ---- throttles ---- */

static uint32_t mono_sec(const struct keys *k, int64_t now_ns)
{
	return (uint32_t)((now_ns - k->mono_base_ns) / 1000000000);
}

static uint32_t fail_limit(const struct keys *k)
{
	/* the per-(id, source) counter saturates at UINT16_MAX */
	return k->o.fail_limit > UINT16_MAX ? UINT16_MAX : k->o.fail_limit;
}

/* The source a failure is counted against (see struct kfail); peer may be NULL. */
struct fail_src {
	uint64_t addr;
	uint8_t v6;
};

static struct fail_src fail_src_of(const struct sockaddr *peer)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	struct fail_src f = {0};

	if (peer && peer->sa_family == AF_INET) {
		f.addr = ((const struct sockaddr_in *)(const void *)peer)->sin_addr.s_addr;
	} else if (peer && peer->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr.s6_addr;

		if (!memcmp(a, mapped, sizeof(mapped))) { /* ::ffff:a.b.c.d is that IPv4 host */
			memcpy(&f.addr, a + 12, 4);
		} else {
			memcpy(&f.addr, a, 8);
			f.v6 = 1;
		}
	}
	return f;
}

/*
 * The entry counting (eidx, src) under fail_mu: found, or (create) a free, expired or the
 * oldest way of its set, reset; NULL when absent and !create. The set index mixes both
 * with the process-random cache key, so a sender cannot aim at one set.
 */
static struct kfail *fail_slot(struct keys *k, uint32_t eidx, struct fail_src src, uint32_t now_s,
			       bool create)
{
	uint64_t mix[2] = {src.addr, ((uint64_t)eidx << 8) | src.v6};
	__u64 h[2];
	struct kfail *set, *pick = NULL;

	tg_siphash128(k->cache_key[0], mix, sizeof(mix), h);
	set = &k->fails[(h[0] % KFAIL_SETS) * KFAIL_WAYS];
	for (uint32_t w = 0; w < KFAIL_WAYS; w++) {
		struct kfail *f = &set[w];

		if (f->eidx == eidx && f->src == src.addr && f->src_v6 == src.v6)
			return f;
		if (f->eidx == UINT32_MAX || now_s - f->start_s >= k->o.fail_window_sec)
			pick = pick ? pick : f;
	}
	if (!create)
		return NULL;
	if (!pick) {
		pick = &set[0];
		for (uint32_t w = 1; w < KFAIL_WAYS; w++)
			if (set[w].start_s < pick->start_s)
				pick = &set[w];
	}
	*pick = (struct kfail){.src = src.addr, .eidx = eidx, .start_s = now_s, .src_v6 = src.v6};
	return pick;
}

/*
 * Admits one argon2 verification of entry eidx from src, or returns -EAGAIN with *retry
 * set: first the (id, source) failure window (so one sender hammering an id does not drain
 * the global budget of everyone else), then the global budget, a GCRA bucket of
 * argon2_per_sec per second with a burst of as many.
 */
static int throttle_admit(struct keys *k, uint32_t eidx, struct fail_src src, uint32_t *retry)
{
	int64_t now = keys_now_mono(k), t = 1000000000 / (int64_t)k->o.argon2_per_sec;
	uint32_t now_s = mono_sec(k, now);
	const struct kfail *f;
	int rc = 0;

	pthread_mutex_lock(&k->fail_mu);
	f = fail_slot(k, eidx, src, now_s, false);
	if (f && f->count >= fail_limit(k) && now_s - f->start_s < k->o.fail_window_sec) {
		*retry = f->start_s + k->o.fail_window_sec - now_s;
		rc = -EAGAIN;
		goto out;
	}
	if (k->bucket_tat_ns < now)
		k->bucket_tat_ns = now;
	if (k->bucket_tat_ns - now > t * ((int64_t)k->o.argon2_per_sec - 1)) {
		*retry = 1;
		rc = -EAGAIN;
		goto out;
	}
	k->bucket_tat_ns += t;
out:
	pthread_mutex_unlock(&k->fail_mu);
	return rc;
}

/* Counts a failed verification of eidx from src (failed = true) or clears the count. */
static void fail_note(struct keys *k, uint32_t eidx, struct fail_src src, bool failed)
{
	uint32_t now_s = mono_sec(k, keys_now_mono(k));
	char id[TG_ID_LEN + 1] = "";
	bool kind_key, locked_now = false;
	struct kfail *f;

	pthread_mutex_lock(&k->fail_mu);
	f = fail_slot(k, eidx, src, now_s, failed);
	if (!f) {
		/* a success with nothing counted: nothing to clear */
	} else if (!failed) {
		f->count = 0;
	} else if (f->count == 0 || now_s - f->start_s >= k->o.fail_window_sec) {
		f->start_s = now_s;
		f->count = 1;
	} else if (f->count < UINT16_MAX) {
		f->count++;
	}
	locked_now = failed && f->count == fail_limit(k);
	pthread_mutex_unlock(&k->fail_mu);
	if (!locked_now)
		return;
	pthread_rwlock_rdlock(&k->lock);
	memcpy(id, kidx_at(&k->idx, eidx)->id, TG_ID_LEN);
	kind_key = kidx_at(&k->idx, eidx)->kind == KENT_KEY;
	pthread_rwlock_unlock(&k->lock);
	log_warnx("%s %s: %u failed verifications from one source, more from it are refused for "
		  "up to %us",
		  kind_key ? "key" : "admin token", id, fail_limit(k), k->o.fail_window_sec);
}

/* ---- verification ---- */

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Status and output of entry e once its secret is known good. Caller holds the read lock. */
static int entry_auth(struct keys *k, uint32_t eidx, bool via_prev, int64_t now,
		      struct keys_auth *out)
{
	struct kentry *e = kidx_at(&k->idx, eidx);

	if (e->revoked_at)
		return -EKEYREVOKED;
	if (e->kind == KENT_KEY && e->expires_at && now >= e->expires_at)
		return -EKEYEXPIRED;
	memcpy(out->id, e->id, TG_ID_LEN);
	out->id[TG_ID_LEN] = '\0';
	if (e->kind == KENT_KEY) {
		const struct ktier *t = kidx_tier_sid(&k->idx, e->tier);

		if (!t) /* tiers in use cannot be removed; a corrupt store is the only way here */
			return -ESRCH;
		limits_merge(&t->t.lim, kidx_overrides(&k->idx, e->overrides), &out->limits);
		copy_str(out->owner, sizeof(out->owner), kidx_str(&k->idx, e->owner));
		copy_str(out->service, sizeof(out->service), kidx_str(&k->idx, e->service));
		copy_str(out->tier, sizeof(out->tier), kidx_str(&k->idx, e->tier));
		out->via_previous = via_prev;
		out->slot = e->slot;
	} else {
		out->role = (enum token_role)e->role;
		copy_str(out->consumer, sizeof(out->consumer), kidx_str(&k->idx, e->owner));
		copy_str(out->tier, sizeof(out->tier), kidx_str(&k->idx, e->tier));
	}
	/* Only a change of second writes the shared line, keeping hot keys cheap. */
	if (atomic_load_explicit(&e->last_used, memory_order_relaxed) < now)
		atomic_store_explicit(&e->last_used, now, memory_order_relaxed);
	return 0;
}

/*
 * Is a positive cache entry still good for e? 0: by the current secret, 1: by the previous
 * one in its grace, -1: no (rotated since, grace over): verify again, the store decides.
 */
static int cached_valid(const struct kentry *e, const struct kcache_ent *ce, int64_t now)
{
	if (ce->state == KC_CUR && e->secret_gen == ce->gen)
		return 0;
	if (ce->state == KC_CUR && e->secret_gen == ce->gen + 1 && now < e->prev_valid_until)
		return 1;
	if (ce->state == KC_PREV && e->secret_gen == ce->gen && now < e->prev_valid_until)
		return 1;
	return -1;
}

/* Result of a cache entry, or 1 when it cannot decide. */
static int verify_cached(struct keys *k, const struct cred *c, const struct kcache_ent *ce,
			 struct keys_auth *out)
{
	int64_t now;
	struct kentry *e;
	int rc = 1, v;

	if (ce->state == KC_NEG)
		return mono_sec(k, keys_now_mono(k)) < ce->neg_until_s ? -EACCES : 1;
	now = keys_now_unix(k);
	pthread_rwlock_rdlock(&k->lock);
	e = kidx_at(&k->idx, ce->eidx);
	/* Tags are per kind and 128 bits, so this holds; checked anyway since it is cheap. */
	if (e->kind == c->kind && strncmp(e->id, c->id, TG_ID_LEN) == 0) {
		v = cached_valid(e, ce, now);
		if (v >= 0)
			rc = entry_auth(k, ce->eidx, v == 1, now, out);
	}
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

struct hashes_ctx {
	const struct cred *c;
	struct pwhash cur, prev;
	int64_t prev_valid_until;
	uint32_t gen;
};

static int hashes_txn(struct store_txn *t, void *arg)
{
	struct hashes_ctx *h = arg;
	struct key_record r;
	struct token_record tr;
	int rc;

	if (h->c->kind == KENT_TOKEN) {
		rc = keys_tok_get(t, h->c->id, &tr);
		if (!rc)
			h->cur = tr.hash;
		explicit_bzero(&tr, sizeof(tr));
		return rc;
	}
	rc = keys_rec_get(t, h->c->id, &r);
	if (!rc) {
		h->cur = r.cur;
		h->prev = r.prev;
		h->prev_valid_until = r.prev_valid_until;
		h->gen = r.secret_gen;
	}
	explicit_bzero(&r, sizeof(r));
	return rc;
}

/* Which secret of the record the presented string is: KC_CUR, KC_PREV or KC_EMPTY. */
static int match_secret(struct keys *k, const struct hashes_ctx *h, const char *p, size_t len)
{
	if (keys_pw_match(&h->cur, p, len))
		return KC_CUR;
	if (h->prev_valid_until && keys_now_unix(k) < h->prev_valid_until &&
	    keys_pw_match(&h->prev, p, len))
		return KC_PREV;
	return KC_EMPTY;
}

static int verify_slow(struct keys *k, const struct cred *c, const char *p, size_t len,
		       const uint64_t tag[2], struct fail_src src, struct keys_auth *out)
{
	struct hashes_ctx h = {.c = c};
	struct kcache_ent ce = {.tag = {tag[0], tag[1]}};
	int eidx, rc;

	pthread_rwlock_rdlock(&k->lock);
	eidx = kidx_find(&k->idx, c->kind, c->id);
	/* Read before the hash: a token replaced meanwhile then fails the generation check. */
	if (eidx >= 0)
		h.gen = kidx_at(&k->idx, (uint32_t)eidx)->secret_gen;
	pthread_rwlock_unlock(&k->lock);
	/*
	 * Ids are public (listings, logs, URLs), so "no such id" is answered at once, without
	 * the argon2 a timing-uniform answer would cost: there is nothing to hide, and an
	 * unknown id must not spend the argon2 budget that real users need.
	 */
	if (eidx < 0)
		return -ENOENT;
	rc = throttle_admit(k, (uint32_t)eidx, src, &out->retry_after_sec);
	if (rc)
		return rc;
	rc = store_read(k->store, hashes_txn, &h);
	if (rc)
		goto out;
	ce.eidx = (uint32_t)eidx;
	ce.gen = h.gen;
	ce.state = (uint8_t)match_secret(k, &h, p, len);
	fail_note(k, ce.eidx, src, ce.state == KC_EMPTY);
	if (ce.state == KC_EMPTY) {
		ce.state = KC_NEG;
		ce.neg_until_s = mono_sec(k, keys_now_mono(k)) + k->o.fail_window_sec;
		kcache_put(&k->cache, &ce);
		rc = -EACCES;
		goto out;
	}
	kcache_put(&k->cache, &ce);
	/* The store just said which secret matched; the index says what the key may do. */
	pthread_rwlock_rdlock(&k->lock);
	rc = entry_auth(k, ce.eidx, ce.state == KC_PREV, keys_now_unix(k), out);
	pthread_rwlock_unlock(&k->lock);
out:
	explicit_bzero(&h, sizeof(h));
	return rc;
}

/* The verification cache's answer: 1 when it has none (the slow path must decide). */
static int verify_fast(struct keys *k, const char *presented, size_t len, enum keys_kind kind,
		       struct keys_auth *out, struct cred *c, uint64_t tag[2])
{
	struct kcache_ent ce;
	__u64 t[2];
	int rc;

	memset(out, 0, sizeof(*out));
	rc = cred_parse(presented, len, kind, c);
	if (rc)
		return rc;
	tg_siphash128(k->cache_key[c->kind], presented, len, t);
	tag[0] = t[0];
	tag[1] = t[1];
	if (kcache_lookup(&k->cache, tag, &ce))
		return verify_cached(k, c, &ce, out);
	return 1;
}

int keys_verify(struct keys *k, const char *presented, size_t len, enum keys_kind kind,
		const struct sockaddr *peer, struct keys_auth *out)
{
	struct cred c;
	uint64_t tag[2];
	int rc = verify_fast(k, presented, len, kind, out, &c, tag);

	if (rc != 1)
		return rc;
	return verify_slow(k, &c, presented, len, tag, fail_src_of(peer), out);
}

int keys_verify_cached(struct keys *k, const char *presented, size_t len, enum keys_kind kind,
		       struct keys_auth *out)
{
	struct cred c;
	uint64_t tag[2];
	int rc = verify_fast(k, presented, len, kind, out, &c, tag);

	return rc == 1 ? -EWOULDBLOCK : rc;
}

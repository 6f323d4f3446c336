/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry's tiers, admin tokens, start-up bootstrap and last_used flushing
 * (keys.h). Same discipline as keys_admin.c: validate, one store write under write_mu,
 * then the index; plaintext tokens are wiped on every failure path.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys_internal.h"
#include "log.h"
#include "store.h"

/* ---- tiers ---- */

static bool tier_valid(const struct tier *t)
{
	if (!model_tier_name_valid(t->name))
		return false;
	for (int f = 0; f < LIMIT__COUNT; f++) {
		if (t->lim.v[f] == LIMIT_UNSET || limit_check((enum limit_field)f, t->lim.v[f]))
			return false;
	}
	return limits_actions_check(&t->lim) == 0;
}

int keys_tiers_list(struct keys *k, struct tier *out, size_t cap, size_t *n)
{
	if (cap && !out)
		return -EINVAL;
	pthread_rwlock_rdlock(&k->lock);
	for (size_t i = 0; i < k->idx.ntiers && i < cap; i++)
		out[i] = k->idx.tiers[i].t;
	if (n)
		*n = k->idx.ntiers;
	pthread_rwlock_unlock(&k->lock);
	return 0;
}

int keys_tier_get(struct keys *k, const char *name, struct tier *out)
{
	const struct ktier *t;
	int rc = -ESRCH;

	if (!name || !model_tier_name_valid(name))
		return -EINVAL;
	pthread_rwlock_rdlock(&k->lock);
	t = kidx_tier(&k->idx, name);
	if (t) {
		*out = t->t;
		rc = 0;
	}
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

static int tier_put(struct store_txn *t, const struct tier *tier)
{
	uint8_t buf[MODEL_TIER_MAX];
	int n = tier_encode(tier, buf, sizeof(buf));

	return n < 0 ? n
		     : store_put(t, STORE_DB_TIERS, tier->name, strlen(tier->name), buf,
				 (size_t)n, 0);
}

static int tier_put_txn(struct store_txn *t, void *arg)
{
	return tier_put(t, arg);
}

int keys_tier_put(struct keys *k, const struct tier *t)
{
	int rc;

	if (!t || !tier_valid(t))
		return -EINVAL;
	pthread_mutex_lock(&k->write_mu);
	{
		const char *strs[] = {t->name};

		rc = keys_index_prepare(k, strs, 1, NULL, 1);
	}
	if (!rc)
		rc = store_write(k->store, tier_put_txn, (void *)t);
	if (!rc) {
		pthread_rwlock_wrlock(&k->lock);
		rc = kidx_tier_set(&k->idx, t);
		pthread_rwlock_unlock(&k->lock);
	}
	if (!rc)
		keys_sync_tier(k, t->name); /* the tier's keys have new effective limits */
	pthread_mutex_unlock(&k->write_mu);
	if (!rc)
		log_info("tier %s stored", t->name);
	return rc;
}

struct replace_ctx {
	const struct tier *tiers;
	size_t n;
	char (*gone)[TG_TIER_NAME_MAX + 1]; /* current tiers absent from the new set */
	size_t ngone;
};

static bool tier_in(const struct tier *tiers, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(tiers[i].name, name) == 0)
			return true;
	}
	return false;
}

static int replace_txn(struct store_txn *t, void *arg)
{
	struct replace_ctx *c = arg;
	int rc = 0;

	for (size_t i = 0; i < c->ngone && !rc; i++)
		rc = store_del(t, STORE_DB_TIERS, c->gone[i], strlen(c->gone[i]));
	for (size_t i = 0; i < c->n && !rc; i++)
		rc = tier_put(t, &c->tiers[i]);
	return rc;
}

/* Lists the tiers that would disappear; -EBUSY (name in in_use) if one is in use. */
static int replace_plan(struct keys *k, struct replace_ctx *c, char *in_use)
{
	int rc = 0;

	pthread_rwlock_rdlock(&k->lock);
	c->gone = calloc(k->idx.ntiers + 1, sizeof(*c->gone));
	if (!c->gone)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < k->idx.ntiers; i++) {
		const char *name = k->idx.tiers[i].t.name;

		if (tier_in(c->tiers, c->n, name))
			continue;
		if (kidx_tier_used(&k->idx, name)) {
			if (in_use)
				snprintf(in_use, TG_TIER_NAME_MAX + 1, "%s", name);
			rc = -EBUSY;
		}
		snprintf(c->gone[c->ngone++], TG_TIER_NAME_MAX + 1, "%s", name);
	}
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

int keys_tiers_replace(struct keys *k, const struct tier *tiers, size_t n,
		       char in_use[TG_TIER_NAME_MAX + 1])
{
	struct replace_ctx c = {.tiers = tiers, .n = n};
	struct ktier *built = NULL;
	size_t cap = 0;
	int rc;

	if (n && !tiers)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!tier_valid(&tiers[i]) || tier_in(tiers, i, tiers[i].name))
			return -EINVAL;
	}
	pthread_mutex_lock(&k->write_mu);
	rc = replace_plan(k, &c, in_use);
	if (!rc) {
		/* the new set is built before the commit, so installing it cannot fail after */
		pthread_rwlock_wrlock(&k->lock);
		rc = kidx_tiers_build(&k->idx, tiers, n, &built, &cap);
		pthread_rwlock_unlock(&k->lock);
	}
	if (!rc)
		rc = store_write(k->store, replace_txn, &c);
	if (!rc) {
		pthread_rwlock_wrlock(&k->lock);
		kidx_tiers_install(&k->idx, built, n, cap);
		pthread_rwlock_unlock(&k->lock);
		built = NULL;
		keys_sync_tier(k, NULL);
	}
	pthread_mutex_unlock(&k->write_mu);
	free(built);
	free(c.gone);
	if (!rc)
		log_info("tiers replaced: %zu tiers, %zu removed", n, c.ngone);
	return rc;
}

/* ---- admin tokens ---- */

static int token_spec_check(const struct token_spec *s)
{
	if (!s->name || !model_name_valid(s->name))
		return -EINVAL;
	if (s->role == ROLE_CONSUMER)
		return s->consumer && model_consumer_id_valid(s->consumer) &&
				       (!s->tier || model_tier_name_valid(s->tier))
			       ? 0
			       : -EINVAL;
	if (s->role != ROLE_ADMIN && s->role != ROLE_VIEWER)
		return -EINVAL;
	return s->consumer || s->tier ? -EINVAL : 0;
}

static int tok_put_new_txn(struct store_txn *t, void *arg)
{
	return keys_tok_put(t, arg, STORE_NOOVERWRITE);
}

static int token_prepare(struct keys *k, const struct token_spec *s, struct token_record *r,
			 char plaintext[TG_CRED_MAX])
{
	int rc;

	memset(r, 0, sizeof(*r));
	rc = keys_new_id(k, KENT_TOKEN, r->id);
	if (!rc)
		rc = keys_cred_make(TG_TOKEN_PREFIX, r->id, plaintext);
	if (!rc)
		rc = keys_pw_hash(k, plaintext, strlen(plaintext), &r->hash);
	if (rc)
		return rc;
	snprintf(r->name, sizeof(r->name), "%s", s->name);
	r->role = s->role;
	if (s->role == ROLE_CONSUMER) {
		snprintf(r->consumer, sizeof(r->consumer), "%s", s->consumer);
		snprintf(r->tier, sizeof(r->tier), "%s", s->tier ? s->tier : "basic");
	}
	return 0;
}

int keys_token_create(struct keys *k, const struct token_spec *spec, struct token_record *out,
		      char plaintext[TG_CRED_MAX])
{
	struct token_record r;
	int rc = spec ? token_spec_check(spec) : -EINVAL;

	if (!rc)
		rc = token_prepare(k, spec, &r, plaintext);
	if (rc)
		goto out;
	pthread_mutex_lock(&k->write_mu);
	if (r.role == ROLE_CONSUMER) {
		pthread_rwlock_rdlock(&k->lock);
		rc = kidx_tier(&k->idx, r.tier) ? 0 : -ESRCH;
		pthread_rwlock_unlock(&k->lock);
	}
	r.created_at = keys_now_unix(k);
	if (!rc) {
		const char *strs[] = {r.consumer, r.tier};

		rc = keys_index_prepare(k, strs, 2, NULL, 0);
	}
	if (!rc)
		rc = store_write(k->store, tok_put_new_txn, &r);
	if (!rc)
		rc = keys_index_token(k, &r);
	pthread_mutex_unlock(&k->write_mu);
	if (rc)
		goto out;
	log_info("admin token %s created (role %s)", r.id, token_role_name(r.role));
	keys_export_token(k, &r);
	if (out)
		*out = r;
out:
	if (rc)
		explicit_bzero(plaintext, TG_CRED_MAX);
	return rc;
}

struct tlist_ctx {
	struct token_record *v;
	size_t n, cap;
};

static int tlist_one(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct tlist_ctx *c = arg;

	(void)key;
	(void)klen;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct token_record *v = realloc(c->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	return token_record_decode(val, vlen, &c->v[c->n++]);
}

static int tlist_txn(struct store_txn *t, void *arg)
{
	struct tlist_ctx *c = arg;

	c->n = 0;
	return store_iter(t, STORE_DB_TOKENS, NULL, 0, tlist_one, c);
}

int keys_token_list(struct keys *k, struct token_record **out, size_t *n)
{
	struct tlist_ctx c = {0};
	int rc = store_read(k->store, tlist_txn, &c);

	if (rc) {
		free(c.v);
		return rc;
	}
	for (size_t i = 0; i < c.n; i++)
		keys_export_token(k, &c.v[i]);
	*out = c.v;
	*n = c.n;
	return 0;
}

struct trevoke_ctx {
	const char *id;
	int64_t now;
	struct token_record r;
};

static int trevoke_txn(struct store_txn *t, void *arg)
{
	struct trevoke_ctx *c = arg;
	int rc = keys_tok_get(t, c->id, &c->r);

	if (rc)
		return rc;
	if (c->r.revoked_at)
		return -EKEYREVOKED;
	c->r.revoked_at = c->now;
	return keys_tok_put(t, &c->r, 0);
}

int keys_token_revoke(struct keys *k, const char *id, struct token_record *out)
{
	struct trevoke_ctx c = {.id = id};
	int rc;

	if (!id || (!model_id_valid(id) && strcmp(id, TG_BOOTSTRAP_ID) != 0))
		return -EINVAL;
	pthread_mutex_lock(&k->write_mu);
	c.now = keys_now_unix(k);
	rc = store_write(k->store, trevoke_txn, &c);
	if (!rc)
		rc = keys_index_token(k, &c.r);
	pthread_mutex_unlock(&k->write_mu);
	if (rc)
		return rc;
	log_info("admin token %s revoked", id);
	keys_export_token(k, &c.r);
	if (out)
		*out = c.r;
	return 0;
}

/* ---- bootstrap ---- */

struct boot_ctx {
	struct token_record r;
	bool found;
};

static int boot_get_txn(struct store_txn *t, void *arg)
{
	struct boot_ctx *b = arg;
	int rc = keys_tok_get(t, TG_BOOTSTRAP_ID, &b->r);

	b->found = rc == 0;
	return rc == -ENOENT ? 0 : rc;
}

static int tok_put_txn(struct store_txn *t, void *arg)
{
	return keys_tok_put(t, arg, 0);
}

/* Stores token as the bootstrap admin token unless it already is. Caller holds write_mu. */
static int boot_from_env(struct keys *k, const char *token, size_t len)
{
	struct boot_ctx b = {0};
	int rc = store_read(k->store, boot_get_txn, &b), e;

	if (rc || (b.found && keys_pw_match(&b.r.hash, token, len))) {
		if (!rc && b.r.revoked_at)
			log_warnx("admin token %s is revoked: TOLLGATE_ADMIN_TOKEN not accepted",
				  TG_BOOTSTRAP_ID);
		return rc;
	}
	memset(&b.r, 0, sizeof(b.r));
	snprintf(b.r.id, sizeof(b.r.id), "%s", TG_BOOTSTRAP_ID);
	snprintf(b.r.name, sizeof(b.r.name), "TOLLGATE_ADMIN_TOKEN");
	b.r.role = ROLE_ADMIN;
	b.r.created_at = keys_now_unix(k);
	rc = keys_pw_hash(k, token, len, &b.r.hash);
	if (!rc)
		rc = store_write(k->store, tok_put_txn, &b.r);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&k->lock);
	e = kidx_put_token(&k->idx, &b.r);
	if (e >= 0) /* verifications cached for the old value become stale */
		kidx_at(&k->idx, (uint32_t)e)->secret_gen++;
	pthread_rwlock_unlock(&k->lock);
	/* A value that failed before may be the new one: forget failures too. */
	kcache_clear(&k->cache);
	log_info("admin token %s %s from TOLLGATE_ADMIN_TOKEN", TG_BOOTSTRAP_ID,
		 b.found ? "replaced" : "created");
	return e < 0 ? e : 0;
}

int keys_bootstrap(struct keys *k, const char *env_token, char generated[TG_CRED_MAX],
		   bool *was_generated)
{
	struct token_spec spec = {.name = "generated at first start", .role = ROLE_ADMIN};
	int rc;

	if (was_generated)
		*was_generated = false;
	if (env_token) {
		if (keys_boot_check(env_token, strlen(env_token)))
			return -EINVAL;
		pthread_mutex_lock(&k->write_mu);
		rc = boot_from_env(k, env_token, strlen(env_token));
		pthread_mutex_unlock(&k->write_mu);
		return rc;
	}
	if (keys_token_count(k) > 0 || !generated)
		return 0;
	rc = keys_token_create(k, &spec, NULL, generated);
	if (!rc && was_generated)
		*was_generated = true;
	return rc;
}

/* ---- last_used ---- */

struct flush_item {
	char id[TG_ID_LEN + 1];
	uint8_t kind;
	uint32_t eidx;
	int64_t last_used;
};

struct flush_ctx {
	struct flush_item *v;
	size_t n, cap;
};

/* Collects the entries used since their last flush. */
static int flush_collect(struct keys *k, struct flush_ctx *c)
{
	int rc = 0;

	pthread_rwlock_rdlock(&k->lock);
	for (uint32_t e = 0; e < k->idx.nentries && !rc; e++) {
		struct kentry *x = kidx_at(&k->idx, e);
		int64_t lu = atomic_load_explicit(&x->last_used, memory_order_relaxed);

		if (lu <= x->last_flushed)
			continue;
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 256;
			struct flush_item *v = realloc(c->v, cap * sizeof(*v));

			if (!v) {
				rc = -ENOMEM;
				break;
			}
			c->v = v;
			c->cap = cap;
		}
		memcpy(c->v[c->n].id, x->id, TG_ID_LEN);
		c->v[c->n].id[TG_ID_LEN] = '\0';
		c->v[c->n].kind = x->kind;
		c->v[c->n].eidx = e;
		c->v[c->n++].last_used = lu;
	}
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

static int flush_one(struct store_txn *t, const struct flush_item *it)
{
	struct key_record r;
	struct token_record tr;
	int rc;

	if (it->kind == KENT_TOKEN) {
		rc = keys_tok_get(t, it->id, &tr);
		if (!rc && tr.last_used_at < it->last_used) {
			tr.last_used_at = it->last_used;
			rc = keys_tok_put(t, &tr, 0);
		}
		return rc == -ENOENT ? 0 : rc;
	}
	rc = keys_rec_get(t, it->id, &r);
	if (!rc && r.last_used_at < it->last_used) {
		r.last_used_at = it->last_used;
		rc = keys_rec_put(t, &r, 0);
	}
	return rc == -ENOENT ? 0 : rc;
}

static int flush_txn(struct store_txn *t, void *arg)
{
	struct flush_ctx *c = arg;
	int rc = 0;

	for (size_t i = 0; i < c->n && !rc; i++)
		rc = flush_one(t, &c->v[i]);
	return rc;
}

int keys_flush_last_used(struct keys *k)
{
	struct flush_ctx c = {0};
	int rc;

	pthread_mutex_lock(&k->flush_mu);
	rc = flush_collect(k, &c);
	if (!rc && c.n)
		rc = store_write(k->store, flush_txn, &c);
	if (!rc && c.n) {
		pthread_rwlock_rdlock(&k->lock);
		for (size_t i = 0; i < c.n; i++)
			kidx_at(&k->idx, c.v[i].eidx)->last_flushed = c.v[i].last_used;
		pthread_rwlock_unlock(&k->lock);
	}
	pthread_mutex_unlock(&k->flush_mu);
	free(c.v);
	return rc;
}

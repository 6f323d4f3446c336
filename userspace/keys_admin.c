/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Changes to API keys and their listings (keys.h): create, get, update, revoke, rotate,
 * list. Every change validates first, then runs one store write transaction (key record
 * and, at creation, its owner record), then applies the committed record to the index, all
 * under write_mu so the index sees changes in commit order. Plaintexts exist only between
 * their generation and the caller's explicit_bzero; argon2 runs outside write_mu so a slow
 * hash does not hold up other changes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys_internal.h"
#include "log.h"
#include "store.h"
#include "tollgate/siphash.h"

#define KEYS_CREATE_TRIES 4  /* id collisions: 36^12 ids, so retries are for form's sake */
#define KEYS_GRACE_MAX 31536000 /* one year */

/* Every set field in range, actions only on limits that take one; -EINVAL. */
static int overrides_check(const struct limits *l)
{
	for (int f = 0; f < LIMIT__COUNT; f++) {
		if (l->v[f] != LIMIT_UNSET && limit_check((enum limit_field)f, l->v[f]))
			return -EINVAL;
	}
	return limits_actions_check(l);
}

/* 0 if tier exists, -ESRCH otherwise. Caller holds write_mu, so it cannot vanish. */
static int tier_exists(struct keys *k, const char *tier)
{
	int rc;

	pthread_rwlock_rdlock(&k->lock);
	rc = kidx_tier(&k->idx, tier) ? 0 : -ESRCH;
	pthread_rwlock_unlock(&k->lock);
	return rc;
}

static int expiry_check(struct keys *k, int64_t expires_at)
{
	return expires_at < 0 || (expires_at && expires_at <= keys_now_unix(k)) ? -EINVAL : 0;
}

static int spec_check(struct keys *k, const struct key_spec *s)
{
	if (!s->name || !model_name_valid(s->name) || !s->owner || !model_owner_valid(s->owner))
		return -EINVAL;
	if (s->service && !model_service_valid(s->service))
		return -EINVAL;
	if (s->tier && !model_tier_name_valid(s->tier))
		return -EINVAL;
	if (expiry_check(k, s->expires_at))
		return -EINVAL;
	return overrides_check(&s->overrides);
}

/* ---- create ---- */

struct create_ctx {
	struct key_record r;
	int64_t now;
};

/* Counts one more key for its owner, creating the owner record at its first key. */
static int owner_bump(struct store_txn *t, const char *owner, int64_t now)
{
	struct owner_record o;
	uint8_t buf[MODEL_OWNER_MAX];
	const void *v;
	size_t len;
	int rc = store_get_ref(t, STORE_DB_OWNERS, owner, strlen(owner), &v, &len), n;

	if (rc == -ENOENT) {
		memset(&o, 0, sizeof(o));
		snprintf(o.owner, sizeof(o.owner), "%s", owner);
		o.created_at = now;
	} else if (rc || (rc = owner_record_decode(v, len, &o))) {
		return rc;
	}
	o.keys++;
	n = owner_record_encode(&o, buf, sizeof(buf));
	if (n < 0)
		return n;
	return store_put(t, STORE_DB_OWNERS, owner, strlen(owner), buf, (size_t)n, 0);
}

static int create_txn(struct store_txn *t, void *arg)
{
	struct create_ctx *c = arg;
	int rc = keys_rec_put(t, &c->r, STORE_NOOVERWRITE);

	return rc ? rc : owner_bump(t, c->r.owner, c->now);
}

/* Fills the new record of spec with a fresh id and secret; the key goes to plaintext. */
static int create_prepare(struct keys *k, const struct key_spec *s, struct key_record *r,
			  char plaintext[TG_CRED_MAX])
{
	size_t len;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = keys_new_id(k, KENT_KEY, r->id);
	if (!rc)
		rc = keys_cred_make(TG_KEY_PREFIX, r->id, plaintext);
	if (rc)
		return rc;
	len = strlen(plaintext);
	rc = keys_pw_hash(k, plaintext, len, &r->cur);
	if (rc)
		return rc;
	r->khash_cur = tg_siphash64(store_hash_secret(k->store), plaintext, len);
	snprintf(r->name, sizeof(r->name), "%s", s->name);
	snprintf(r->owner, sizeof(r->owner), "%s", s->owner);
	snprintf(r->service, sizeof(r->service), "%s", s->service ? s->service : "default");
	snprintf(r->tier, sizeof(r->tier), "%s", s->tier ? s->tier : "basic");
	r->overrides = s->overrides;
	r->expires_at = s->expires_at;
	return 0;
}

/* The lowest free request-rate slot for a new key; -ENOBUFS (logged) when none is. */
static int slot_take(struct keys *k, uint32_t *slot)
{
	int64_t s = kslots_take(&k->slots);

	if (s < 0) {
		log_warnx("key creation refused: all %u request-rate slots are taken "
			  "(data.rate_slots)",
			  k->slots.cap);
		return (int)s;
	}
	*slot = (uint32_t)s;
	return 0;
}

/* One attempt: -EEXIST when the id was taken meanwhile. */
static int create_once(struct keys *k, const struct key_spec *s, struct create_ctx *c,
		       char plaintext[TG_CRED_MAX])
{
	int rc = create_prepare(k, s, &c->r, plaintext);

	if (rc)
		return rc;
	pthread_mutex_lock(&k->write_mu);
	rc = tier_exists(k, c->r.tier);
	c->now = keys_now_unix(k);
	c->r.created_at = c->now;
	c->r.slot = TG_SLOT_NONE;
	if (!rc)
		rc = slot_take(k, &c->r.slot);
	if (!rc) {
		const char *strs[] = {c->r.owner, c->r.service, c->r.tier};

		rc = keys_index_prepare(k, strs, 3, &c->r.overrides, 0);
	}
	if (!rc)
		rc = store_write(k->store, create_txn, c);
	if (rc) {
		kslots_put(&k->slots, c->r.slot); /* nothing was written: the slot stays free */
	} else {
		rc = keys_index_key(k, &c->r);
		keys_sync_record(k, &c->r, TG_SLOT_NONE);
	}
	pthread_mutex_unlock(&k->write_mu);
	return rc;
}

int keys_create(struct keys *k, const struct key_spec *spec, struct key_record *out,
		char plaintext[TG_CRED_MAX])
{
	struct create_ctx *c = NULL;
	int rc, tries = 0;

	rc = spec_check(k, spec);
	if (rc)
		goto out;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto out;
	}
	do
		rc = create_once(k, spec, c, plaintext);
	while (rc == -EEXIST && ++tries < KEYS_CREATE_TRIES);
	if (rc)
		goto out;
	log_info("key %s created for %s", c->r.id, c->r.owner);
	keys_export_key(k, &c->r);
	*out = c->r;
out:
	if (rc)
		explicit_bzero(plaintext, TG_CRED_MAX);
	free(c);
	return rc;
}

/* ---- get ---- */

struct get_ctx {
	const char *id;
	struct key_record r;
};

static int get_txn(struct store_txn *t, void *arg)
{
	struct get_ctx *g = arg;

	return keys_rec_get(t, g->id, &g->r);
}

int keys_get(struct keys *k, const char *id, struct key_record *out)
{
	struct get_ctx g = {.id = id};
	int rc;

	if (!id || !model_id_valid(id))
		return -EINVAL;
	rc = store_read(k->store, get_txn, &g);
	if (rc)
		return rc;
	keys_export_key(k, &g.r);
	*out = g.r;
	return 0;
}

/* ---- changes of one existing key ---- */

enum change_op {
	CHANGE_PATCH = 0,
	CHANGE_REVOKE,
	CHANGE_ROTATE,
};

struct change_ctx {
	enum change_op op;
	const char *id;
	const struct key_patch *p;
	int64_t now;
	int64_t grace;
	struct pwhash cur; /* rotation: hash of the new secret */
	uint64_t khash;	   /* rotation: khash of the new key */
	struct key_record r;
};

/* The patch's override and action changes, applied to l. */
static void patch_apply_limits(const struct key_patch *p, struct limits *l)
{
	for (int f = 0; f < LIMIT__COUNT; f++) {
		if (p->clear_mask & (1u << f))
			l->v[f] = LIMIT_UNSET;
		else if (p->set.v[f] != LIMIT_UNSET)
			l->v[f] = p->set.v[f];
		if (p->clear_act_mask & (1u << f))
			l->act[f] = LIMIT_ACT_INHERIT;
		else if (p->set.act[f])
			l->act[f] = p->set.act[f];
	}
}

static void patch_apply(const struct key_patch *p, struct key_record *r)
{
	if (p->name)
		snprintf(r->name, sizeof(r->name), "%s", p->name);
	if (p->service)
		snprintf(r->service, sizeof(r->service), "%s", p->service);
	if (p->tier)
		snprintf(r->tier, sizeof(r->tier), "%s", p->tier);
	if (p->set_expires)
		r->expires_at = p->expires_at;
	patch_apply_limits(p, &r->overrides);
}

/*
 * Readies the index for the change's result before it is committed (keys_index_prepare):
 * a patch's new service, tier and override set (the index's current set with the patch
 * applied, as change_txn will apply it to the record). Revocations and rotations bring
 * nothing new. Caller holds write_mu.
 */
static int change_prepare(struct keys *k, const struct change_ctx *c)
{
	const char *strs[2] = {NULL, NULL};
	struct limits ovr;
	int e;

	if (c->op != CHANGE_PATCH)
		return 0; /* the entry is there and its strings and set too: a put reuses them */
	strs[0] = c->p->service;
	strs[1] = c->p->tier;
	pthread_rwlock_rdlock(&k->lock);
	e = kidx_find(&k->idx, KENT_KEY, c->id);
	if (e >= 0)
		ovr = *kidx_overrides(&k->idx, kidx_at(&k->idx, (uint32_t)e)->overrides);
	pthread_rwlock_unlock(&k->lock);
	if (e < 0)
		return 0; /* not in the index: the store answers -ENOENT */
	patch_apply_limits(c->p, &ovr);
	return keys_index_prepare(k, strs, 2, &ovr, 0);
}

/* The current secret becomes the previous one (alone: an older one is dropped). */
static void rotate_apply(struct change_ctx *c, struct key_record *r)
{
	if (c->grace > 0) {
		r->prev = r->cur;
		r->prev_valid_until = c->now + c->grace;
		r->khash_prev = r->khash_cur;
	} else {
		memset(&r->prev, 0, sizeof(r->prev));
		r->prev_valid_until = 0;
		r->khash_prev = 0;
	}
	r->cur = c->cur;
	r->khash_cur = c->khash;
	r->rotated_at = c->now;
	r->secret_gen++;
}

static int change_txn(struct store_txn *t, void *arg)
{
	struct change_ctx *c = arg;
	struct key_record *r = &c->r;
	int rc = keys_rec_get(t, c->id, r);

	if (rc)
		return rc;
	if (r->revoked_at)
		return -EKEYREVOKED;
	if (c->op == CHANGE_PATCH) {
		patch_apply(c->p, r);
	} else if (c->op == CHANGE_REVOKE) {
		r->revoked_at = c->now;
		r->slot = TG_SLOT_NONE; /* freed: the next key created may have it */
	} else {
		if (key_status_at(r, c->now) == KEY_EXPIRED)
			return -EKEYEXPIRED;
		rotate_apply(c, r);
	}
	return keys_rec_put(t, r, 0);
}

/* The slot the index holds for key id (TG_SLOT_NONE if none). Caller holds write_mu. */
static uint32_t entry_slot(struct keys *k, const char *id)
{
	uint32_t slot = TG_SLOT_NONE;
	int e;

	pthread_rwlock_rdlock(&k->lock);
	e = kidx_find(&k->idx, KENT_KEY, id);
	if (e >= 0)
		slot = kidx_at(&k->idx, (uint32_t)e)->slot;
	pthread_rwlock_unlock(&k->lock);
	return slot;
}

/* Runs one change under write_mu and applies it to the index; *out gets the record. */
static int change_run(struct keys *k, struct change_ctx *c, const char *tier,
		      struct key_record *out)
{
	uint32_t held;
	int rc;

	if (!c->id || !model_id_valid(c->id))
		return -EINVAL;
	pthread_mutex_lock(&k->write_mu);
	rc = tier ? tier_exists(k, tier) : 0;
	c->now = keys_now_unix(k);
	if (!rc)
		rc = change_prepare(k, c);
	if (!rc)
		rc = store_write(k->store, change_txn, c);
	if (!rc) {
		/* The slot the index gave the key: a record's slot refused at open (held twice)
		 * belongs to the other key and is neither freed nor cleared here. */
		held = entry_slot(k, c->id);
		if (c->r.slot == TG_SLOT_NONE)
			kslots_put(&k->slots, held);
		else if (held != c->r.slot)
			c->r.slot = TG_SLOT_NONE; /* not synced: the key stays without a slot */
		rc = keys_index_key(k, &c->r);
		keys_sync_record(k, &c->r, held);
	}
	pthread_mutex_unlock(&k->write_mu);
	if (rc)
		return rc;
	keys_export_key(k, &c->r);
	if (out)
		*out = c->r;
	return 0;
}

static int patch_check(struct keys *k, const struct key_patch *p)
{
	if (!p || (p->name && !model_name_valid(p->name)) ||
	    (p->service && !model_service_valid(p->service)) ||
	    (p->tier && !model_tier_name_valid(p->tier)) ||
	    (p->set_expires && expiry_check(k, p->expires_at)))
		return -EINVAL;
	if (p->clear_mask >> LIMIT__COUNT || p->clear_act_mask >> LIMIT__COUNT)
		return -EINVAL;
	for (int f = 0; f < LIMIT__COUNT; f++) {
		/* one field both set and cleared says two things at once */
		if ((p->clear_mask & (1u << f)) && p->set.v[f] != LIMIT_UNSET)
			return -EINVAL;
		if ((p->clear_act_mask & (1u << f)) && p->set.act[f])
			return -EINVAL;
	}
	return overrides_check(&p->set);
}

int keys_update(struct keys *k, const char *id, const struct key_patch *p, struct key_record *out)
{
	struct change_ctx *c;
	int rc = patch_check(k, p);

	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->op = CHANGE_PATCH;
	c->id = id;
	c->p = p;
	rc = change_run(k, c, p->tier, out);
	if (!rc)
		log_info("key %s updated", id);
	free(c);
	return rc;
}

int keys_revoke(struct keys *k, const char *id, struct key_record *out)
{
	struct change_ctx *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->op = CHANGE_REVOKE;
	c->id = id;
	rc = change_run(k, c, NULL, out);
	if (!rc)
		log_info("key %s revoked", id);
	free(c);
	return rc;
}

int keys_rotate(struct keys *k, const char *id, int64_t grace_sec, struct key_record *out,
		char plaintext[TG_CRED_MAX])
{
	struct change_ctx *c = NULL;
	size_t len;
	int rc = -EINVAL;

	if (!id || !model_id_valid(id) || grace_sec > KEYS_GRACE_MAX)
		goto out;
	rc = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->op = CHANGE_ROTATE;
	c->id = id;
	c->grace = grace_sec < 0 ? (int64_t)k->o.rotation_grace_sec : grace_sec;
	rc = keys_cred_make(TG_KEY_PREFIX, id, plaintext);
	if (rc)
		goto out;
	len = strlen(plaintext);
	rc = keys_pw_hash(k, plaintext, len, &c->cur);
	if (rc)
		goto out;
	c->khash = tg_siphash64(store_hash_secret(k->store), plaintext, len);
	rc = change_run(k, c, NULL, out);
	if (!rc)
		log_info("key %s rotated, previous secret valid for %llds", id,
			 (long long)c->grace);
out:
	if (rc)
		explicit_bzero(plaintext, TG_CRED_MAX);
	free(c);
	return rc;
}

/* ---- list ---- */

struct list_ctx {
	const struct keys_filter *f;
	const char *after;
	size_t limit;
	int64_t now;
	struct key_record *out;
	size_t n;
	bool has_more;
	struct key_record r;
};

static bool list_match(const struct list_ctx *c, const struct key_record *r)
{
	const struct keys_filter *f = c->f;

	if (!f)
		return true;
	return (!f->owner || strcmp(f->owner, r->owner) == 0) &&
	       (!f->service || strcmp(f->service, r->service) == 0) &&
	       (!f->tier || strcmp(f->tier, r->tier) == 0) &&
	       (f->status < 0 || (int)key_status_at(r, c->now) == f->status);
}

static int list_one(const void *key, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct list_ctx *c = arg;
	int rc;

	if (c->after && klen == strlen(c->after) && memcmp(key, c->after, klen) == 0)
		return 0;
	rc = key_record_decode(v, vlen, &c->r);
	if (rc)
		return rc;
	if (!list_match(c, &c->r))
		return 0;
	if (c->n == c->limit) {
		c->has_more = true;
		return 1;
	}
	c->out[c->n++] = c->r;
	return 0;
}

static int list_txn(struct store_txn *t, void *arg)
{
	struct list_ctx *c = arg;

	c->n = 0;
	c->has_more = false;
	return store_iter(t, STORE_DB_KEYS, c->after, c->after ? strlen(c->after) : 0, list_one,
			  c);
}

int keys_list(struct keys *k, const struct keys_filter *f, const char *after, size_t limit,
	      struct key_record *out, size_t *n, bool *has_more)
{
	struct list_ctx *c;
	int rc;

	if ((f && (f->status < -1 || f->status > KEY_EXPIRED)) || (limit && !out) || !n)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->f = f;
	c->after = after && *after ? after : NULL;
	c->limit = limit;
	c->out = out;
	c->now = keys_now_unix(k);
	rc = store_read(k->store, list_txn, c);
	if (!rc) {
		for (size_t i = 0; i < c->n; i++)
			keys_export_key(k, &out[i]);
		*n = c->n;
		if (has_more)
			*has_more = c->has_more;
	}
	free(c);
	return rc;
}

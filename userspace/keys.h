/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key registry: API keys, admin tokens and tiers. The only module that includes
 * argon2.h. Secrets are stored as argon2id hashes only; a plaintext exists in memory just
 * long enough to hash it or hand it back once at creation/rotation, and is wiped after.
 *
 * Every change is committed to the store first (one write transaction), then applied to the
 * in-memory index, so a failed commit changes nothing. At open every key and token is loaded
 * into the index (no secrets, no names: what verification needs).
 *
 * Verification: the first presentation of a credential pays one argon2id verify; a success
 * enters a cache keyed by a 128-bit SipHash of the whole presented string (process-random
 * key), so later presentations cost a hash and a lookup. The cache entry points at the
 * index entry, whose revoked/expiry/rotation state is checked on every hit: revocation and
 * expiry take effect immediately. Failed verifications are remembered (a negative cache of
 * the same tags) and throttled per (id, source address) and globally, so wrong secrets for
 * a real id cannot make the machine burn CPU on argon2, and cannot lock the key's owner out
 * from another address either.
 *
 * Errors (negative errno): -EINVAL malformed input, -ENOENT no such key or token, -ESRCH no
 * such tier, -EKEYREVOKED revoked, -EKEYEXPIRED expired, -EACCES wrong secret, -EAGAIN
 * throttled, -EBUSY tier still in use, -EEXIST already exists, -ENOSPC store full, -ENOBUFS
 * every request-rate slot taken.
 * Thread-safe: every function may be called from any thread.
 */
#ifndef TG_KEYS_H
#define TG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct sockaddr;
struct store;

struct keys_opts {
	uint32_t t_cost;	      /* argon2id iterations for new hashes, default 2 */
	uint32_t m_cost_kib;	      /* argon2id memory for new hashes, default 19456 (19 MiB) */
	uint32_t parallelism;	      /* argon2id lanes, default 1 */
	uint32_t rotation_grace_sec;  /* default grace of a rotated secret, default 86400 */
	uint32_t argon2_per_sec;      /* argon2 verifications per second, all ids, default 32 */
	uint32_t fail_limit;	      /* failed verifications per id and source per window, default 5 */
	uint32_t fail_window_sec;     /* default 60 */
	uint32_t cache_max;	      /* verified-credential cache entries, default 1048576 */
	uint32_t last_used_flush_sec; /* last_used_at written to the store this often, default 60 */
	int64_t (*clock_unix)(void);  /* wall clock for expiry and timestamps; NULL = real (tests) */
	int64_t (*clock_mono_ns)(void); /* monotonic clock for throttling; NULL = real (tests) */
	uint32_t rate_slots;	      /* request-rate slots; the daemon passes data.rate_slots, 0 = 1048576 */
};

/* Fills o with the defaults above. */
void keys_opts_default(struct keys_opts *o);

struct keys;

/* Loads the index from the store. Returns NULL and sets errno on failure. */
struct keys *keys_open(struct store *s, const struct keys_opts *o);
/* Writes pending last_used_at times, frees everything. Accepts NULL. */
void keys_close(struct keys *k);
/* Number of API keys (any status) and admin tokens in the index. */
size_t keys_count(struct keys *k);
size_t keys_token_count(struct keys *k);
/* Writes pending last_used_at times now (also done periodically by keys_tick). */
int keys_flush_last_used(struct keys *k);
/* Housekeeping, called about once a second by the daemon: flushes last_used when due. */
void keys_tick(struct keys *k);

/* ---- API keys ---- */

/*
 * Request-rate slots. Every key that is not revoked owns one slot index < rate_slots,
 * stored in its record (key_record.slot): the lowest free one at creation, kept by rotation
 * and updates, freed by revocation. With every slot taken, keys_create fails -ENOBUFS and
 * writes nothing.
 */
/* Slots held by keys now, and the capacity (keys_opts.rate_slots). */
uint32_t keys_slots_used(struct keys *k);
uint32_t keys_slots_capacity(struct keys *k);

struct key_spec {
	const char *name;	  /* required */
	const char *owner;	  /* required, model_owner_valid() */
	const char *service;	  /* NULL = "default" */
	const char *tier;	  /* NULL = "basic"; must exist (-ESRCH) */
	int64_t expires_at;	  /* Unix seconds, 0 = never; must be in the future (-EINVAL) */
	struct limits overrides;  /* LIMIT_UNSET where the tier applies; act[]: per-limit
				   * actions of the key (0 = none) */
};

/*
 * Creates a key. On success fills *out and writes the full key ("tg_<id>_<secret>") into
 * plaintext, which the caller must wipe with explicit_bzero once it has been sent.
 */
int keys_create(struct keys *k, const struct key_spec *spec, struct key_record *out,
		char plaintext[TG_CRED_MAX]);
/* Copies the record of key id into *out (last_used_at from memory if newer). */
int keys_get(struct keys *k, const char *id, struct key_record *out);

struct key_patch {
	const char *name;	  /* NULL = unchanged */
	const char *service;	  /* NULL = unchanged */
	const char *tier;	  /* NULL = unchanged; must exist (-ESRCH) */
	bool set_expires;	  /* true: expires_at below replaces the current one */
	int64_t expires_at;	  /* 0 = never */
	struct limits set;	  /* overrides to set; LIMIT_UNSET = untouched; act[f] != 0:
				   * the key's own action of limit f to set */
	uint32_t clear_mask;	  /* bit f set: remove the override of enum limit_field f */
	uint32_t clear_act_mask;  /* bit f set: remove the key's own action of limit f */
};

/* Applies a patch; -EKEYREVOKED for a revoked key. */
int keys_update(struct keys *k, const char *id, const struct key_patch *p, struct key_record *out);
/* Revokes at once; -EKEYREVOKED if it already was. */
int keys_revoke(struct keys *k, const char *id, struct key_record *out);
/*
 * New secret; the previous one stays valid for grace_sec seconds (negative: the configured
 * default). Only one previous secret is kept. -EKEYREVOKED, -EKEYEXPIRED.
 */
int keys_rotate(struct keys *k, const char *id, int64_t grace_sec, struct key_record *out,
		char plaintext[TG_CRED_MAX]);

struct keys_filter {
	const char *owner;   /* NULL = any */
	const char *service; /* NULL = any */
	const char *tier;    /* NULL = any */
	int status;	     /* enum key_status, or -1 = any */
};

/*
 * Lists up to limit keys matching f with id > after (after NULL or "" = from the start), in
 * id order, into out (limit entries). *n gets the count, *has_more whether more match.
 */
int keys_list(struct keys *k, const struct keys_filter *f, const char *after, size_t limit,
	      struct key_record *out, size_t *n, bool *has_more);

/* ---- tiers ---- */

/* Copies up to cap tiers, in name order, into out; *n gets how many exist in all. */
int keys_tiers_list(struct keys *k, struct tier *out, size_t cap, size_t *n);
int keys_tier_get(struct keys *k, const char *name, struct tier *out);
/* Creates or replaces one tier (limits must be complete and valid: -EINVAL). */
int keys_tier_put(struct keys *k, const struct tier *t);
/*
 * Replaces the whole set of tiers. -EBUSY if a tier that would disappear is still used by a
 * key or a consumer token; its name is copied into in_use.
 */
int keys_tiers_replace(struct keys *k, const struct tier *tiers, size_t n,
		       char in_use[TG_TIER_NAME_MAX + 1]);

/* ---- admin tokens ---- */

struct token_spec {
	const char *name;     /* required */
	enum token_role role;
	const char *consumer; /* consumer role: required; others: must be NULL */
	const char *tier;     /* consumer role: NULL = "basic"; must exist (-ESRCH) */
};

int keys_token_create(struct keys *k, const struct token_spec *spec, struct token_record *out,
		      char plaintext[TG_CRED_MAX]);
/* Returns a malloc'd array of every token (the caller frees it) and its length in *n. */
int keys_token_list(struct keys *k, struct token_record **out, size_t *n);
int keys_token_revoke(struct keys *k, const char *id, struct token_record *out);
/*
 * Start-up bootstrap. With env_token (TOLLGATE_ADMIN_TOKEN, >= 32 characters, else
 * -EINVAL) the admin token with id "bootstrap" is created, or replaced if its hash does not
 * match. Without it, if no admin token exists at all, a new admin token is generated,
 * written into generated (the caller prints it once and wipes it) and *was_generated set.
 */
int keys_bootstrap(struct keys *k, const char *env_token, char generated[TG_CRED_MAX],
		   bool *was_generated);

/* ---- verification ---- */

enum keys_kind {
	KEYS_API = 0, /* "tg_..." API keys */
	KEYS_ADMIN,   /* "tgadm_..." admin tokens, or the bootstrap token */
};

struct keys_auth {
	char id[TG_ID_LEN + 1];
	/* API keys */
	char owner[TG_OWNER_MAX + 1];
	char service[TG_SERVICE_MAX + 1];
	char tier[TG_TIER_NAME_MAX + 1];
	struct limits limits;	/* effective: tier merged with overrides */
	bool via_previous;	/* authenticated by a rotated secret still in its grace */
	/* The key's request-rate slot (slots_at), persisted in its record; TG_SLOT_NONE
	 * when the store gave it none (beyond rate_slots, or a duplicate). */
	uint32_t slot;
	/* admin tokens */
	enum token_role role;
	char consumer[TG_OWNER_ID_MAX + 1];
	/* on -EAGAIN: seconds until another attempt may be verified */
	uint32_t retry_after_sec;
};

/*
 * Verifies a presented credential (len bytes, not NUL-terminated necessarily) of the given
 * kind. Returns 0 and fills *out, or -EINVAL (malformed), -ENOENT (unknown id), -EACCES
 * (wrong secret), -EKEYREVOKED, -EKEYEXPIRED, -EAGAIN (throttled; out->retry_after_sec).
 * peer is the client's address (AF_INET or AF_INET6; NULL or another family: one shared
 * "unknown" source): failures are counted per id and source, IPv6 by /64.
 * Callers must not tell the client which of -EINVAL/-ENOENT/-EACCES happened.
 */
int keys_verify(struct keys *k, const char *presented, size_t len, enum keys_kind kind,
		const struct sockaddr *peer, struct keys_auth *out);
/*
 * keys_verify without the slow path: answers from the verification cache only, and returns
 * -EWOULDBLOCK when only keys_verify (the store, maybe an argon2id hash) can decide. For
 * callers that must not run argon2 on the current thread.
 */
int keys_verify_cached(struct keys *k, const char *presented, size_t len, enum keys_kind kind,
		       struct keys_auth *out);

/* ---- key sync: what the kernel maps and the slot array derive from ---- */

/* One key as its listener needs it: never the secret, only its keyed hashes. */
struct keys_sync_key {
	char id[TG_ID_LEN + 1];	  /* key id (never the secret) */
	uint32_t slot;		  /* persisted slot index (LMDB), < rate_slots */
	uint64_t khash_cur;	  /* SipHash-2-4-64 of the full current key (store secret); 0 =
				   * unknown (a key made before hashes were stored) */
	uint64_t khash_prev;	  /* previous key during rotation grace; 0 = none */
	int64_t prev_until;	  /* wall-clock s until khash_prev stays valid; 0 = none */
	int64_t expires_at;	  /* wall-clock s; 0 = never */
	struct limits limits;	  /* effective limits (tier + overrides) */
	bool active;		  /* false: revoked, expired or deleted: remove everywhere */
	bool kernel_refuse;	  /* the registry lets the kernel refuse (always true); sync_kernel_refuse
				   * then applies the limits policy (mode hard, action block) */
};

struct keys_sync_ops {
	/* Called after the LMDB commit of every change of a key (create, update, revoke,
	 * rotate, and tier changes for each key of the tier), in commit order, with the
	 * registry's change lock held: it must not call back into the registry. */
	void (*changed)(void *ctx, const struct keys_sync_key *k);
};

/* Sets (ops NULL: removes) the listener. ops and ctx are borrowed until replaced. */
void keys_set_sync(struct keys *k, const struct keys_sync_ops *ops, void *ctx);
/*
 * Calls fn for every key active now (not revoked, not expired), in id order, from one store
 * snapshot and with changes held off meanwhile; stops at fn's non-zero return and returns
 * it. 0 or -errno otherwise. fn must not call into the registry.
 */
int keys_foreach_active(struct keys *k, int (*fn)(void *ctx, const struct keys_sync_key *),
			void *ctx);

#endif /* TG_KEYS_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the key registry (keys*.c) and its unit test. The registry is split by
 * concern: keys.c (open/close, credentials, argon2id, verification, throttles),
 * keys_index.c (the in-memory index: entries, id tables, interned strings, tiers),
 * keys_cache.c (the verification cache), keys_admin.c (API key changes and listings) and
 * keys_tokens.c (tiers, admin tokens, bootstrap, last_used flushing).
 *
 * Locking order: write_mu, then the index rwlock, then fail_mu or a cache shard. Store
 * transactions run with none of these held, except write_mu and flush_mu, which serialise
 * changes and flushes around them.
 */
#ifndef TG_KEYS_INTERNAL_H
#define TG_KEYS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "model.h"

#define KEYS_API_LEN (sizeof(TG_KEY_PREFIX) - 1 + TG_ID_LEN + 1 + TG_SECRET_LEN)	 /* 59 */
#define KEYS_TOKEN_LEN (sizeof(TG_TOKEN_PREFIX) - 1 + TG_ID_LEN + 1 + TG_SECRET_LEN) /* 62 */
#define KEYS_BOOT_MIN 32  /* bootstrap token length bounds */
#define KEYS_BOOT_MAX 256
#define KEYS_RATE_SLOTS_DEFAULT (1u << 20) /* keys_opts.rate_slots 0 means this too */

enum kent_kind {
	KENT_KEY = 0,
	KENT_TOKEN,
};

/*
 * What verification needs of one key or token, and nothing secret: 80 bytes. Strings are
 * interned (owner, service and tier repeat across many keys); overrides are interned too,
 * most keys have none. Entries are never freed before keys_close (keys and tokens are
 * revoked, not deleted), so their index is a stable handle for the verify cache.
 */
struct kentry {
	char id[TG_ID_LEN];	   /* not NUL-terminated; "bootstrap" is NUL-padded */
	uint8_t kind;		   /* enum kent_kind */
	uint8_t role;		   /* tokens: enum token_role */
	uint32_t secret_gen;	   /* keys: from the record; tokens: bumped in memory on replace */
	uint32_t owner;		   /* interned: key owner, or a consumer token's consumer id */
	uint32_t service;	   /* interned; 0 for tokens */
	uint32_t tier;		   /* interned tier name; 0 for non-consumer tokens */
	uint32_t overrides;	   /* index in the overrides pool, 0 = none */
	uint32_t slot;		   /* keys: request-rate slot, TG_SLOT_NONE = none */
	int64_t revoked_at;	   /* Unix s, 0 = not revoked */
	int64_t expires_at;	   /* Unix s, 0 = never */
	int64_t prev_valid_until;  /* Unix s, 0 = no previous secret */
	_Atomic int64_t last_used; /* Unix s of the latest successful verification */
	int64_t last_flushed;	   /* last_used as last written to the store; under flush_mu */
};
_Static_assert(sizeof(struct kentry) == 80, "struct kentry: the size its comment states");

/*
 * Open-addressing table keyed by id. A slot holds the id's 32-bit hash fingerprint (upper
 * half, which also gives the home slot) and its entry index plus one (lower half; 0 =
 * empty), so probing past other ids rarely touches their entries.
 */
struct ktable {
	uint64_t *slots;
	size_t mask;
	size_t count;
};

/* Interned strings: sid -> string, 0 is "". */
struct kstrings {
	char **strs;
	uint32_t n, cap;
	uint32_t *slots; /* sid + 1, 0 = empty */
	uint32_t mask;
};

/* Interned override sets: oid -> limits, 0 is the empty set. */
struct koverrides {
	struct limits *v;
	uint32_t n, cap;
	uint32_t *slots;
	uint32_t mask;
};

struct ktier {
	struct tier t;
	uint32_t sid; /* interned name */
};

#define KIDX_CHUNK_SHIFT 14 /* 16384 entries per chunk */
#define KIDX_CHUNK (1u << KIDX_CHUNK_SHIFT)

struct kidx {
	uint8_t hkey[16]; /* process-random SipHash key for the tables (ids are attacker-chosen) */
	struct kentry **chunks;
	uint32_t nchunks, nentries;
	struct ktable keys, tokens;
	struct kstrings strs;
	struct koverrides ovr;
	struct ktier *tiers; /* sorted by name */
	size_t ntiers, tiers_cap;
};

int kidx_init(struct kidx *x, size_t nkeys, size_t ntokens);
void kidx_free(struct kidx *x);
struct kentry *kidx_at(const struct kidx *x, uint32_t eidx);
/* Entry index of id (NUL-terminated, <= 12 chars) of that kind, or -ENOENT. */
int kidx_find(const struct kidx *x, enum kent_kind kind, const char *id);
/*
 * Everything a change will put into the index after its store commit, made ready before
 * it: the strings (NULL entries skipped) and the override set interned, room for one more
 * entry in each id table and for ntiers more tiers. A put afterwards that needs no more
 * than that allocates nothing, so a committed change always reaches the index (an -ENOMEM
 * here comes before the commit and changes nothing). 0 or -ENOMEM.
 */
int kidx_prepare(struct kidx *x, const char *const *strs, size_t nstrs, const struct limits *ovr,
		 size_t ntiers);
/* Inserts or updates the entry of a record; returns its index or -ENOMEM. */
int kidx_put_key(struct kidx *x, const struct key_record *r);
int kidx_put_token(struct kidx *x, const struct token_record *r);
const char *kidx_str(const struct kidx *x, uint32_t sid);
const struct limits *kidx_overrides(const struct kidx *x, uint32_t oid);
const struct ktier *kidx_tier(const struct kidx *x, const char *name);
const struct ktier *kidx_tier_sid(const struct kidx *x, uint32_t sid);
/* Creates or replaces one tier; replaces the whole set. 0 or -ENOMEM. */
int kidx_tier_set(struct kidx *x, const struct tier *t);
int kidx_tiers_set_all(struct kidx *x, const struct tier *t, size_t n);
/* kidx_tiers_set_all in two steps, so only the first can fail (before a commit): builds
 * the sorted set of t[0..n) with its names interned into *out (capacity *cap; the caller
 * frees it unless installed), then installs it in place of the current set. */
int kidx_tiers_build(struct kidx *x, const struct tier *t, size_t n, struct ktier **out,
		     size_t *cap);
void kidx_tiers_install(struct kidx *x, struct ktier *tiers, size_t n, size_t cap);
/* True if any key or consumer token uses the tier with that name. */
bool kidx_tier_used(const struct kidx *x, const char *name);
/* Loads every key, token and tier of the store (inside a read transaction). */
int kidx_load(struct kidx *x, struct store *s);

/* ---- verification cache ---- */

enum kc_state {
	KC_EMPTY = 0,
	KC_CUR,	 /* verified against the current secret of generation gen */
	KC_PREV, /* verified against the previous secret, while gen was current */
	KC_NEG,	 /* failed verification: -EACCES until neg_until_s */
};

struct kcache_ent {
	uint64_t tag[2];       /* SipHash-128 of the presented string, process-random key */
	uint32_t eidx;	       /* index entry (positive entries) */
	uint32_t gen;	       /* secret_gen it was verified against */
	uint32_t neg_until_s;  /* KC_NEG: until this monotonic second (since open) */
	uint8_t state;	       /* enum kc_state */
	uint8_t ref;	       /* CLOCK: used since the hand last passed */
};

/* One shard: an exact-capacity table, linear probing over slots, CLOCK eviction. */
struct kcache_shard {
	pthread_mutex_t mu;
	struct kcache_ent *ents; /* cap entries */
	uint32_t *slots;	 /* entry index + 1, 0 = empty; mask + 1 >= 2 * cap */
	uint32_t mask;
	uint32_t cap, count, hand;
};

/* Sharded by tag so hits on different shards never share a lock. */
struct kcache {
	struct kcache_shard *shards;
	size_t nshards; /* power of two */
	void *mem;	/* one anonymous mapping holding every shard's entries and slots */
	size_t mem_len;
};

int kcache_init(struct kcache *c, uint32_t max_entries);
void kcache_free(struct kcache *c);
/* Copies the entry with that tag into *out; false if absent. */
bool kcache_lookup(struct kcache *c, const uint64_t tag[2], struct kcache_ent *out);
void kcache_put(struct kcache *c, const struct kcache_ent *e);
void kcache_clear(struct kcache *c);

/* ---- request-rate slot allocator (keys_slots.c) ---- */

/*
 * Which slot indexes keys hold: a bitmap built at open from the records, changed only under
 * write_mu. Lowest free first, so a freed slot is the next one handed out.
 */
struct kslots {
	uint64_t *bits;	   /* cap bits, 1 = held */
	uint32_t cap;	   /* keys_opts.rate_slots */
	uint32_t used;
	uint32_t low_word; /* no free bit below this word */
};

int kslots_init(struct kslots *ks, uint32_t cap);
void kslots_free(struct kslots *ks);
/* The lowest free slot, now held; -ENOBUFS when all are. */
int64_t kslots_take(struct kslots *ks);
/* Marks slot held (at load); -ERANGE beyond cap, -EEXIST if already held. */
int kslots_mark(struct kslots *ks, uint32_t slot);
/* Frees a held slot; nothing for TG_SLOT_NONE or a slot beyond cap. */
void kslots_put(struct kslots *ks, uint32_t slot);
/*
 * Builds the bitmap from the index after kidx_load: every key that is not revoked holds its
 * record's slot. A slot beyond cap or held twice is logged and the key left without one
 * (the data plane answers 503 for it rather than charge a shared bucket).
 */
int keys_slots_load(struct keys *k);

/*
 * Failed verifications of one id from one source (an IPv4 address, or an IPv6 /64: one
 * host's usual allocation), in a set-associative table: throttling per (id, source) means
 * wrong secrets sent for a public id lock out only the sender, never the key's owner
 * presenting a secret not yet cached from elsewhere. When a set is full the entry whose
 * window started first is replaced, so a flood of sources can at worst reset a counter
 * early; the global argon2 bucket still bounds the CPU spent.
 */
#define KFAIL_SETS 1024u
#define KFAIL_WAYS 4u

struct kfail {
	uint64_t src;	   /* source: the address (v4) or prefix (v6) bytes, as read */
	uint32_t eidx;	   /* index entry; UINT32_MAX = empty */
	uint32_t start_s;  /* failure window start, monotonic s since open */
	uint16_t count;	   /* failed verifications in the window */
	uint8_t src_v6;	   /* src is an IPv6 /64 */
	uint8_t pad[5];
};

/* ---- the registry ---- */

struct keys {
	struct store *store;
	struct keys_opts o;
	uint8_t cache_key[2][16]; /* process-random keys of the verify-cache tags, per kind */
	pthread_rwlock_t lock;	  /* the index */
	pthread_mutex_t write_mu; /* one change at a time: store commit, then index update */
	pthread_mutex_t flush_mu; /* one last_used flush at a time */
	pthread_mutex_t fail_mu;  /* the failure table and the global argon2 bucket */
	struct kfail *fails;	  /* KFAIL_SETS * KFAIL_WAYS; under fail_mu */
	int64_t mono_base_ns;	  /* clock_mono_ns at open */
	int64_t bucket_tat_ns;	  /* GCRA theoretical arrival time of the argon2 bucket */
	_Atomic int64_t last_flush_ns;
	struct kidx idx;
	struct kcache cache;
	struct kslots slots;		     /* under write_mu */
	const struct keys_sync_ops *sync_ops; /* under write_mu */
	void *sync_ctx;
};

int64_t keys_now_unix(const struct keys *k);
int64_t keys_now_mono(const struct keys *k);

/* argon2id computations (hashes and verifications) since the process started: for tests. */
unsigned long keys_argon2_count(void);

/* Hashes a credential with fresh salt and the configured parameters. 0 or -errno. */
int keys_pw_hash(const struct keys *k, const char *cred, size_t len, struct pwhash *out);
/* Recomputes with h's parameters and compares in constant time. */
bool keys_pw_match(const struct pwhash *h, const char *cred, size_t len);
/*
 * 0 if p can be the bootstrap token: 32..256 printable characters without spaces that do
 * not parse as a tgadm_ token (that would be looked up under its own id); else -EINVAL.
 */
int keys_boot_check(const char *p, size_t len);
/* Makes "<prefix><id>_<secret>" with a new secret into out; 0 or -errno. */
int keys_cred_make(const char *prefix, const char *id, char out[TG_CRED_MAX]);
/* A new random id not used by any entry of that kind. Caller holds write_mu. */
int keys_new_id(struct keys *k, enum kent_kind kind, char id[TG_ID_LEN + 1]);

/* Record <-> store helpers (inside a transaction). */
struct store_txn;
int keys_rec_get(struct store_txn *t, const char *id, struct key_record *r);
int keys_rec_put(struct store_txn *t, const struct key_record *r, unsigned flags);
int keys_tok_get(struct store_txn *t, const char *id, struct token_record *r);
int keys_tok_put(struct store_txn *t, const struct token_record *r, unsigned flags);

/* Index update after a commit: takes the write lock. */
/* kidx_prepare under the index lock: call it under write_mu before the store commit. */
int keys_index_prepare(struct keys *k, const char *const *strs, size_t nstrs,
		       const struct limits *ovr, size_t ntiers);
int keys_index_key(struct keys *k, const struct key_record *r);
int keys_index_token(struct keys *k, const struct token_record *r);
/*
 * Tells the sync listener (if any) about a committed record. Caller holds write_mu. old_slot
 * is the slot the key held before the change (a revocation sets the record's to none).
 */
void keys_sync_record(struct keys *k, const struct key_record *r, uint32_t old_slot);
/* After a committed tier change: keys_sync_record for every key of that tier (NULL: all). */
void keys_sync_tier(struct keys *k, const char *tier);
/* last_used_at from memory if newer; hashes blanked (they never leave the module). */
void keys_export_key(struct keys *k, struct key_record *r);
void keys_export_token(struct keys *k, struct token_record *r);

#endif /* TG_KEYS_INTERNAL_H */

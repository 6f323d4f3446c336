/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The records tollgate keeps: tiers and their limits, API keys, admin tokens. Pure data and
 * their on-disk encoding (a versioned binary layout, so a million keys load in a fraction of
 * a second), validation of names and limits, and the tier/override merge. No I/O: unit-tested
 * alone, used by the store's migrations, the key registry and the admin API.
 */
#ifndef TG_MODEL_H
#define TG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_ID_LEN 12	     /* public id: [a-z0-9]{12} */
#define TG_SECRET_LEN 43     /* [A-Za-z0-9]{43}: 256 bits */
#define TG_KEY_PREFIX "tg_"  /* API key: tg_<id>_<secret> */
#define TG_TOKEN_PREFIX "tgadm_" /* admin token: tgadm_<id>_<secret> */
#define TG_CRED_MAX 64	     /* longest formatted credential plus NUL */
#define TG_NAME_MAX 128
#define TG_OWNER_ID_MAX 64
#define TG_OWNER_MAX 73	     /* "consumer:" + 64 */
#define TG_SERVICE_MAX 64
#define TG_TIER_NAME_MAX 32
#define TG_BOOTSTRAP_ID "bootstrap" /* id of the token taken from TOLLGATE_ADMIN_TOKEN */
#define TG_ID_ALPHABET "abcdefghijklmnopqrstuvwxyz0123456789"
#define TG_SECRET_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* Every limit a tier defines and a key may override; the order is the on-disk order. */
enum limit_field {
	LIMIT_RPS = 0,	     /* requests per second, stored in milli-requests per second */
	LIMIT_BURST,	     /* requests allowed at once above the rate */
	LIMIT_RPM,	     /* requests per minute, 0 = none */
	LIMIT_RPH,	     /* requests per hour, 0 = none */
	LIMIT_RPD,	     /* requests per day, 0 = none */
	LIMIT_TPM,	     /* tokens per minute, 0 = none */
	LIMIT_TOKENS_MONTH,  /* tokens per calendar month (UTC), 0 = none */
	LIMIT_MAX_CONCURRENT, /* in-flight calls, 0 = none */
	/* format 3 (issue 5): the limits engine's fields; older records decode them unset/0 */
	LIMIT_RP_MONTH,	       /* requests per calendar month (the billing period), 0 = none */
	LIMIT_TPH,	       /* tokens per calendar hour, 0 = none */
	LIMIT_TPD,	       /* tokens per calendar day (UTC), 0 = none */
	LIMIT_TOKEN_QUOTA_DAYS, /* N >= 1: tokens_per_month counts the last N days; 0 = month */
	LIMIT_COST_HOUR,       /* USD 1e-9 per hour, 0 = none */
	LIMIT_COST_DAY,	       /* USD 1e-9 per day, 0 = none */
	LIMIT_COST_MONTH,      /* USD 1e-9 per month, 0 = none */
	LIMIT_COST_WINDOW,     /* enum limit_cost_window */
	LIMIT_BYTES_MONTH,     /* request + response body bytes per calendar month, 0 = none */
	LIMIT_COMPUTE_MONTH,   /* upstream ms per calendar month, 0 = none */
	LIMIT_ALERT_THRESHOLD, /* per-mille of a limit that raises an alert, 0 = global */
	LIMIT_MODE,	       /* enum limit_mode */
	LIMIT_ACTION,	       /* enum limit_action: default action of this subject's limits */
	LIMIT__COUNT,
};

#define LIMIT_V2_COUNT LIMIT_RP_MONTH /* limits stored by record formats before 3 */

enum limit_cost_window {
	LIMIT_WINDOW_CALENDAR = 0, /* calendar hour, day, month (UTC) */
	LIMIT_WINDOW_ROLLING,	   /* last 60 min, 24 h, 30 days */
};

enum limit_mode {
	LIMIT_MODE_INHERIT = 0, /* limits.mode of the config */
	LIMIT_MODE_HARD,	/* refuse (or queue, downgrade) */
	LIMIT_MODE_SOFT,	/* allow, log and annotate */
};

enum limit_action {
	LIMIT_ACT_INHERIT = 0, /* the subject's action, else limits.action of the config */
	LIMIT_ACT_BLOCK,
	LIMIT_ACT_QUEUE,
	LIMIT_ACT_DOWNGRADE,
	LIMIT_ACT_ALERT,
	LIMIT_ACT__COUNT,
};

/* "hard", "soft" ("inherit" for 0); "block", "queue", ...; "calendar", "rolling". */
const char *limit_mode_name(enum limit_mode m);
const char *limit_action_name(enum limit_action a);

#define LIMIT_UNSET UINT64_MAX /* in key overrides: the tier's value applies */
/* act[] rounded up to a multiple of 8, so struct limits has no padding (it is hashed and
 * compared with memcmp as a whole by the key index) */
#define LIMIT_ACT_SLOTS ((LIMIT__COUNT + 7) & ~7)

struct limits {
	uint64_t v[LIMIT__COUNT]; /* indexed by enum limit_field; units as commented there */
	/* per-limit actions (enum limit_action) by enum limit_field, 0 = none of its own;
	 * only fields limit_takes_action() accepts carry one; the slots past LIMIT__COUNT
	 * stay 0 */
	uint8_t act[LIMIT_ACT_SLOTS];
};

struct limit_desc {
	const char *name; /* JSON field name, e.g. "requests_per_second" */
	uint64_t min;	  /* smallest accepted value (in stored units) */
	uint64_t max;	  /* largest accepted value (in stored units) */
	bool milli;	  /* JSON number is value / 1000 with up to 3 decimals */
	bool nano;	  /* JSON number is value / 1e9 with up to 9 decimals (USD) */
	/* enum fields: JSON string, stored as its index here; names[0] is the stored 0
	 * (NULL when 0 has no JSON name, i.e. means "inherit"); NULL-terminated after */
	const char *const *names;
	unsigned nnames;
};

extern const struct limit_desc limit_descs[LIMIT__COUNT];

/* Returns the enum value named name for field f (an enum field), or -EINVAL. */
int limit_enum_parse(enum limit_field f, const char *name);
/* The JSON name of enum field f's value v, or NULL (0 = inherit, or out of range). */
const char *limit_enum_name(enum limit_field f, uint64_t v);
/* Returns the field with that JSON name, or -ENOENT. */
int limit_field_by_name(const char *name);
/* Checks one value against its field's range; 0 or -ERANGE. */
int limit_check(enum limit_field f, uint64_t v);
/*
 * out = tier's limits with every set override applied. Per-limit actions follow the
 * resolution order key act[f] -> key action -> tier act[f] -> tier action (-> limits.action,
 * which the caller applies: limit_action_of): out->act[f] is the key's own, else none when
 * the key sets an "action" (which then wins through out->v[LIMIT_ACTION]), else the tier's.
 */
void limits_merge(const struct limits *tier, const struct limits *overrides, struct limits *out);
/* Sets every field to LIMIT_UNSET and every per-limit action to 0 (an empty override set). */
void limits_clear(struct limits *l);
/* True for the limits that may carry an action of their own (the amounts: request rates and
 * counts, tokens, cost, bytes, compute, concurrency; not burst, windows, mode, ...). */
bool limit_takes_action(enum limit_field f);
/* 0 if every per-limit action of l is a known action on a limit that takes one, else -EINVAL. */
int limits_actions_check(const struct limits *l);
/* The action of limit f under effective limits l (limits_merge's out): act[f], else l's
 * "action", else dflt (limits.action). */
enum limit_action limit_action_of(const struct limits *l, enum limit_field f,
				  enum limit_action dflt);

/* argon2id output with its parameters, as stored (never the secret itself). */
struct pwhash {
	uint32_t t_cost;      /* iterations */
	uint32_t m_cost_kib;  /* memory in KiB */
	uint32_t parallelism; /* lanes */
	uint8_t salt[16];     /* random per hash */
	uint8_t hash[32];     /* argon2id tag */
};

struct tier {
	char name[TG_TIER_NAME_MAX + 1];
	struct limits lim; /* every field set */
};

enum key_status {
	KEY_ACTIVE = 0,
	KEY_REVOKED,
	KEY_EXPIRED,
};

struct key_record {
	char id[TG_ID_LEN + 1];
	char name[TG_NAME_MAX + 1];
	char owner[TG_OWNER_MAX + 1];	  /* "consumer:x", "user:x" or "team:x" */
	char service[TG_SERVICE_MAX + 1];
	char tier[TG_TIER_NAME_MAX + 1];
	struct limits overrides;	  /* LIMIT_UNSET where the tier applies */
	int64_t created_at;		  /* Unix seconds */
	int64_t expires_at;		  /* Unix seconds, 0 = never */
	int64_t revoked_at;		  /* Unix seconds, 0 = not revoked */
	int64_t last_used_at;		  /* Unix seconds, 0 = never */
	int64_t rotated_at;		  /* Unix seconds, 0 = never rotated */
	int64_t prev_valid_until;	  /* previous secret accepted until (Unix s), 0 = none */
	uint32_t secret_gen;		  /* bumped by each rotation */
	struct pwhash cur;		  /* hash of the current secret */
	struct pwhash prev;		  /* hash of the previous secret (rotation grace) */
	uint64_t khash_cur;		  /* SipHash-2-4-64 of the full current key, store secret */
	uint64_t khash_prev;		  /* same for the previous key; 0 = none */
	uint32_t slot;			  /* request-rate slot index; TG_SLOT_NONE once revoked */
};

#define TG_SLOT_NONE UINT32_MAX /* key_record.slot of a key holding no slot */

enum token_role {
	ROLE_ADMIN = 0,
	ROLE_VIEWER,
	ROLE_CONSUMER,
};

struct token_record {
	char id[TG_ID_LEN + 1];		 /* or TG_BOOTSTRAP_ID */
	char name[TG_NAME_MAX + 1];
	uint32_t role;			 /* enum token_role */
	char consumer[TG_OWNER_ID_MAX + 1]; /* consumer role: its consumer id, else "" */
	char tier[TG_TIER_NAME_MAX + 1];    /* consumer role: tier of the keys it creates */
	int64_t created_at;		 /* Unix seconds */
	int64_t revoked_at;		 /* Unix seconds, 0 = not revoked */
	int64_t last_used_at;		 /* Unix seconds, 0 = never */
	struct pwhash hash;
};

/* One owner (consumer, user or team) in STORE_DB_OWNERS, kept in step with its keys. */
struct owner_record {
	char owner[TG_OWNER_MAX + 1]; /* "team:ml", also the store key */
	int64_t created_at;	      /* Unix seconds of its first key */
	uint64_t keys;		      /* keys created for it (revoked ones included) */
};

#define TG_SUBJECT_MAX 79 /* "consumer:" + 64, "tenant:" + 64 */

/*
 * An owner's or tenant's explicit limits (STORE_DB_LIMITS), set through /api/v1/limits. Its
 * per-limit actions are lim.act, as for keys and tiers: one representation, one resolution
 * (limit_action_of) and one codec for every subject.
 */
struct subject_limits {
	char subject[TG_SUBJECT_MAX + 1]; /* "team:ml", "tenant:acme"; the store key */
	struct limits lim;		  /* LIMIT_UNSET where not set; act[f] 0 = the default */
};

/* Status of a key at Unix time now. */
enum key_status key_status_at(const struct key_record *k, int64_t now);
const char *key_status_name(enum key_status s);
const char *token_role_name(enum token_role r);
/* Returns the role with that name, or -EINVAL. */
int token_role_parse(const char *name);

/* Validation of user-supplied names: true when acceptable. */
bool model_name_valid(const char *s);	     /* 1..128 printable ASCII or UTF-8, no control chars */
bool model_owner_valid(const char *s);	     /* (consumer|user|team):[A-Za-z0-9._-]{1,64} */
bool model_service_valid(const char *s);     /* [A-Za-z0-9._-]{1,64} */
bool model_tier_name_valid(const char *s);   /* [a-z0-9_-]{1,32} */
bool model_consumer_id_valid(const char *s); /* [A-Za-z0-9._-]{1,64} */
bool model_id_valid(const char *s);	     /* [a-z0-9]{12} */

/* The default tiers the first migration seeds (basic, premium, enterprise). */
extern const struct tier model_default_tiers[3];

/*
 * Binary encodings. Key records are written in format 4 (the slot since 2, every limit field
 * since 3, per-limit actions since 4), tiers in format 4 (format 3 plus per-limit actions);
 * format 1 records (before migration 3) still decode, with slot TG_SLOT_NONE, format 1/2
 * records with the limits after LIMIT_V2_COUNT unset (key overrides: LIMIT_UNSET; tiers: 0),
 * and format 1-3 records with no per-limit action. encode returns the number of bytes written into
 * buf (at most cap), or -EMSGSIZE; decode returns 0, or -EINVAL for a truncated, corrupt or
 * unknown-version record. MODEL_*_MAX is the largest encoding, a safe buffer size.
 */
#define MODEL_KEY_MAX 768
#define MODEL_TIER_MAX 256
#define MODEL_TOKEN_MAX 384
#define MODEL_OWNER_MAX 128
#define MODEL_LIMITS_MAX 320
int key_record_encode(const struct key_record *r, void *buf, size_t cap);
int key_record_decode(const void *buf, size_t len, struct key_record *r);
/* An older format (1..4) as a store before a migration held it: for tests and migrations. */
int key_record_encode_format(const struct key_record *r, unsigned format, void *buf, size_t cap);
int tier_encode_format(const struct tier *t, unsigned format, void *buf, size_t cap);
int tier_encode(const struct tier *t, void *buf, size_t cap);
int tier_decode(const void *buf, size_t len, struct tier *t);
int token_record_encode(const struct token_record *r, void *buf, size_t cap);
int token_record_decode(const void *buf, size_t len, struct token_record *r);
int owner_record_encode(const struct owner_record *r, void *buf, size_t cap);
int owner_record_decode(const void *buf, size_t len, struct owner_record *r);
/*
 * Subject limits records have been format 3 since they exist (issue 5): the subject, every
 * limit field, then one action byte per field, the layout keys and tiers reached in format 4.
 * The record did not change when owners and tenants moved to lim.act: same bytes, same codec
 * as key and tier limits.
 */
int subject_limits_encode(const struct subject_limits *r, void *buf, size_t cap);
int subject_limits_decode(const void *buf, size_t len, struct subject_limits *r);

#endif /* TG_MODEL_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The records tollgate keeps and their on-disk form (see model.h). Encodings are little-endian:
 * a u16 format version and a u16 record kind, then the fields in declaration order, integers at
 * fixed width, strings as a u8 length and their bytes (no NUL). Decoding checks every length,
 * the version and kind, refuses strings that are too long or hold a NUL, and refuses trailing
 * bytes, so a record either decodes to exactly what was encoded or not at all.
 */
#include <errno.h>
#include <string.h>

#include "codec.h"
#include "model.h"

#define MODEL_FORMAT_V1 1u
#define MODEL_FORMAT_V2 2u /* key records: the slot appended (migration 3) */
#define MODEL_FORMAT_V3 3u /* key records and tiers: every limit field (issue 5) */
#define MODEL_FORMAT_V4 4u /* key records and tiers: per-limit actions (migration 5) */

enum model_kind {
	MODEL_KIND_KEY = 1,
	MODEL_KIND_TIER,
	MODEL_KIND_TOKEN,
	MODEL_KIND_OWNER,
	MODEL_KIND_LIMITS,
};

/* Largest encodings, field by field; MODEL_*_MAX in model.h must not be smaller. */
#define ENC_HDR	     4
#define ENC_STR(max) (1 + (max))
#define ENC_LIMITS   (8 * LIMIT__COUNT + LIMIT__COUNT) /* values, then (format 4) actions */
#define ENC_PWHASH   (3 * 4 + 16 + 32)
#define ENC_KEY_MAX                                                                                \
	(ENC_HDR + ENC_STR(TG_ID_LEN) + ENC_STR(TG_NAME_MAX) + ENC_STR(TG_OWNER_MAX) +             \
	 ENC_STR(TG_SERVICE_MAX) + ENC_STR(TG_TIER_NAME_MAX) + ENC_LIMITS + 6 * 8 + 4 +            \
	 2 * ENC_PWHASH + 2 * 8 + 4)
#define ENC_TIER_MAX (ENC_HDR + ENC_STR(TG_TIER_NAME_MAX) + ENC_LIMITS)
#define ENC_TOKEN_MAX                                                                              \
	(ENC_HDR + ENC_STR(TG_ID_LEN) + ENC_STR(TG_NAME_MAX) + 4 + ENC_STR(TG_OWNER_ID_MAX) +      \
	 ENC_STR(TG_TIER_NAME_MAX) + 3 * 8 + ENC_PWHASH)
#define ENC_OWNER_MAX (ENC_HDR + ENC_STR(TG_OWNER_MAX) + 8 + 8)

#define ENC_LIMITS_MAX (ENC_HDR + ENC_STR(TG_SUBJECT_MAX) + ENC_LIMITS)
_Static_assert(ENC_LIMITS_MAX <= MODEL_LIMITS_MAX, "MODEL_LIMITS_MAX too small");
_Static_assert(ENC_KEY_MAX <= MODEL_KEY_MAX, "MODEL_KEY_MAX too small for a key");
_Static_assert(ENC_TIER_MAX <= MODEL_TIER_MAX, "MODEL_TIER_MAX too small for a tier");
_Static_assert(ENC_TOKEN_MAX <= MODEL_TOKEN_MAX, "MODEL_TOKEN_MAX too small for a token");
_Static_assert(ENC_OWNER_MAX <= MODEL_OWNER_MAX, "MODEL_OWNER_MAX too small for an owner");
_Static_assert(TG_NAME_MAX <= 255 && TG_OWNER_MAX <= 255 && TG_SERVICE_MAX <= 255,
	       "strings are encoded with a u8 length");

static const char *const window_names[] = {"calendar", "rolling", NULL};
static const char *const mode_names[] = {NULL, "hard", "soft", NULL};
static const char *const action_names[] = {NULL, "block", "queue", "downgrade", "alert", NULL};

#define M1E9  1000000000ull
#define M1E12 1000000000000ull
#define M1E15 1000000000000000ull

/*
 * Request counts per minute/hour/day get 1e12 rather than 1e9 so that a day's worth of the
 * largest accepted rate (1e6 req/s) can still be written down; token counts get 1e15, which
 * is still exact as a JSON (double) number.
 */
const struct limit_desc limit_descs[LIMIT__COUNT] = {
    [LIMIT_RPS] = {.name = "requests_per_second", .min = 1, .max = M1E9, .milli = true},
    [LIMIT_BURST] = {.name = "burst", .min = 1, .max = M1E9},
    [LIMIT_RPM] = {.name = "requests_per_minute", .min = 0, .max = M1E12},
    [LIMIT_RPH] = {.name = "requests_per_hour", .min = 0, .max = M1E12},
    [LIMIT_RPD] = {.name = "requests_per_day", .min = 0, .max = M1E12},
    [LIMIT_TPM] = {.name = "tokens_per_minute", .min = 0, .max = M1E15},
    [LIMIT_TOKENS_MONTH] = {.name = "tokens_per_month", .min = 0, .max = M1E15},
    [LIMIT_MAX_CONCURRENT] = {.name = "max_concurrent", .min = 0, .max = M1E9},
    [LIMIT_RP_MONTH] = {.name = "requests_per_month", .min = 0, .max = M1E12},
    [LIMIT_TPH] = {.name = "tokens_per_hour", .min = 0, .max = M1E15},
    [LIMIT_TPD] = {.name = "tokens_per_day", .min = 0, .max = M1E15},
    /* 60: the engine keeps 62 day buckets (windows.h) */
    [LIMIT_TOKEN_QUOTA_DAYS] = {.name = "token_quota_days", .min = 0, .max = 60},
    /* cost up to 1e6 USD: 1e15 nano-USD is still exact as a double */
    [LIMIT_COST_HOUR] = {.name = "cost_per_hour", .min = 0, .max = M1E15, .nano = true},
    [LIMIT_COST_DAY] = {.name = "cost_per_day", .min = 0, .max = M1E15, .nano = true},
    [LIMIT_COST_MONTH] = {.name = "cost_per_month", .min = 0, .max = M1E15, .nano = true},
    [LIMIT_COST_WINDOW] =
	{.name = "cost_window", .min = 0, .max = 1, .names = window_names, .nnames = 2},
    [LIMIT_BYTES_MONTH] = {.name = "bytes_per_month", .min = 0, .max = M1E15},
    [LIMIT_COMPUTE_MONTH] = {.name = "compute_seconds_per_month",
			     .min = 0,
			     .max = M1E12,
			     .milli = true},
    [LIMIT_ALERT_THRESHOLD] = {.name = "alert_threshold", .min = 0, .max = 1000, .milli = true},
    [LIMIT_MODE] = {.name = "mode", .min = 0, .max = 2, .names = mode_names, .nnames = 3},
    [LIMIT_ACTION] = {.name = "action", .min = 0, .max = 4, .names = action_names, .nnames = 5},
};

const char *limit_mode_name(enum limit_mode m)
{
	return (unsigned)m < 3 ? (m ? mode_names[m] : "inherit") : "unknown";
}

const char *limit_action_name(enum limit_action a)
{
	return (unsigned)a < LIMIT_ACT__COUNT ? (a ? action_names[a] : "inherit") : "unknown";
}

int limit_enum_parse(enum limit_field f, const char *name)
{
	const struct limit_desc *d = (unsigned)f < LIMIT__COUNT ? &limit_descs[f] : NULL;

	for (unsigned i = 0; d && d->names && i < d->nnames; i++)
		if (d->names[i] && strcmp(d->names[i], name) == 0)
			return (int)i;
	return -EINVAL;
}

const char *limit_enum_name(enum limit_field f, uint64_t v)
{
	const struct limit_desc *d = (unsigned)f < LIMIT__COUNT ? &limit_descs[f] : NULL;

	return d && d->names && v < d->nnames ? d->names[v] : NULL;
}

/* Requests per second are stored in milli-requests per second (see enum limit_field). */
const struct tier model_default_tiers[3] = {
    {"basic", {.v = {[LIMIT_RPS] = 10000, [LIMIT_BURST] = 20, [LIMIT_TOKENS_MONTH] = 100000}}},
    {"premium",
     {.v = {[LIMIT_RPS] = 100000, [LIMIT_BURST] = 200, [LIMIT_TOKENS_MONTH] = 10000000}}},
    {"enterprise",
     {.v = {[LIMIT_RPS] = 1000000, [LIMIT_BURST] = 2000, [LIMIT_TOKENS_MONTH] = 1000000000}}},
};

int limit_field_by_name(const char *name)
{
	for (int f = 0; f < LIMIT__COUNT; f++) {
		if (strcmp(name, limit_descs[f].name) == 0)
			return f;
	}
	return -ENOENT;
}

int limit_check(enum limit_field f, uint64_t v)
{
	if ((unsigned)f >= LIMIT__COUNT)
		return -ERANGE;
	return v >= limit_descs[f].min && v <= limit_descs[f].max ? 0 : -ERANGE;
}

void limits_merge(const struct limits *tier, const struct limits *overrides, struct limits *out)
{
	uint64_t key_action = overrides->v[LIMIT_ACTION];
	/* a key's own "action" outranks its tier's per-limit actions (see model.h) */
	bool key_default = key_action != LIMIT_UNSET && key_action != LIMIT_ACT_INHERIT;

	/* Field by field, so out may be the same object as tier or overrides. */
	for (int f = 0; f < LIMIT_ACT_SLOTS; f++)
		out->act[f] = overrides->act[f] ? overrides->act[f]
			      : key_default	? LIMIT_ACT_INHERIT
						: tier->act[f];
	for (int f = 0; f < LIMIT__COUNT; f++)
		out->v[f] = overrides->v[f] != LIMIT_UNSET ? overrides->v[f] : tier->v[f];
}

void limits_clear(struct limits *l)
{
	for (int f = 0; f < LIMIT__COUNT; f++)
		l->v[f] = LIMIT_UNSET;
	memset(l->act, 0, sizeof(l->act));
}

bool limit_takes_action(enum limit_field f)
{
	switch (f) {
	case LIMIT_RPS:
	case LIMIT_RPM:
	case LIMIT_RPH:
	case LIMIT_RPD:
	case LIMIT_RP_MONTH:
	case LIMIT_TPM:
	case LIMIT_TPH:
	case LIMIT_TPD:
	case LIMIT_TOKENS_MONTH:
	case LIMIT_MAX_CONCURRENT:
	case LIMIT_COST_HOUR:
	case LIMIT_COST_DAY:
	case LIMIT_COST_MONTH:
	case LIMIT_BYTES_MONTH:
	case LIMIT_COMPUTE_MONTH:
		return true;
	default:
		return false;
	}
}

int limits_actions_check(const struct limits *l)
{
	for (int f = 0; f < LIMIT_ACT_SLOTS; f++)
		if (l->act[f] && (f >= LIMIT__COUNT || l->act[f] >= LIMIT_ACT__COUNT ||
				  !limit_takes_action((enum limit_field)f)))
			return -EINVAL;
	return 0;
}

enum limit_action limit_action_of(const struct limits *l, enum limit_field f,
				  enum limit_action dflt)
{
	uint64_t a = (unsigned)f < LIMIT__COUNT ? l->act[f] : 0;

	/* LIMIT_UNSET (an override set) and out-of-range values fall through like 0 */
	if (!a || a >= LIMIT_ACT__COUNT)
		a = l->v[LIMIT_ACTION];
	if (!a || a >= LIMIT_ACT__COUNT)
		a = dflt;
	return (enum limit_action)a;
}

enum key_status key_status_at(const struct key_record *k, int64_t now)
{
	/* A revoked key stays revoked whatever its expiry says. */
	if (k->revoked_at != 0)
		return KEY_REVOKED;
	if (k->expires_at != 0 && k->expires_at <= now)
		return KEY_EXPIRED;
	return KEY_ACTIVE;
}

const char *key_status_name(enum key_status s)
{
	static const char *const names[] = {"active", "revoked", "expired"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static const char *const role_names[] = {"admin", "viewer", "consumer"};

const char *token_role_name(enum token_role r)
{
	return (unsigned)r < sizeof(role_names) / sizeof(role_names[0]) ? role_names[r] : "unknown";
}

int token_role_parse(const char *name)
{
	for (unsigned i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++) {
		if (strcmp(name, role_names[i]) == 0)
			return (int)i;
	}
	return -EINVAL;
}

/* Length of the UTF-8 sequence at p (at most n bytes available), or 0 if it is malformed. */
static size_t utf8_seq_len(const unsigned char *p, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	/* 0x80..0xc1 never start a sequence (continuation bytes, overlong 2-byte forms). */
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	c = p[0] & (0x7fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

bool model_name_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, TG_NAME_MAX + 1);

	if (n == 0 || n > TG_NAME_MAX)
		return false;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_seq_len(p + i, n - i, &cp);

		/* C0 controls, DEL and the C1 controls are not printable. */
		if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += len;
	}
	return true;
}

/* True if s is min..max bytes, each one of [A-Za-z0-9] (or [a-z0-9] if lower) or in extra. */
static bool chars_valid(const char *s, size_t min, size_t max, bool lower, const char *extra)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (!lower && c >= 'A' && c <= 'Z') || strchr(extra, c);

		if (!ok || n >= max)
			return false;
	}
	return n >= min;
}

bool model_owner_valid(const char *s)
{
	static const char *const kinds[] = {"consumer:", "user:", "team:"};

	for (unsigned i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);

		if (strncmp(s, kinds[i], n) == 0)
			return chars_valid(s + n, 1, TG_OWNER_ID_MAX, false, "._-");
	}
	return false;
}

bool model_service_valid(const char *s)
{
	return chars_valid(s, 1, TG_SERVICE_MAX, false, "._-");
}

bool model_tier_name_valid(const char *s)
{
	return chars_valid(s, 1, TG_TIER_NAME_MAX, true, "_-");
}

bool model_consumer_id_valid(const char *s)
{
	return chars_valid(s, 1, TG_OWNER_ID_MAX, false, "._-");
}

bool model_id_valid(const char *s)
{
	return chars_valid(s, TG_ID_LEN, TG_ID_LEN, true, "");
}

static void enc_limits(struct codec_enc *e, const struct limits *l, unsigned format)
{
	int n = format >= MODEL_FORMAT_V3 ? LIMIT__COUNT : LIMIT_V2_COUNT;

	for (int f = 0; f < n; f++)
		codec_put_uint(e, l->v[f], 8);
}

/* Format 4: one byte per limit field, its action (0 = none of its own). */
static void enc_actions(struct codec_enc *e, const struct limits *l, unsigned format)
{
	if (format >= MODEL_FORMAT_V4)
		codec_put(e, l->act, LIMIT__COUNT);
}

static void enc_pwhash(struct codec_enc *e, const struct pwhash *h)
{
	codec_put_uint(e, h->t_cost, 4);
	codec_put_uint(e, h->m_cost_kib, 4);
	codec_put_uint(e, h->parallelism, 4);
	codec_put(e, h->salt, sizeof(h->salt));
	codec_put(e, h->hash, sizeof(h->hash));
}

static void enc_start(struct codec_enc *e, void *buf, size_t cap, enum model_kind kind,
		      unsigned format)
{
	e->p = buf;
	e->cap = cap;
	e->pos = 0;
	e->err = 0;
	codec_put_uint(e, format, 2);
	codec_put_uint(e, kind, 2);
}

static int enc_end(const struct codec_enc *e)
{
	return e->err ? e->err : (int)e->pos;
}

/* Format 1/2 records hold the first LIMIT_V2_COUNT fields; the rest get absent. */
static void dec_limits(struct codec_dec *d, struct limits *l, unsigned format, uint64_t absent)
{
	int n = format >= MODEL_FORMAT_V3 ? LIMIT__COUNT : LIMIT_V2_COUNT;

	for (int f = 0; f < LIMIT__COUNT; f++)
		l->v[f] = f < n ? codec_get_uint(d, 8) : absent;
}

/*
 * Format 4's per-limit actions (older formats: none, as the caller's memset left them). A
 * value this build does not know, or an action on a field that takes none, is corrupt.
 */
static void dec_actions(struct codec_dec *d, struct limits *l, unsigned format)
{
	if (format < MODEL_FORMAT_V4)
		return;
	codec_get(d, l->act, LIMIT__COUNT);
	if (limits_actions_check(l))
		d->bad = true;
}

static void dec_pwhash(struct codec_dec *d, struct pwhash *h)
{
	h->t_cost = (uint32_t)codec_get_uint(d, 4);
	h->m_cost_kib = (uint32_t)codec_get_uint(d, 4);
	h->parallelism = (uint32_t)codec_get_uint(d, 4);
	codec_get(d, h->salt, sizeof(h->salt));
	codec_get(d, h->hash, sizeof(h->hash));
}

/* Reads the header; returns the record's format (1..max_format), or 0 and d->bad set. */
static unsigned dec_start(struct codec_dec *d, const void *buf, size_t len, enum model_kind kind,
			  unsigned max_format)
{
	unsigned format;

	d->p = buf;
	d->len = len;
	d->pos = 0;
	d->bad = false;
	format = (unsigned)codec_get_uint(d, 2);
	if (format < MODEL_FORMAT_V1 || format > max_format || codec_get_uint(d, 2) != kind)
		d->bad = true;
	return d->bad ? 0 : format;
}

/* 0 if every field decoded and nothing is left over, else -EINVAL. */
static int dec_end(const struct codec_dec *d)
{
	return d->bad || d->pos != d->len ? -EINVAL : 0;
}

int key_record_encode(const struct key_record *r, void *buf, size_t cap)
{
	return key_record_encode_format(r, MODEL_FORMAT_V4, buf, cap);
}

int key_record_encode_format(const struct key_record *r, unsigned format, void *buf, size_t cap)
{
	struct codec_enc e;

	if (format < MODEL_FORMAT_V1 || format > MODEL_FORMAT_V4)
		return -EINVAL;
	enc_start(&e, buf, cap, MODEL_KIND_KEY, format);
	codec_put_str(&e, r->id, TG_ID_LEN);
	codec_put_str(&e, r->name, TG_NAME_MAX);
	codec_put_str(&e, r->owner, TG_OWNER_MAX);
	codec_put_str(&e, r->service, TG_SERVICE_MAX);
	codec_put_str(&e, r->tier, TG_TIER_NAME_MAX);
	enc_limits(&e, &r->overrides, format);
	codec_put_uint(&e, (uint64_t)r->created_at, 8);
	codec_put_uint(&e, (uint64_t)r->expires_at, 8);
	codec_put_uint(&e, (uint64_t)r->revoked_at, 8);
	codec_put_uint(&e, (uint64_t)r->last_used_at, 8);
	codec_put_uint(&e, (uint64_t)r->rotated_at, 8);
	codec_put_uint(&e, (uint64_t)r->prev_valid_until, 8);
	codec_put_uint(&e, r->secret_gen, 4);
	enc_pwhash(&e, &r->cur);
	enc_pwhash(&e, &r->prev);
	codec_put_uint(&e, r->khash_cur, 8);
	codec_put_uint(&e, r->khash_prev, 8);
	if (format >= MODEL_FORMAT_V2)
		codec_put_uint(&e, r->slot, 4);
	enc_actions(&e, &r->overrides, format); /* appended last, as the slot was */
	return enc_end(&e);
}

int key_record_decode(const void *buf, size_t len, struct key_record *r)
{
	struct codec_dec d;
	unsigned format;

	memset(r, 0, sizeof(*r));
	format = dec_start(&d, buf, len, MODEL_KIND_KEY, MODEL_FORMAT_V4);
	codec_get_str(&d, r->id, TG_ID_LEN);
	codec_get_str(&d, r->name, TG_NAME_MAX);
	codec_get_str(&d, r->owner, TG_OWNER_MAX);
	codec_get_str(&d, r->service, TG_SERVICE_MAX);
	codec_get_str(&d, r->tier, TG_TIER_NAME_MAX);
	dec_limits(&d, &r->overrides, format, LIMIT_UNSET);
	r->created_at = (int64_t)codec_get_uint(&d, 8);
	r->expires_at = (int64_t)codec_get_uint(&d, 8);
	r->revoked_at = (int64_t)codec_get_uint(&d, 8);
	r->last_used_at = (int64_t)codec_get_uint(&d, 8);
	r->rotated_at = (int64_t)codec_get_uint(&d, 8);
	r->prev_valid_until = (int64_t)codec_get_uint(&d, 8);
	r->secret_gen = (uint32_t)codec_get_uint(&d, 4);
	dec_pwhash(&d, &r->cur);
	dec_pwhash(&d, &r->prev);
	r->khash_cur = codec_get_uint(&d, 8);
	r->khash_prev = codec_get_uint(&d, 8);
	r->slot = format >= MODEL_FORMAT_V2 ? (uint32_t)codec_get_uint(&d, 4) : TG_SLOT_NONE;
	dec_actions(&d, &r->overrides, format);
	return dec_end(&d);
}

int tier_encode(const struct tier *t, void *buf, size_t cap)
{
	return tier_encode_format(t, MODEL_FORMAT_V4, buf, cap);
}

int tier_encode_format(const struct tier *t, unsigned format, void *buf, size_t cap)
{
	struct codec_enc e;

	if (format != MODEL_FORMAT_V1 && format != MODEL_FORMAT_V3 && format != MODEL_FORMAT_V4)
		return -EINVAL;
	enc_start(&e, buf, cap, MODEL_KIND_TIER, format);
	codec_put_str(&e, t->name, TG_TIER_NAME_MAX);
	enc_limits(&e, &t->lim, format);
	enc_actions(&e, &t->lim, format);
	return enc_end(&e);
}

int tier_decode(const void *buf, size_t len, struct tier *t)
{
	struct codec_dec d;
	unsigned format;

	memset(t, 0, sizeof(*t));
	/* tiers skipped format 2 (a key-record change): 1, then 3, 4 */
	format = dec_start(&d, buf, len, MODEL_KIND_TIER, MODEL_FORMAT_V4);
	if (format == MODEL_FORMAT_V2)
		d.bad = true;
	codec_get_str(&d, t->name, TG_TIER_NAME_MAX);
	dec_limits(&d, &t->lim, format, 0);
	dec_actions(&d, &t->lim, format);
	return dec_end(&d);
}

int token_record_encode(const struct token_record *r, void *buf, size_t cap)
{
	struct codec_enc e;

	enc_start(&e, buf, cap, MODEL_KIND_TOKEN, MODEL_FORMAT_V1);
	codec_put_str(&e, r->id, TG_ID_LEN);
	codec_put_str(&e, r->name, TG_NAME_MAX);
	codec_put_uint(&e, r->role, 4);
	codec_put_str(&e, r->consumer, TG_OWNER_ID_MAX);
	codec_put_str(&e, r->tier, TG_TIER_NAME_MAX);
	codec_put_uint(&e, (uint64_t)r->created_at, 8);
	codec_put_uint(&e, (uint64_t)r->revoked_at, 8);
	codec_put_uint(&e, (uint64_t)r->last_used_at, 8);
	enc_pwhash(&e, &r->hash);
	return enc_end(&e);
}

int token_record_decode(const void *buf, size_t len, struct token_record *r)
{
	struct codec_dec d;

	memset(r, 0, sizeof(*r));
	dec_start(&d, buf, len, MODEL_KIND_TOKEN, MODEL_FORMAT_V1);
	codec_get_str(&d, r->id, TG_ID_LEN);
	codec_get_str(&d, r->name, TG_NAME_MAX);
	r->role = (uint32_t)codec_get_uint(&d, 4);
	codec_get_str(&d, r->consumer, TG_OWNER_ID_MAX);
	codec_get_str(&d, r->tier, TG_TIER_NAME_MAX);
	r->created_at = (int64_t)codec_get_uint(&d, 8);
	r->revoked_at = (int64_t)codec_get_uint(&d, 8);
	r->last_used_at = (int64_t)codec_get_uint(&d, 8);
	dec_pwhash(&d, &r->hash);
	/* A role this build does not know would be mistaken for another one: refuse it. */
	if (r->role > ROLE_CONSUMER)
		d.bad = true;
	return dec_end(&d);
}

int owner_record_encode(const struct owner_record *r, void *buf, size_t cap)
{
	struct codec_enc e;

	enc_start(&e, buf, cap, MODEL_KIND_OWNER, MODEL_FORMAT_V1);
	codec_put_str(&e, r->owner, TG_OWNER_MAX);
	codec_put_uint(&e, (uint64_t)r->created_at, 8);
	codec_put_uint(&e, r->keys, 8);
	return enc_end(&e);
}

int owner_record_decode(const void *buf, size_t len, struct owner_record *r)
{
	struct codec_dec d;

	memset(r, 0, sizeof(*r));
	dec_start(&d, buf, len, MODEL_KIND_OWNER, MODEL_FORMAT_V1);
	codec_get_str(&d, r->owner, TG_OWNER_MAX);
	r->created_at = (int64_t)codec_get_uint(&d, 8);
	r->keys = codec_get_uint(&d, 8);
	return dec_end(&d);
}

int subject_limits_encode(const struct subject_limits *r, void *buf, size_t cap)
{
	struct codec_enc e;

	enc_start(&e, buf, cap, MODEL_KIND_LIMITS, MODEL_FORMAT_V3);
	codec_put_str(&e, r->subject, TG_SUBJECT_MAX);
	/* the limits and actions of a format 4 key or tier: see model.h */
	enc_limits(&e, &r->lim, MODEL_FORMAT_V4);
	enc_actions(&e, &r->lim, MODEL_FORMAT_V4);
	return enc_end(&e);
}

int subject_limits_decode(const void *buf, size_t len, struct subject_limits *r)
{
	struct codec_dec d;
	unsigned format;

	memset(r, 0, sizeof(*r));
	/* written first in format 3 (issue 5): nothing older exists */
	format = dec_start(&d, buf, len, MODEL_KIND_LIMITS, MODEL_FORMAT_V3);
	if (format && format != MODEL_FORMAT_V3)
		d.bad = true;
	codec_get_str(&d, r->subject, TG_SUBJECT_MAX);
	dec_limits(&d, &r->lim, MODEL_FORMAT_V4, LIMIT_UNSET);
	dec_actions(&d, &r->lim, MODEL_FORMAT_V4);
	return dec_end(&d);
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Usage metering (see usage.h). Records go through the store's group-commit writer into
 * STORE_DB_USAGE; the writer's batch hook folds each batch into STORE_DB_ROLLUPS in the same
 * transaction, so a record and its share of the roll-ups commit together or not at all, and
 * a batch retried after a failure is counted once.
 *
 * The limits engine's buckets (STORE_DB_BUDGET) are persisted less often: see
 * "the buckets' persistence" below.
 *
 * Encodings are little-endian, like model.c's: a u16 format version and a u16 kind, then the
 * fields in declaration order, integers at fixed width, strings as a u8 length and their
 * bytes (no NUL). Decoding refuses a wrong version or kind, short or trailing bytes, and
 * strings too long for their field or holding a NUL.
 *
 * A roll-up's key is the 12-byte key id, the UTC day (days since 1970-01-01) as a big-endian
 * u32, then the service's bytes, so one key's days are adjacent and in order and a window
 * of days is one cursor walk. Its value is struct usage_totals behind the same header.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "codec.h"
#include "budget.h"
#include "usage.h"
#include "util.h"

#define USAGE_FORMAT_V1 1u
#define USAGE_FORMAT_V2 2u /* records: V1, then the tenant and the attempts (u32) */
/* Kinds distinct from model.c's (1..4), so a record of one type never passes for another. */
#define USAGE_KIND_RECORD 0x10u
#define USAGE_KIND_TOTALS 0x11u
#define USAGE_KIND_BUCKET 0x12u

/* A persisted bucket: the subject, a 0 byte, the ring unit (u8), the slot (BE u16). */
#define BUCKET_KEY_MAX (BUDGET_SUBJECT_MAX + 4)
#define BUCKET_VAL_LEN (ENC_HDR + 8 + WIN_M__COUNT * 8)

#define MS_PER_DAY     86400000LL
#define SECS_PER_DAY   86400LL
#define USAGE_DAYS_MAX 366

#define ENC_HDR	     4
#define ENC_STR(max) (1 + (max))
#define ENC_RECORD_MAX                                                                             \
	(ENC_HDR + 8 + ENC_STR(47) + ENC_STR(TG_ID_LEN) + ENC_STR(TG_OWNER_MAX) +                  \
	 ENC_STR(TG_SERVICE_MAX) + ENC_STR(PROVIDER_NAME_MAX) + ENC_STR(MODEL_NAME_MAX) +          \
	 ENC_STR(31) + 3 * 4 + 6 * 8 + ENC_STR(64))
#define TOTALS_LEN     (ENC_HDR + 6 * 8)
#define ROLLUP_KEY_MAX (TG_ID_LEN + 4 + TG_SERVICE_MAX)

_Static_assert(ENC_RECORD_MAX <= USAGE_RECORD_MAX, "USAGE_RECORD_MAX too small for a record");
_Static_assert(sizeof(((struct usage_record *)0)->request_id) == 48 &&
		   sizeof(((struct usage_record *)0)->endpoint) == 32,
	       "ENC_RECORD_MAX assumes these field sizes");
_Static_assert(TG_OWNER_MAX <= 255 && MODEL_NAME_MAX <= 255, "strings have a u8 length");

/* Batches the roll-up hook fails with -EIO after its writes: for tests/unit/test_usage.c. */
atomic_uint usage_debug_fail_batches;

/* One roll-up a batch touches, with the batch's share of it. */
struct rollup_acc {
	uint8_t key[ROLLUP_KEY_MAX];
	size_t klen;
	struct usage_totals add;
};

/* One limits-engine bucket a batch touches (subject, ring, bucket id), with its share. */
struct bucket_acc {
	uint8_t key[BUCKET_KEY_MAX];
	size_t klen;
	int64_t id;
	uint64_t add[WIN_M__COUNT];
};

#define BUCKETS_PER_RECORD (BUDGET_PER_CALL * 3) /* subjects x rings */

struct usage {
	struct store *s;
	struct store_writer *w;
	struct rollup_acc *acc; /* scratch of the writer thread's hook, grown on demand */
	size_t acc_cap;
	struct bucket_acc *bacc; /* the same for the limits engine's buckets */
	size_t bacc_cap, nb;
	uint32_t *bidx; /* bucket_merge's open-addressing index into bacc: i + 1, 0 = free */
	size_t bidx_mask;
	int64_t flush_every_ns; /* buckets written at most this often; 0 = with every batch */
	int64_t next_flush_ns;	/* CLOCK_MONOTONIC */
};

static void enc_start(struct codec_enc *e, void *buf, size_t cap, unsigned kind,
		      unsigned format)
{
	*e = (struct codec_enc){.p = buf, .cap = cap};
	codec_put_uint(e, format, 2);
	codec_put_uint(e, kind, 2);
}

/* The format read (1..max), or 0 with d->bad set. */
static unsigned dec_start(struct codec_dec *d, const void *buf, size_t len, unsigned kind,
			  unsigned max)
{
	unsigned format;

	*d = (struct codec_dec){.p = buf, .len = len};
	format = (unsigned)codec_get_uint(d, 2);
	if (format < USAGE_FORMAT_V1 || format > max || codec_get_uint(d, 2) != kind)
		d->bad = true;
	return d->bad ? 0 : format;
}

static int dec_end(const struct codec_dec *d)
{
	return d->bad || d->pos != d->len ? -EINVAL : 0;
}

#define STR_FIELD(r, f) (r)->f, sizeof((r)->f) - 1

int usage_record_encode(const struct usage_record *r, void *buf, size_t cap)
{
	struct codec_enc e;

	enc_start(&e, buf, cap, USAGE_KIND_RECORD, USAGE_FORMAT_V2);
	codec_put_uint(&e, (uint64_t)r->time_ms, 8);
	codec_put_str(&e, STR_FIELD(r, request_id));
	codec_put_str(&e, STR_FIELD(r, key_id));
	codec_put_str(&e, STR_FIELD(r, owner));
	codec_put_str(&e, STR_FIELD(r, service));
	codec_put_str(&e, STR_FIELD(r, provider));
	codec_put_str(&e, STR_FIELD(r, model));
	codec_put_str(&e, STR_FIELD(r, endpoint));
	codec_put_uint(&e, r->status, 4);
	codec_put_uint(&e, r->stream, 4);
	codec_put_uint(&e, r->prompt_tokens, 8);
	codec_put_uint(&e, r->completion_tokens, 8);
	codec_put_uint(&e, r->cost_nano, 8);
	codec_put_uint(&e, r->latency_us, 8);
	codec_put_uint(&e, r->bytes_in, 8);
	codec_put_uint(&e, r->bytes_out, 8);
	codec_put_str(&e, STR_FIELD(r, tenant));
	codec_put_uint(&e, r->attempts, 4);
	return e.err ? e.err : (int)e.pos;
}

int usage_record_decode(const void *buf, size_t len, struct usage_record *r)
{
	struct codec_dec d;
	unsigned format;

	/* Zeroed first, so that equal encodings decode to byte-identical structs. */
	memset(r, 0, sizeof(*r));
	format = dec_start(&d, buf, len, USAGE_KIND_RECORD, USAGE_FORMAT_V2);
	r->time_ms = (int64_t)codec_get_uint(&d, 8);
	codec_get_str(&d, STR_FIELD(r, request_id));
	codec_get_str(&d, STR_FIELD(r, key_id));
	codec_get_str(&d, STR_FIELD(r, owner));
	codec_get_str(&d, STR_FIELD(r, service));
	codec_get_str(&d, STR_FIELD(r, provider));
	codec_get_str(&d, STR_FIELD(r, model));
	codec_get_str(&d, STR_FIELD(r, endpoint));
	r->status = (uint32_t)codec_get_uint(&d, 4);
	r->stream = (uint32_t)codec_get_uint(&d, 4);
	r->prompt_tokens = codec_get_uint(&d, 8);
	r->completion_tokens = codec_get_uint(&d, 8);
	r->cost_nano = codec_get_uint(&d, 8);
	r->latency_us = codec_get_uint(&d, 8);
	r->bytes_in = codec_get_uint(&d, 8);
	r->bytes_out = codec_get_uint(&d, 8);
	if (format >= USAGE_FORMAT_V2) {
		codec_get_str(&d, STR_FIELD(r, tenant));
		r->attempts = (uint32_t)codec_get_uint(&d, 4);
	} else {
		r->attempts = 1; /* written before failover existed: one attempt */
	}
	return dec_end(&d);
}

static void totals_encode(const struct usage_totals *t, uint8_t buf[TOTALS_LEN])
{
	struct codec_enc e;

	enc_start(&e, buf, TOTALS_LEN, USAGE_KIND_TOTALS, USAGE_FORMAT_V1);
	codec_put_uint(&e, t->requests, 8);
	codec_put_uint(&e, t->errors, 8);
	codec_put_uint(&e, t->prompt_tokens, 8);
	codec_put_uint(&e, t->completion_tokens, 8);
	codec_put_uint(&e, t->cost_nano, 8);
	codec_put_uint(&e, t->latency_us_sum, 8);
}

static int totals_decode(const void *buf, size_t len, struct usage_totals *t)
{
	struct codec_dec d;

	dec_start(&d, buf, len, USAGE_KIND_TOTALS, USAGE_FORMAT_V1);
	t->requests = codec_get_uint(&d, 8);
	t->errors = codec_get_uint(&d, 8);
	t->prompt_tokens = codec_get_uint(&d, 8);
	t->completion_tokens = codec_get_uint(&d, 8);
	t->cost_nano = codec_get_uint(&d, 8);
	t->latency_us_sum = codec_get_uint(&d, 8);
	return dec_end(&d);
}

static void totals_add(struct usage_totals *to, const struct usage_totals *from)
{
	to->requests += from->requests;
	to->errors += from->errors;
	to->prompt_tokens += from->prompt_tokens;
	to->completion_tokens += from->completion_tokens;
	to->cost_nano += from->cost_nano;
	to->latency_us_sum += from->latency_us_sum;
}

/* The roll-up key of (key id, day, service); its length. */
static size_t rollup_key(uint8_t *k, const char *key_id, uint32_t day, const char *service)
{
	size_t n = strnlen(service, TG_SERVICE_MAX);

	memcpy(k, key_id, TG_ID_LEN);
	codec_be_put(k + TG_ID_LEN, day, 4);
	memcpy(k + TG_ID_LEN + 4, service, n);
	return TG_ID_LEN + 4 + n;
}

/* True if r can have a roll-up key: a key id, and a UTC day that fits in a u32. */
static bool record_rollable(const struct usage_record *r)
{
	return model_id_valid(r->key_id) && r->time_ms >= 0 &&
	       r->time_ms / MS_PER_DAY <= UINT32_MAX;
}

/* One record's contribution to its roll-up. */
static void rollup_from_record(const struct usage_record *r, struct rollup_acc *a)
{
	a->klen = rollup_key(a->key, r->key_id, (uint32_t)(r->time_ms / MS_PER_DAY), r->service);
	a->add = (struct usage_totals){
	    .requests = 1,
	    .errors = r->status >= 400,
	    .prompt_tokens = r->prompt_tokens,
	    .completion_tokens = r->completion_tokens,
	    .cost_nano = r->cost_nano,
	    .latency_us_sum = r->latency_us,
	};
}

static int acc_cmp(const void *a, const void *b)
{
	const struct rollup_acc *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int acc_reserve(struct usage *u, size_t n)
{
	struct rollup_acc *p;

	if (n <= u->acc_cap)
		return 0;
	p = realloc(u->acc, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	u->acc = p;
	u->acc_cap = n;
	return 0;
}

void usage_record_amounts(const struct usage_record *r, uint64_t out[WIN_M__COUNT])
{
	out[WIN_M_REQUESTS] = 1;
	out[WIN_M_TOKENS] = r->prompt_tokens + r->completion_tokens;
	out[WIN_M_COST] = r->cost_nano;
	out[WIN_M_BYTES] = r->bytes_in + r->bytes_out;
	out[WIN_M_COMPUTE] = r->latency_us / 1000;
}

/* The key of subject's bucket id in ring: the slot the engine's ring keeps it in. */
static size_t bucket_key(uint8_t *k, const char *subject, enum win_unit ring, int64_t id)
{
	size_t n = strnlen(subject, BUDGET_SUBJECT_MAX - 1);
	int64_t slot = id % (int64_t)budget_ring_size(ring);

	if (slot < 0)
		slot += budget_ring_size(ring);
	memcpy(k, subject, n);
	k[n] = 0;
	k[n + 1] = (uint8_t)ring;
	k[n + 2] = (uint8_t)(slot >> 8);
	k[n + 3] = (uint8_t)slot;
	return n + 4;
}

/* The record's share of every bucket of its subjects (key, owner, tenant) into out; how many. */
static unsigned record_buckets(const struct usage_record *r, struct bucket_acc *out)
{
	char subj[BUDGET_PER_CALL][BUDGET_SUBJECT_MAX];
	unsigned ns = 0, nb = 0;
	uint64_t add[WIN_M__COUNT];

	usage_record_amounts(r, add);
	snprintf(subj[ns++], BUDGET_SUBJECT_MAX, "key:%s", r->key_id);
	if (r->owner[0])
		snprintf(subj[ns++], BUDGET_SUBJECT_MAX, "%s", r->owner);
	if (r->tenant[0])
		snprintf(subj[ns++], BUDGET_SUBJECT_MAX, "tenant:%s", r->tenant);
	for (unsigned i = 0; i < ns; i++) {
		for (int ring = WIN_MINUTE; ring <= WIN_DAY; ring++) {
			struct bucket_acc *b = &out[nb++];
			unsigned secs = win_unit_secs((enum win_unit)ring);

			b->id = win_bucket_id(r->time_ms / 1000, secs);
			b->klen = bucket_key(b->key, subj[i], (enum win_unit)ring, b->id);
			memcpy(b->add, add, sizeof(add));
		}
	}
	return nb;
}

/* The same appended to u->bacc, which has room for BUCKETS_PER_RECORD more. */
static void buckets_from_record(struct usage *u, const struct usage_record *r)
{
	u->nb += record_buckets(r, &u->bacc[u->nb]);
}

static int bacc_cmp(const void *a, const void *b)
{
	const struct bucket_acc *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);

	if (c || x->klen != y->klen)
		return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
	return (x->id > y->id) - (x->id < y->id);
}

static void bucket_encode(int64_t id, const uint64_t v[WIN_M__COUNT], uint8_t buf[BUCKET_VAL_LEN])
{
	struct codec_enc e;

	enc_start(&e, buf, BUCKET_VAL_LEN, USAGE_KIND_BUCKET, USAGE_FORMAT_V1);
	codec_put_uint(&e, (uint64_t)id, 8);
	for (int m = 0; m < WIN_M__COUNT; m++)
		codec_put_uint(&e, v[m], 8);
}

static int bucket_decode(const void *buf, size_t len, int64_t *id, uint64_t v[WIN_M__COUNT])
{
	struct codec_dec d;

	dec_start(&d, buf, len, USAGE_KIND_BUCKET, USAGE_FORMAT_V1);
	*id = (int64_t)codec_get_uint(&d, 8);
	for (int m = 0; m < WIN_M__COUNT; m++)
		v[m] = codec_get_uint(&d, 8);
	return dec_end(&d);
}

/*
 * Adds a batch's bucket shares to the stored buckets, as the engine's rings do: the same id
 * adds up, a newer id replaces the slot, an older one (outside every window) is dropped.
 */
/* One slot's new value: the stored bucket (restarted when older or unreadable) plus the
 * batch's shares of its newest id. */
struct bucket_upd {
	const struct bucket_acc *b;
	size_t n;
};

static int bucket_update(const void *old, size_t len, void *out, size_t cap, size_t *outlen,
			 void *arg)
{
	const struct bucket_upd *a = arg;
	uint64_t v[WIN_M__COUNT] = {0};
	int64_t id = INT64_MIN;

	if (cap < BUCKET_VAL_LEN)
		return -EMSGSIZE;
	if (old && bucket_decode(old, len, &id, v))
		id = INT64_MIN; /* unreadable: restarted, like a corrupt roll-up */
	for (size_t k = 0; k < a->n; k++) {
		if (a->b[k].id < id)
			continue;
		if (a->b[k].id > id) {
			id = a->b[k].id;
			memset(v, 0, sizeof(v));
		}
		for (int m = 0; m < WIN_M__COUNT; m++)
			v[m] += a->b[k].add[m];
	}
	bucket_encode(id, v, out);
	*outlen = BUCKET_VAL_LEN;
	return 0;
}

static int buckets_apply(struct usage *u, struct store_txn *t)
{
	size_t i = 0, j;

	if (u->nb > 1)
		qsort(u->bacc, u->nb, sizeof(*u->bacc), bacc_cmp);
	for (; i < u->nb; i = j) {
		struct bucket_upd a = {.b = &u->bacc[i]};
		int rc;

		/* the last of equal keys has the newest id: one write per slot */
		for (j = i + 1; j < u->nb && u->bacc[j].klen == a.b->klen &&
				!memcmp(u->bacc[j].key, a.b->key, a.b->klen);
		     j++)
			;
		a.n = j - i;
		rc = store_update(t, STORE_DB_BUDGET, a.b->key, a.b->klen, bucket_update, &a);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- migration 4: the limits engine's day buckets from the daily roll-ups ---- */

struct seed {
	struct usage u; /* only its bucket scratch (bacc, nb) */
	int err;
};

/* One roll-up (key id, day, service -> totals): its share of the key's and owner's days. */
static int seed_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct seed *sd = arg;
	struct usage_totals tot;
	struct usage_record r;

	if (klen < TG_ID_LEN + 4 || totals_decode(v, vlen, &tot))
		return 0; /* unreadable: nothing to carry over */
	if (sd->u.nb + BUCKETS_PER_RECORD > sd->u.bacc_cap) {
		size_t cap = sd->u.bacc_cap ? sd->u.bacc_cap * 2 : 1024;
		struct bucket_acc *b = realloc(sd->u.bacc, cap * sizeof(*b));

		if (!b)
			return -ENOMEM;
		sd->u.bacc = b;
		sd->u.bacc_cap = cap;
	}
	memset(&r, 0, sizeof(r));
	memcpy(r.key_id, k, TG_ID_LEN);
	r.time_ms = (int64_t)codec_be_get((const uint8_t *)k + TG_ID_LEN, 4) * MS_PER_DAY;
	r.prompt_tokens = tot.prompt_tokens;
	r.completion_tokens = tot.completion_tokens;
	r.cost_nano = tot.cost_nano;
	r.latency_us = tot.latency_us_sum;
	/* the key's minute, hour and day buckets (no owner yet: seed_owners adds it); roll-ups
	 * are per day, so only the day one is kept, with the roll-up's request count */
	buckets_from_record(&sd->u, &r);
	sd->u.nb -= 3;
	sd->u.bacc[sd->u.nb] = sd->u.bacc[sd->u.nb + WIN_DAY];
	sd->u.bacc[sd->u.nb].add[WIN_M_REQUESTS] = tot.requests;
	sd->u.nb++;
	return 0;
}

/* Adds a copy of every key bucket for the key's owner (looked up in STORE_DB_KEYS). */
static int seed_owners(struct store_txn *t, struct seed *sd)
{
	size_t n = sd->u.nb;

	for (size_t i = 0; i < n; i++) {
		struct bucket_acc *b = &sd->u.bacc[i], *o;
		struct key_record kr;
		const void *v;
		size_t len;

		/* "key:<id>" then the 0 byte */
		if (b->klen != 4 + TG_ID_LEN + 4 ||
		    store_get_ref(t, STORE_DB_KEYS, b->key + 4, TG_ID_LEN, &v, &len) ||
		    key_record_decode(v, len, &kr) || !kr.owner[0])
			continue;
		if (sd->u.nb == sd->u.bacc_cap) {
			struct bucket_acc *p = realloc(sd->u.bacc, sd->u.bacc_cap * 2 * sizeof(*p));

			if (!p)
				return -ENOMEM;
			sd->u.bacc = p;
			sd->u.bacc_cap *= 2;
			b = &sd->u.bacc[i];
		}
		o = &sd->u.bacc[sd->u.nb++];
		*o = *b;
		o->klen = bucket_key(o->key, kr.owner, WIN_DAY, b->id);
	}
	return 0;
}

static int seed_txn_iter(struct store_txn *t, struct seed *sd)
{
	int rc = store_iter(t, STORE_DB_ROLLUPS, NULL, 0, seed_one, sd);

	if (!rc)
		rc = seed_owners(t, sd);
	if (!rc)
		rc = buckets_apply(&sd->u, t);
	return rc;
}

int usage_budget_seed(struct store_txn *t)
{
	struct seed sd;
	int rc;

	memset(&sd, 0, sizeof(sd));
	rc = seed_txn_iter(t, &sd);
	free(sd.u.bacc);
	return rc;
}

/* ---- the buckets' persistence ---- */

/*
 * STORE_DB_BUDGET holds the buckets as they were after the usage record whose sequence is
 * in STORE_META_BUDGET_SEQ (W). Writing every batch's share of them (minute, hour and day
 * buckets of up to three subjects) was half of what the limits cost per call, so a batch's
 * hook writes them only once flush_every_ns has passed since the last time: it then adds up
 * the records after W (its own batch's included, put earlier in the same transaction),
 * writes one update per bucket touched, and moves W to the last record, all in the batch's
 * transaction. Whatever fails or is killed, the stored buckets and W match, and at start
 * usage_budget_load adds the records after W to the buckets it loads: nothing is counted
 * twice or lost, and the records stay the truth.
 */

/* W into *seq (0 when absent: every record is after it). 0 or -errno. */
static int budget_seq_get(struct store_txn *t, uint64_t *seq)
{
	const void *v;
	size_t n = 0;
	struct codec_dec d;
	int rc = store_get_ref(t, STORE_DB_META, STORE_META_BUDGET_SEQ,
			       strlen(STORE_META_BUDGET_SEQ), &v, &n);

	*seq = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	d = (struct codec_dec){.p = v, .len = n};
	*seq = codec_get_uint(&d, 8);
	return dec_end(&d);
}

static int budget_seq_put(struct store_txn *t, uint64_t seq)
{
	uint8_t b[8];
	struct codec_enc e = {.p = b, .cap = sizeof(b)};

	codec_put_uint(&e, seq, 8);
	return store_put(t, STORE_DB_META, STORE_META_BUDGET_SEQ, strlen(STORE_META_BUDGET_SEQ), b,
			 sizeof(b), 0);
}

int usage_budget_mark(struct store_txn *t)
{
	uint64_t last;
	int rc = store_usage_last(t, &last);

	return rc ? rc : budget_seq_put(t, last);
}

/* Calls fn for every record after W that can be rolled up, in sequence order. */
struct after_walk {
	int (*fn)(const struct usage_record *r, void *arg);
	void *arg;
	uint64_t last; /* the last sequence seen, 0 = none */
	size_t n;      /* records given to fn */
};

static int after_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct after_walk *w = arg;
	struct usage_record r;

	if (klen != 8)
		return -EIO; /* store_usage_last says so too */
	w->last = codec_be_get(k, 8);
	/* as in batch_aggregate: kept in the store, not rolled up */
	if (usage_record_decode(v, vlen, &r) || !record_rollable(&r))
		return 0;
	w->n++;
	return w->fn(&r, w->arg);
}

static int records_after(struct store_txn *t, uint64_t seq, struct after_walk *w)
{
	uint8_t start[8];

	if (seq == UINT64_MAX)
		return 0;
	codec_be_put(start, seq + 1, 8);
	return store_iter(t, STORE_DB_USAGE, start, sizeof(start), after_one, w);
}

static uint32_t bucket_hash(const struct bucket_acc *b)
{
	uint32_t h = 2166136261u; /* FNV-1a over the key, then the id */

	for (size_t i = 0; i < b->klen; i++)
		h = (h ^ b->key[i]) * 16777619u;
	for (int i = 0; i < 64; i += 8)
		h = (h ^ (uint8_t)((uint64_t)b->id >> i)) * 16777619u;
	return h;
}

/* Doubles the index (and bacc with it) once half full; 0 or -ENOMEM. */
static int bucket_grow(struct usage *u)
{
	size_t cap = u->bidx_mask ? (u->bidx_mask + 1) * 2 : 1024;
	struct bucket_acc *b;
	uint32_t *idx;

	if (u->bidx && u->nb < (u->bidx_mask + 1) / 2)
		return 0;
	if (cap > UINT32_MAX)
		return -ENOMEM;
	b = realloc(u->bacc, cap / 2 * sizeof(*b));
	if (!b)
		return -ENOMEM;
	u->bacc = b;
	u->bacc_cap = cap / 2;
	idx = calloc(cap, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	free(u->bidx);
	u->bidx = idx;
	u->bidx_mask = cap - 1;
	for (size_t i = 0; i < u->nb; i++) {
		size_t h = bucket_hash(&u->bacc[i]) & u->bidx_mask;

		while (u->bidx[h])
			h = (h + 1) & u->bidx_mask;
		u->bidx[h] = (uint32_t)i + 1;
	}
	return 0;
}

/* Adds b to the entry of the same (subject, ring, id) in u->bacc, or appends it. */
static int bucket_merge(struct usage *u, const struct bucket_acc *b)
{
	size_t h;
	int rc = bucket_grow(u);

	if (rc)
		return rc;
	for (h = bucket_hash(b) & u->bidx_mask; u->bidx[h]; h = (h + 1) & u->bidx_mask) {
		struct bucket_acc *e = &u->bacc[u->bidx[h] - 1];

		if (e->id == b->id && e->klen == b->klen && !memcmp(e->key, b->key, b->klen)) {
			for (int m = 0; m < WIN_M__COUNT; m++)
				e->add[m] += b->add[m];
			return 0;
		}
	}
	u->bacc[u->nb] = *b;
	u->bidx[h] = (uint32_t)++u->nb;
	return 0;
}

static int flush_one(const struct usage_record *r, void *arg)
{
	struct bucket_acc b[BUCKETS_PER_RECORD];
	unsigned n = record_buckets(r, b);

	for (unsigned i = 0; i < n; i++) {
		int rc = bucket_merge(arg, &b[i]);

		if (rc)
			return rc;
	}
	return 0;
}

/* Adds the records after W to the stored buckets and moves W past them (in t). */
static int buckets_flush(struct usage *u, struct store_txn *t)
{
	struct after_walk w = {.fn = flush_one, .arg = u};
	uint64_t seq;
	int rc = budget_seq_get(t, &seq);

	u->nb = 0;
	if (u->bidx)
		memset(u->bidx, 0, (u->bidx_mask + 1) * sizeof(*u->bidx));
	if (!rc)
		rc = records_after(t, seq, &w);
	if (!rc && w.n)
		rc = buckets_apply(u, t);
	if (!rc && w.last)
		rc = budget_seq_put(t, w.last);
	return rc;
}

/* The batch hook's part: buckets_flush when the interval has passed. */
static int buckets_flush_due(struct usage *u, struct store_txn *t)
{
	int64_t now = tg_now_mono_ns();
	int rc;

	if (u->flush_every_ns && now < u->next_flush_ns)
		return 0;
	rc = buckets_flush(u, t);
	/* a transaction that aborts after this only delays the next flush */
	if (!rc)
		u->next_flush_ns = now + u->flush_every_ns;
	return rc;
}

static int flush_txn(struct store_txn *t, void *arg)
{
	return buckets_flush(arg, t);
}

struct bucket_load {
	struct budget *b;
	size_t n;
};

/* Adds one bucket to the engine; false if it was not kept. */
static bool load_bucket(struct bucket_load *l, const struct bucket_acc *b)
{
	size_t n = strnlen((const char *)b->key, b->klen);

	return n + 4 == b->klen &&
	       budget_load_bucket(l->b, (const char *)b->key, (enum win_unit)b->key[n + 1], b->id,
				  b->add) == 0;
}

static int bucket_load_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct bucket_load *l = arg;
	struct bucket_acc b;
	size_t n = strnlen(k, klen);

	/* a key this build cannot read is skipped (and said), never fatal at start */
	if (n + 4 != klen || n >= BUDGET_SUBJECT_MAX || ((const uint8_t *)k)[n + 1] > WIN_DAY ||
	    bucket_decode(v, vlen, &b.id, b.add)) {
		log_warnx("usage: a limits bucket of %zu bytes does not decode; skipped", klen);
		return 0;
	}
	memcpy(b.key, k, klen);
	b.klen = klen;
	if (load_bucket(l, &b))
		l->n++;
	return 0;
}

/* A record after W: its shares added to the loaded buckets. */
static int replay_one(const struct usage_record *r, void *arg)
{
	struct bucket_acc b[BUCKETS_PER_RECORD];
	unsigned n = record_buckets(r, b);

	for (unsigned i = 0; i < n; i++)
		load_bucket(arg, &b[i]);
	return 0;
}

struct budget_load {
	struct bucket_load l;
	struct after_walk replay;
};

static int budget_load_txn(struct store_txn *t, void *arg)
{
	struct budget_load *bl = arg;
	uint64_t seq;
	int rc = store_iter(t, STORE_DB_BUDGET, NULL, 0, bucket_load_one, &bl->l);

	if (!rc)
		rc = budget_seq_get(t, &seq);
	if (!rc)
		rc = records_after(t, seq, &bl->replay);
	return rc;
}

int usage_budget_load(struct store *s, struct budget *b, size_t *loaded)
{
	struct budget_load bl = {.l = {b, 0}};
	int rc;

	bl.replay = (struct after_walk){.fn = replay_one, .arg = &bl.l};
	rc = store_read(s, budget_load_txn, &bl);
	if (!rc && bl.replay.n)
		log_info("usage: %zu records after the buckets' last flush added to them",
			 bl.replay.n);
	if (loaded)
		*loaded = bl.l.n;
	return rc;
}

/*
 * Decodes the batch into one contribution per record, then sorts and merges them: one
 * read-modify-write per roll-up touched, in key order. Returns how many remain.
 */
static size_t batch_aggregate(struct usage *u, const void *const *recs, const size_t *lens,
			      size_t n)
{
	size_t m = 0, out = 0;

	for (size_t i = 0; i < n; i++) {
		struct usage_record r;

		/*
		 * Only usage_append queues records, so this is a bug; still, refusing the batch
		 * would stall all metering behind it, so the record is kept but not rolled up.
		 */
		if (usage_record_decode(recs[i], lens[i], &r) || !record_rollable(&r)) {
			log_warnx("usage: a queued record does not decode; not in the roll-ups");
			continue;
		}
		rollup_from_record(&r, &u->acc[m++]);
	}
	if (m > 1)
		qsort(u->acc, m, sizeof(*u->acc), acc_cmp);
	for (size_t i = 0; i < m; i++) {
		if (out && acc_cmp(&u->acc[out - 1], &u->acc[i]) == 0) {
			totals_add(&u->acc[out - 1].add, &u->acc[i].add);
			continue;
		}
		if (out != i)
			u->acc[out] = u->acc[i];
		out++;
	}
	return out;
}

static int rollup_update(const void *old, size_t len, void *out, size_t cap, size_t *outlen,
			 void *arg)
{
	const struct rollup_acc *a = arg;
	struct usage_totals sum = {0};

	if (cap < TOTALS_LEN)
		return -EMSGSIZE;
	/* A corrupt total cannot be repaired from here; refusing it would stop metering. */
	if (old && totals_decode(old, len, &sum)) {
		log_warnx("usage: a roll-up value of %zu bytes does not decode; restarting it",
			  len);
		sum = (struct usage_totals){0};
	}
	totals_add(&sum, &a->add);
	totals_encode(&sum, out);
	*outlen = TOTALS_LEN;
	return 0;
}

/* Adds a to its stored roll-up. */
static int rollup_apply(struct store_txn *t, const struct rollup_acc *a)
{
	return store_update(t, STORE_DB_ROLLUPS, a->key, a->klen, rollup_update, (void *)a);
}

/* True while tests ask for failures; counts one down without going below zero. */
static bool debug_fail_now(void)
{
	unsigned n = atomic_load(&usage_debug_fail_batches);

	while (n && !atomic_compare_exchange_weak(&usage_debug_fail_batches, &n, n - 1))
		;
	return n != 0;
}

/* The writer's batch hook: runs in the transaction that puts the batch's records. */
static int usage_on_batch(struct store_txn *t, const void *const *recs, const size_t *lens,
			  size_t n, void *arg)
{
	struct usage *u = arg;
	size_t m;
	int rc = acc_reserve(u, n);

	if (rc)
		return rc;
	m = batch_aggregate(u, recs, lens, n);
	for (size_t i = 0; i < m; i++) {
		rc = rollup_apply(t, &u->acc[i]);
		if (rc)
			return rc;
	}
	rc = buckets_flush_due(u, t);
	if (rc)
		return rc;
	return debug_fail_now() ? -EIO : 0;
}

struct usage *usage_open(struct store *s, const struct store_writer_opts *o,
			 unsigned bucket_flush_ms)
{
	struct store_writer_opts wo = {0};
	struct usage *u;
	int e;

	if (!s) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	if (o)
		wo = *o;
	wo.on_batch = usage_on_batch;
	wo.on_batch_arg = u;
	u->s = s;
	u->flush_every_ns = (int64_t)bucket_flush_ms * 1000000;
	u->w = store_writer_start(s, &wo);
	if (!u->w) {
		e = errno;
		free(u);
		errno = e;
		return NULL;
	}
	return u;
}

void usage_close(struct usage *u)
{
	if (!u)
		return;
	store_writer_stop(u->w);
	/* so that the next start has nothing to add up (it would be right either way) */
	if (store_write(u->s, flush_txn, u))
		log_warnx("usage: the limits buckets were not flushed at stop; the next start "
			  "adds up the records since the last flush");
	free(u->bidx);
	free(u->bacc);
	free(u->acc);
	free(u);
}

enum usage_commit { USAGE_QUEUE, USAGE_COMMIT, USAGE_DEFER };

/* Encodes r and hands it to the writer: queued, committed at once, or at the next flush. */
static int append(struct usage *u, const struct usage_record *r, uint64_t *seq,
		  enum usage_commit how)
{
	uint8_t buf[USAGE_RECORD_MAX];
	int n;

	if (!u || !r || !record_rollable(r))
		return -EINVAL;
	n = usage_record_encode(r, buf, sizeof(buf));
	if (n < 0)
		return n;
	switch (how) {
	case USAGE_COMMIT:
		return store_writer_append_commit(u->w, buf, (size_t)n, seq);
	case USAGE_DEFER:
		return store_writer_append_deferred(u->w, buf, (size_t)n, seq);
	default:
		return store_writer_append(u->w, buf, (size_t)n, seq);
	}
}

int usage_append(struct usage *u, const struct usage_record *r, uint64_t *seq)
{
	return append(u, r, seq, USAGE_QUEUE);
}

int usage_append_commit(struct usage *u, const struct usage_record *r, uint64_t *seq)
{
	return append(u, r, seq, USAGE_COMMIT);
}

int usage_append_deferred(struct usage *u, const struct usage_record *r, uint64_t *seq)
{
	return append(u, r, seq, USAGE_DEFER);
}

void usage_flush(struct usage *u)
{
	if (u)
		store_writer_flush(u->w);
}

int usage_wait(struct usage *u, uint64_t seq, int timeout_ms)
{
	return u ? store_writer_wait(u->w, seq, timeout_ms) : -EINVAL;
}

uint64_t usage_committed(struct usage *u)
{
	return store_writer_committed(u->w);
}

void usage_on_commit(struct usage *u, void (*fn)(uint64_t committed, int err, void *arg),
		     void *arg)
{
	store_writer_on_commit(u->w, fn, arg);
}

/* A walk over one key's roll-ups from day first to day last, summing into out. */
struct totals_walk {
	const char *key_id;
	const char *service; /* NULL = all */
	size_t service_len;
	uint32_t first, last;
	struct usage_totals *out;
};

static int totals_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct totals_walk *w = arg;
	struct usage_totals t;

	if (klen < TG_ID_LEN + 4 || memcmp(k, w->key_id, TG_ID_LEN) != 0 ||
	    codec_be_get((const uint8_t *)k + TG_ID_LEN, 4) > w->last)
		return 1;
	if (w->service && (klen - TG_ID_LEN - 4 != w->service_len ||
			   memcmp((const uint8_t *)k + TG_ID_LEN + 4, w->service, w->service_len)))
		return 0;
	if (totals_decode(v, vlen, &t)) {
		log_warnx("usage: a roll-up of key %.*s does not decode", TG_ID_LEN, w->key_id);
		return -EIO;
	}
	totals_add(w->out, &t);
	return 0;
}

static int totals_txn(struct store_txn *t, void *arg)
{
	struct totals_walk *w = arg;
	uint8_t start[TG_ID_LEN + 4];

	memcpy(start, w->key_id, TG_ID_LEN);
	codec_be_put(start + TG_ID_LEN, w->first, 4);
	return store_iter(t, STORE_DB_ROLLUPS, start, sizeof(start), totals_one, w);
}

/* Sums the roll-ups of key_id for UTC days first..last (inclusive). */
static int totals_range(struct usage *u, const char *key_id, const char *service, int64_t first,
			int64_t last, struct usage_totals *out)
{
	struct totals_walk w = {
	    .key_id = key_id,
	    .service = service,
	    .service_len = service ? strlen(service) : 0,
	    .first = (uint32_t)(first < 0 ? 0 : first),
	    .last = (uint32_t)last,
	    .out = out,
	};
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_read(u->s, totals_txn, &w);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* Checks what both totals queries take; the UTC day number of now_unix in *today. */
static int totals_args(struct usage *u, const char *key_id, const char *service, int64_t now_unix,
		       const struct usage_totals *out, int64_t *today)
{
	if (!u || !key_id || !model_id_valid(key_id) || !out || now_unix < 0 ||
	    now_unix / SECS_PER_DAY > UINT32_MAX)
		return -EINVAL;
	if (service && strlen(service) > TG_SERVICE_MAX)
		return -EINVAL;
	*today = now_unix / SECS_PER_DAY;
	return 0;
}

int usage_totals_days(struct usage *u, const char *key_id, const char *service, int days,
		      int64_t now_unix, struct usage_totals *out)
{
	int64_t today;
	int rc = totals_args(u, key_id, service, now_unix, out, &today);

	if (rc)
		return rc;
	if (days < 1 || days > USAGE_DAYS_MAX)
		return -EINVAL;
	return totals_range(u, key_id, service, today - days + 1, today, out);
}

int usage_totals_month(struct usage *u, const char *key_id, int64_t now_unix,
		       struct usage_totals *out)
{
	time_t now = (time_t)now_unix;
	int64_t today;
	struct tm tm;
	int rc = totals_args(u, key_id, NULL, now_unix, out, &today);

	if (rc)
		return rc;
	if (!gmtime_r(&now, &tm))
		return -EINVAL;
	return totals_range(u, key_id, NULL, today - (tm.tm_mday - 1), today, out);
}

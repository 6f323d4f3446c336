/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * usage: records encode and decode to exactly themselves and nothing corrupt decodes; every
 * committed record is in STORE_DB_USAGE and counted once in the per key, day and service
 * roll-ups, which answer day windows and calendar months (UTC) exactly; a batch whose roll-up
 * update fails leaves neither records nor roll-ups and is retried whole; after a kill -9 the
 * roll-ups equal the sum of the records that survived. Each case works in its own directory
 * under /tmp, removed when the case ends.
 */
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "codec.h"
#include "log.h"
#include "model.h"
#include "store.h"
#include "tg_test.h"
#include "usage.h"

/* Batches the roll-up hook is to fail with -EIO, kept by usage.c for this test only. */
extern atomic_uint usage_debug_fail_batches;

#define MS_PER_DAY 86400000LL

static uint64_t codec_seq(const void *k)
{
	return codec_be_get(k, 8);
}

/* The case's directory and what it opened (closed by the harness if the case bails out). */
static char case_dir[64];
static struct store *case_store;
static struct usage *case_usage;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* The limits buckets' flush interval topen gives usage_open; each case starts at the default. */
static unsigned case_flush_ms;

static void in_tmpdir(void (*body)(const char *dir))
{
	case_flush_ms = 1000;
	strcpy(case_dir, "/tmp/tg_usage_XXXXXX");
	if (!mkdtemp(case_dir)) {
		printf("#   mkdtemp: %s\n", strerror(errno));
		tg_failed++;
		return;
	}
	body(case_dir);
	usage_close(case_usage);
	case_usage = NULL;
	store_close(case_store);
	case_store = NULL;
	nftw(case_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#define TMP_CASE(name)                                                                             \
	static void name##_body(const char *dir);                                                  \
	static void name(void)                                                                     \
	{                                                                                          \
		in_tmpdir(name##_body);                                                            \
	}                                                                                          \
	static void name##_body(const char *dir)

/* Opens the case's store (and usage on it, with opts wo); false on failure. */
static bool topen(const char *dir, const struct store_writer_opts *wo)
{
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_NONE};

	case_store = store_open(&o);
	if (!case_store)
		return false;
	case_usage = usage_open(case_store, wo, case_flush_ms);
	return case_usage != NULL;
}

static void tclose(void)
{
	usage_close(case_usage);
	case_usage = NULL;
	store_close(case_store);
	case_store = NULL;
}

/* Unix ms of a UTC calendar time. */
static int64_t utc_ms(int y, int mon, int d, int h, int min, int s, int ms)
{
	struct tm tm = {.tm_year = y - 1900,
			.tm_mon = mon - 1,
			.tm_mday = d,
			.tm_hour = h,
			.tm_min = min,
			.tm_sec = s};

	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void set_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}
#define SET(field, src) set_str((field), sizeof(field), (src))

/* A plausible record of key_id at time_ms; the rest follows from n. */
static void mk_record(struct usage_record *r, const char *key_id, const char *service,
		      int64_t time_ms, uint64_t n)
{
	memset(r, 0, sizeof(*r));
	r->time_ms = time_ms;
	snprintf(r->request_id, sizeof(r->request_id), "req-%016" PRIx64, n);
	SET(r->key_id, key_id);
	SET(r->owner, "team:ml");
	SET(r->service, service);
	SET(r->provider, "mock");
	SET(r->model, "gpt-4o-mini");
	SET(r->endpoint, n % 2 ? "chat" : "embeddings");
	r->status = 200;
	r->stream = (uint32_t)(n % 2);
	r->prompt_tokens = n % 1000 + 1;
	r->completion_tokens = n * 7 % 800;
	r->cost_nano = n * 13 % 100000;
	r->latency_us = 1000 + n % 5000;
	r->bytes_in = 100 + n % 300;
	r->bytes_out = 200 + n % 900;
}

static void check_same_record(const struct usage_record *a, const struct usage_record *b)
{
	TG_CHECK_INT(a->time_ms, b->time_ms);
	TG_CHECK_STR(a->request_id, b->request_id);
	TG_CHECK_STR(a->key_id, b->key_id);
	TG_CHECK_STR(a->owner, b->owner);
	TG_CHECK_STR(a->service, b->service);
	TG_CHECK_STR(a->provider, b->provider);
	TG_CHECK_STR(a->model, b->model);
	TG_CHECK_STR(a->endpoint, b->endpoint);
	TG_CHECK_STR(a->tenant, b->tenant);
	TG_CHECK(a->status == b->status && a->stream == b->stream);
	TG_CHECK(a->prompt_tokens == b->prompt_tokens &&
		 a->completion_tokens == b->completion_tokens);
	TG_CHECK(a->cost_nano == b->cost_nano && a->latency_us == b->latency_us);
	TG_CHECK(a->bytes_in == b->bytes_in && a->bytes_out == b->bytes_out);
	TG_CHECK_INT(a->attempts, b->attempts);
}

static void fill_str(char *dst, size_t size, char c)
{
	memset(dst, c, size - 1);
	dst[size - 1] = '\0';
}
#define FILL(field, c) fill_str((field), sizeof(field), (c))

/* Records that must survive encode/decode unchanged. */
static void codec_sample(int which, struct usage_record *r)
{
	mk_record(r, "k1x2y3z4w5v6", "default", 1709294400123, 42);
	if (which == 1) { /* every string at its longest, every number at its largest */
		FILL(r->request_id, 'r');
		FILL(r->owner, 'o');
		FILL(r->service, 's');
		FILL(r->provider, 'p');
		FILL(r->model, 'm');
		FILL(r->endpoint, 'e');
		FILL(r->tenant, 't');
		r->time_ms = INT64_MAX;
		r->status = r->stream = UINT32_MAX;
		r->prompt_tokens = r->completion_tokens = r->cost_nano = UINT64_MAX;
		r->latency_us = r->bytes_in = r->bytes_out = UINT64_MAX;
		r->attempts = UINT32_MAX;
	} else if (which == 2) { /* every string empty, every number zero */
		memset(r, 0, sizeof(*r));
	} else if (which == 3) { /* UTF-8 and punctuation pass through as bytes */
		SET(r->model, "m\xc3\xa9t\xc3\xa9o/llama-3.1:8b");
		r->time_ms = -1;
	}
}

static void codec_round_trip(void)
{
	for (int which = 0; which < 4; which++) {
		uint8_t buf[USAGE_RECORD_MAX], again[USAGE_RECORD_MAX];
		struct usage_record r, d;
		int n, m;

		codec_sample(which, &r);
		n = usage_record_encode(&r, buf, sizeof(buf));
		TG_REQUIRE(n > 4);
		TG_CHECK(buf[0] == 2 && buf[1] == 0); /* u16 format version 2, little-endian */
		memset(&d, 0xa5, sizeof(d));
		TG_CHECK_INT(usage_record_decode(buf, (size_t)n, &d), 0);
		check_same_record(&d, &r);
		m = usage_record_encode(&d, again, sizeof(again));
		TG_CHECK(m == n && memcmp(buf, again, (size_t)n) == 0);
		/* A buffer one byte short of any size refuses the whole record. */
		for (int cap = 0; cap < n; cap++)
			TG_CHECK_INT(usage_record_encode(&r, buf, (size_t)cap), -EMSGSIZE);
	}
}

static void codec_refuses_unencodable(void)
{
	uint8_t buf[USAGE_RECORD_MAX];
	struct usage_record r;

	codec_sample(0, &r);
	memset(r.request_id, 'x', sizeof(r.request_id)); /* no NUL within the field */
	TG_CHECK_INT(usage_record_encode(&r, buf, sizeof(buf)), -EINVAL);
	codec_sample(0, &r);
	memset(r.key_id, 'x', sizeof(r.key_id));
	TG_CHECK_INT(usage_record_encode(&r, buf, sizeof(buf)), -EINVAL);
}

/* Offsets in the encoding of codec_sample(0): header 4, time_ms 8, then request_id. */
#define OFF_REQ_LEN 12
#define OFF_REQ_STR 13
/* What version 2 appended to a record without a tenant: an empty tenant and the attempts. */
#define V2_TAIL (1 + 4)

static const struct {
	const char *what;
	size_t off;    /* byte to change */
	uint8_t value; /* its new value */
} corrupt_table[] = {
    {"format version 3", 0, 3},
    {"format version 0", 0, 0},
    {"format version 1 (no tenant or attempts: bytes over)", 0, 1},
    {"format version 256", 1, 1},
    {"another kind of record", 2, 1},
    {"request_id longer than its field", OFF_REQ_LEN, 48},
    {"request_id longer than the record", OFF_REQ_LEN, 255},
    {"request_id shorter, leaving bytes over", OFF_REQ_LEN, 5},
    {"a NUL inside request_id", OFF_REQ_STR + 2, 0},
};

static void codec_rejects_corruption(void)
{
	uint8_t buf[USAGE_RECORD_MAX + 1], bad[USAGE_RECORD_MAX + 1], key[MODEL_KEY_MAX];
	struct usage_record r, d;
	struct key_record k = {.id = "k1x2y3z4w5v6", .tier = "basic"};
	int n, kn;

	codec_sample(0, &r);
	n = usage_record_encode(&r, buf, sizeof(buf));
	TG_REQUIRE(n > OFF_REQ_STR + 4);
	for (int len = 0; len < n; len++) {
		if (usage_record_decode(buf, (size_t)len, &d) != -EINVAL) {
			printf("#   truncated to %d of %d bytes: decoded\n", len, n);
			tg_failed++;
		}
	}
	buf[n] = 0;
	TG_CHECK_INT(usage_record_decode(buf, (size_t)n + 1, &d), -EINVAL);
	for (size_t i = 0; i < TG_NCASES(corrupt_table); i++) {
		memcpy(bad, buf, (size_t)n);
		bad[corrupt_table[i].off] = corrupt_table[i].value;
		if (usage_record_decode(bad, (size_t)n, &d) != -EINVAL) {
			printf("#   %s: decoded\n", corrupt_table[i].what);
			tg_failed++;
		}
	}
	/* format 1 is format 2 without the tenant (here empty: one length byte) and attempts */
	TG_REQUIRE(r.tenant[0] == '\0');
	memcpy(bad, buf, (size_t)n);
	bad[0] = 1;
	TG_CHECK_INT(usage_record_decode(bad, (size_t)n - V2_TAIL, &d), 0);
	TG_CHECK_STR(d.tenant, "");
	TG_CHECK_INT(d.attempts, 1);
	TG_CHECK_INT(d.prompt_tokens, r.prompt_tokens);
	/* A record of another module with the same framing is not a usage record. */
	limits_clear(&k.overrides);
	kn = key_record_encode(&k, key, sizeof(key));
	TG_REQUIRE(kn > 0);
	TG_CHECK_INT(usage_record_decode(key, (size_t)kn, &d), -EINVAL);
}

/* The roll-up value, read as usage.h specifies it: a version word, then 6 u64 LE. */
static int spec_totals(const void *v, size_t len, struct usage_totals *t)
{
	const uint8_t *p = v;
	uint64_t f[6] = {0};

	if (len != 4 + 48 || (p[0] | p[1] << 8) != 1)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		for (int b = 7; b >= 0; b--)
			f[i] = f[i] << 8 | p[4 + 8 * i + b];
	}
	*t = (struct usage_totals){f[0], f[1], f[2], f[3], f[4], f[5]};
	return 0;
}

static void totals_add_record(struct usage_totals *t, const struct usage_record *r)
{
	t->requests++;
	t->errors += r->status >= 400;
	t->prompt_tokens += r->prompt_tokens;
	t->completion_tokens += r->completion_tokens;
	t->cost_nano += r->cost_nano;
	t->latency_us_sum += r->latency_us;
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

static bool totals_eq(const struct usage_totals *a, const struct usage_totals *b)
{
	return a->requests == b->requests && a->errors == b->errors &&
	       a->prompt_tokens == b->prompt_tokens &&
	       a->completion_tokens == b->completion_tokens && a->cost_nano == b->cost_nano &&
	       a->latency_us_sum == b->latency_us_sum;
}

static void print_totals(const char *what, const struct usage_totals *t)
{
	printf("#   %s: requests %" PRIu64 " errors %" PRIu64 " prompt %" PRIu64
	       " completion %" PRIu64 " cost %" PRIu64 " latency %" PRIu64 "\n",
	       what, t->requests, t->errors, t->prompt_tokens, t->completion_tokens, t->cost_nano,
	       t->latency_us_sum);
}

#define CHECK_TOTALS(got, want)                                                                    \
	do {                                                                                       \
		if (!totals_eq((got), (want))) {                                                   \
			tg_failed++;                                                               \
			printf("#   %s:%d: totals differ\n", __FILE__, __LINE__);                  \
			print_totals("got ", (got));                                               \
			print_totals("want", (want));                                              \
		}                                                                                  \
	} while (0)

/*
 * The bulk workload: 3 keys (two of them neighbours in key order), 2 services, 5 UTC days
 * from 2024-02-27 (over the end of a leap February); record i's fields follow from i.
 */
#define NKEYS 3
#define NSVCS 2
#define NDAYS 5
static const char *const bulk_keys[NKEYS] = {"aaaaaaaaaaaa", "aaaaaaaaaaab", "bbbbbbbbbbbb"};
static const char *const bulk_svcs[NSVCS] = {"chat", "search"};

struct bulk_sums {
	struct usage_totals cell[NKEYS][NSVCS][NDAYS];
};

static int64_t bulk_day0_ms(void)
{
	return utc_ms(2024, 2, 27, 0, 0, 0, 0);
}

static void bulk_record(uint64_t i, struct usage_record *r)
{
	unsigned k = (unsigned)(i % NKEYS), sv = (unsigned)(i / NKEYS % NSVCS);
	int64_t day = (int64_t)(i / 7 % NDAYS);
	int64_t ms = bulk_day0_ms() + day * MS_PER_DAY + (int64_t)(i * 7919 % MS_PER_DAY);

	mk_record(r, bulk_keys[k], bulk_svcs[sv], ms, i);
	/* 399 and 400 sit on either side of what counts as an error. */
	r->status = i % 10 == 0	  ? 500
		    : i % 17 == 0 ? 429
		    : i % 23 == 0 ? 399
		    : i % 29 == 0 ? 400
				  : 200;
}

static void bulk_sum(struct bulk_sums *b, const struct usage_record *r)
{
	int64_t day = r->time_ms / MS_PER_DAY - bulk_day0_ms() / MS_PER_DAY;

	for (unsigned k = 0; k < NKEYS; k++) {
		for (unsigned sv = 0; sv < NSVCS; sv++) {
			if (strcmp(r->key_id, bulk_keys[k]) == 0 &&
			    strcmp(r->service, bulk_svcs[sv]) == 0 && day >= 0 && day < NDAYS)
				totals_add_record(&b->cell[k][sv][day], r);
		}
	}
}

/* Walks STORE_DB_ROLLUPS comparing every entry with the brute-force sums. */
struct rollup_check {
	const struct bulk_sums *want;
	bool seen[NKEYS][NSVCS][NDAYS];
	unsigned n, bad;
};

static int rollup_check_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct rollup_check *c = arg;
	const uint8_t *p = k;
	int64_t day0 = bulk_day0_ms() / MS_PER_DAY;
	struct usage_totals t;

	c->n++;
	for (unsigned ki = 0; ki < NKEYS; ki++) {
		for (unsigned sv = 0; sv < NSVCS; sv++) {
			size_t sl = strlen(bulk_svcs[sv]);
			int64_t day = klen > 16 ? (int64_t)((uint32_t)p[12] << 24 | p[13] << 16 |
							    p[14] << 8 | p[15]) -
						      day0
						: -1;

			if (klen != 16 + sl || memcmp(p, bulk_keys[ki], 12) != 0 ||
			    memcmp(p + 16, bulk_svcs[sv], sl) != 0 || day < 0 || day >= NDAYS)
				continue;
			if (spec_totals(v, vlen, &t) || c->seen[ki][sv][day] ||
			    !totals_eq(&t, &c->want->cell[ki][sv][day])) {
				printf("#   roll-up %s/%s/day %" PRId64 " is wrong\n",
				       bulk_keys[ki], bulk_svcs[sv], day);
				c->bad++;
			}
			c->seen[ki][sv][day] = true;
			return 0;
		}
	}
	printf("#   unexpected roll-up key of %zu bytes\n", klen);
	c->bad++;
	return 0;
}

static int rollup_check_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_ROLLUPS, NULL, 0, rollup_check_one, arg);
}

/* Every non-empty cell has its roll-up with exactly its sums, and there is nothing else. */
static void check_rollups(struct store *s, const struct bulk_sums *want)
{
	struct rollup_check c = {.want = want};
	unsigned cells = 0;

	TG_CHECK_INT(store_read(s, rollup_check_txn, &c), 0);
	TG_CHECK_INT(c.bad, 0);
	for (unsigned k = 0; k < NKEYS; k++) {
		for (unsigned sv = 0; sv < NSVCS; sv++) {
			for (unsigned d = 0; d < NDAYS; d++) {
				bool used = want->cell[k][sv][d].requests != 0;

				cells += used;
				TG_CHECK(c.seen[k][sv][d] == used);
			}
		}
	}
	TG_CHECK_INT(c.n, cells);
}

/* Sum of the cells of key k for days [from, to], one service (or all: -1). */
static void cells_sum(const struct bulk_sums *b, unsigned k, int sv, unsigned from, unsigned to,
		      struct usage_totals *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned s = 0; s < NSVCS; s++) {
		for (unsigned d = from; d <= to && (sv < 0 || (unsigned)sv == s); d++)
			totals_add(out, &b->cell[k][s][d]);
	}
}

/* usage_totals_days agrees with the brute-force sums for every key, window and service. */
static void check_windows(struct usage *u, const struct bulk_sums *b)
{
	int64_t now = (bulk_day0_ms() + (NDAYS - 1) * MS_PER_DAY) / 1000 + 43200;

	for (unsigned k = 0; k < NKEYS; k++) {
		for (int days = 1; days <= NDAYS + 1; days++) {
			for (int sv = -1; sv < NSVCS; sv++) {
				struct usage_totals got, want;
				unsigned from = days >= NDAYS ? 0 : (unsigned)(NDAYS - days);

				cells_sum(b, k, sv, from, NDAYS - 1, &want);
				TG_CHECK_INT(usage_totals_days(u, bulk_keys[k],
							       sv < 0 ? NULL : bulk_svcs[sv], days,
							       now, &got),
					     0);
				CHECK_TOTALS(&got, &want);
			}
		}
	}
}

#define BULK_N 10000

TMP_CASE(rollups_equal_brute_force_sums)
{
	struct store_writer_opts wo = {.max_batch = 97, .max_delay_us = 500};
	static struct bulk_sums b;
	struct usage_record r;
	struct usage_totals got, want;
	uint64_t seq = 0;

	memset(&b, 0, sizeof(b));
	TG_REQUIRE(topen(dir, &wo));
	for (uint64_t i = 1; i <= BULK_N; i++) {
		bulk_record(i, &r);
		bulk_sum(&b, &r);
		TG_REQUIRE(usage_append(case_usage, &r, &seq) == 0);
	}
	TG_CHECK_INT(seq, BULK_N);
	TG_REQUIRE(usage_wait(case_usage, seq, 60000) == 0);
	check_rollups(case_store, &b);
	check_windows(case_usage, &b);

	/* A restart counts nothing twice, and new records add to the same roll-ups. */
	tclose();
	TG_REQUIRE(topen(dir, NULL));
	check_rollups(case_store, &b);
	bulk_record(BULK_N + 1, &r);
	bulk_sum(&b, &r);
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	TG_CHECK_INT(seq, BULK_N + 1);
	TG_CHECK_INT(usage_wait(case_usage, seq, 60000), 0);
	check_rollups(case_store, &b);
	cells_sum(&b, 0, -1, 0, NDAYS - 1, &want);
	TG_CHECK_INT(usage_totals_days(case_usage, bulk_keys[0], NULL, 366,
				       bulk_day0_ms() / 1000 + 4 * 86400, &got),
		     0);
	CHECK_TOTALS(&got, &want);
}

/*
 * Records for the window cases. Record j has prompt_tokens 1 << j, so a total's
 * prompt_tokens says exactly which records it counted. "Now" is 2024-03-01T12:00:00Z.
 */
static const struct {
	const char *key_id, *service;
	int y, mon, d, h, min, s, ms;
	uint32_t status;
} window_records[] = {
    /* 0 */ {"aaaaaaaaaaaa", "chat", 2024, 3, 1, 0, 0, 0, 0, 200},	/* today's first ms */
    /* 1 */ {"aaaaaaaaaaaa", "chat", 2024, 3, 1, 23, 59, 59, 999, 500}, /* today's last ms */
    /* 2 */ {"aaaaaaaaaaaa", "chat", 2024, 2, 29, 23, 59, 59, 999, 200},
    /* 3 */ {"aaaaaaaaaaaa", "chat", 2024, 2, 29, 0, 0, 0, 0, 200},
    /* 4 */ {"aaaaaaaaaaaa", "chat", 2024, 2, 28, 12, 0, 0, 0, 429},
    /* 5 */ {"aaaaaaaaaaaa", "chat", 2023, 3, 2, 0, 0, 0, 0, 200},	/* 365 days ago */
    /* 6 */ {"aaaaaaaaaaaa", "chat", 2023, 3, 1, 23, 59, 59, 999, 200}, /* 366 days ago */
    /* 7 */ {"aaaaaaaaaaaa", "chat", 2024, 3, 2, 0, 0, 0, 0, 200},	/* tomorrow */
    /* 8 */ {"aaaaaaaaaaaa", "search", 2024, 3, 1, 9, 0, 0, 0, 404},
    /* 9 */ {"aaaaaaaaaaab", "chat", 2024, 3, 1, 9, 0, 0, 0, 200},   /* the next key */
    /* 10 */ {"aaaaaaaaaaa9", "chat", 2024, 3, 1, 9, 0, 0, 0, 200},  /* the previous key */
    /* 11 */ {"aaaaaaaaaaaa", "chat2", 2024, 3, 1, 9, 0, 0, 0, 200}, /* "chat" is a prefix */
};

static const struct {
	int days;
	const char *service;
	uint64_t mask; /* records counted */
	uint64_t errors;
} window_table[] = {
    {1, NULL, 0x903, 2},       /* today, every service */
    {1, "chat", 0x003, 1},     /* today, first and last ms */
    {1, "search", 0x100, 1},   /* the other service */
    {1, "chat2", 0x800, 0},    /* a service whose name extends another's */
    {1, "ch", 0, 0},	       /* a prefix of a service is not that service */
    {2, NULL, 0x90f, 2},       /* yesterday is Feb 29: over the month's end */
    {2, "chat", 0x00f, 1},     /* ... for one service */
    {3, "chat", 0x01f, 2},     /* Feb 28 too */
    {3, NULL, 0x91f, 3},       /* ... all services */
    {365, NULL, 0x91f, 3},     /* from 2023-03-03 */
    {366, NULL, 0x93f, 3},     /* from 2023-03-02, not 03-01 */
    {366, "search", 0x100, 1}, /* the widest window, one service */
};

static int popcount64(uint64_t v)
{
	int n = 0;

	for (; v; v &= v - 1)
		n++;
	return n;
}

static void append_window_records(void)
{
	uint64_t seq = 0;

	for (size_t j = 0; j < TG_NCASES(window_records); j++) {
		struct usage_record r;

		mk_record(&r, window_records[j].key_id, window_records[j].service,
			  utc_ms(window_records[j].y, window_records[j].mon, window_records[j].d,
				 window_records[j].h, window_records[j].min, window_records[j].s,
				 window_records[j].ms),
			  j);
		r.prompt_tokens = 1ull << j;
		r.status = window_records[j].status;
		TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	}
	TG_CHECK_INT(usage_wait(case_usage, seq, 60000), 0);
}

TMP_CASE(day_windows_and_service_filter)
{
	int64_t now = utc_ms(2024, 3, 1, 12, 0, 0, 0) / 1000;
	struct usage_totals t;

	TG_REQUIRE(topen(dir, NULL));
	append_window_records();
	for (size_t i = 0; i < TG_NCASES(window_table); i++) {
		memset(&t, 0xff, sizeof(t));
		TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaaa", window_table[i].service,
					       window_table[i].days, now, &t),
			     0);
		if (t.prompt_tokens != window_table[i].mask ||
		    t.requests != (uint64_t)popcount64(window_table[i].mask) ||
		    t.errors != window_table[i].errors) {
			printf("#   days %d service %s: counted 0x%" PRIx64 " (%" PRIu64
			       " requests, %" PRIu64 " errors), expected 0x%" PRIx64 "\n",
			       window_table[i].days,
			       window_table[i].service ? window_table[i].service : "(all)",
			       t.prompt_tokens, t.requests, t.errors, window_table[i].mask);
			tg_failed++;
		}
	}
	/* The neighbours' own windows, and a key with no usage at all. */
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaab", NULL, 1, now, &t), 0);
	TG_CHECK(t.prompt_tokens == 0x200 && t.requests == 1);
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaa9", NULL, 366, now, &t), 0);
	TG_CHECK(t.prompt_tokens == 0x400 && t.requests == 1);
	TG_CHECK_INT(usage_totals_days(case_usage, "zzzzzzzzzzzz", NULL, 366, now, &t), 0);
	TG_CHECK(t.requests == 0 && t.prompt_tokens == 0 && t.latency_us_sum == 0);
	/* Out of range: nothing is read. */
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaaa", NULL, 0, now, &t), -EINVAL);
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaaa", NULL, 367, now, &t), -EINVAL);
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaaa", NULL, -1, now, &t), -EINVAL);
	TG_CHECK_INT(usage_totals_days(case_usage, "short", NULL, 1, now, &t), -EINVAL);
	TG_CHECK_INT(usage_totals_days(case_usage, "aaaaaaaaaaaa", NULL, 1, -1, &t), -EINVAL);
}

/* Month records: prompt_tokens 1 << j again. */
static const struct {
	const char *key_id;
	int y, mon, d, h, min, s, ms;
} month_records[] = {
    /* 0 */ {"aaaaaaaaaaaa", 2024, 1, 31, 23, 59, 59, 999},
    /* 1 */ {"aaaaaaaaaaaa", 2024, 2, 1, 0, 0, 0, 0},
    /* 2 */ {"aaaaaaaaaaaa", 2024, 2, 15, 12, 0, 0, 0},
    /* 3 */ {"aaaaaaaaaaaa", 2024, 2, 29, 23, 59, 59, 999},
    /* 4 */ {"aaaaaaaaaaaa", 2024, 3, 1, 0, 0, 0, 0},
    /* 5 */ {"aaaaaaaaaaaa", 2024, 3, 10, 8, 0, 0, 0},
    /* 6 */ {"aaaaaaaaaaaa", 2024, 3, 31, 23, 59, 59, 999},
    /* 7 */ {"aaaaaaaaaaaa", 2024, 4, 1, 0, 0, 0, 0},
    /* 8 */ {"aaaaaaaaaaab", 2024, 2, 10, 0, 0, 0, 0},
    /* 9 */ {"aaaaaaaaaaaa", 2023, 2, 15, 0, 0, 0, 0},
};

static const struct {
	int y, mon, d, h, min, s; /* now */
	uint64_t mask;
} month_table[] = {
    {2024, 2, 29, 12, 0, 0, 0x00e},   /* leap day: Feb 1 .. Feb 29 */
    {2024, 2, 1, 0, 0, 0, 0x002},     /* a month's first second: that day only */
    {2024, 2, 14, 23, 59, 59, 0x002}, /* not yet the 15th's record */
    {2024, 2, 15, 0, 0, 0, 0x006},    /* the 15th's record, whatever its hour */
    {2024, 3, 1, 0, 0, 0, 0x010},     /* March starts empty of February */
    {2024, 3, 10, 23, 0, 0, 0x030},   /* March 1 .. 10 */
    {2024, 3, 31, 23, 59, 59, 0x070}, /* a month's last second */
    {2024, 1, 31, 10, 0, 0, 0x001},   /* January's last day */
    {2024, 4, 30, 0, 0, 0, 0x080},    /* April */
    {2023, 2, 28, 12, 0, 0, 0x200},   /* February of a year earlier */
};

TMP_CASE(month_totals_over_leap_february)
{
	struct usage_totals t;
	uint64_t seq = 0;

	TG_REQUIRE(topen(dir, NULL));
	for (size_t j = 0; j < TG_NCASES(month_records); j++) {
		struct usage_record r;

		mk_record(&r, month_records[j].key_id, "chat",
			  utc_ms(month_records[j].y, month_records[j].mon, month_records[j].d,
				 month_records[j].h, month_records[j].min, month_records[j].s,
				 month_records[j].ms),
			  j);
		r.prompt_tokens = 1ull << j;
		TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	}
	TG_REQUIRE(usage_wait(case_usage, seq, 60000) == 0);
	for (size_t i = 0; i < TG_NCASES(month_table); i++) {
		int64_t now = utc_ms(month_table[i].y, month_table[i].mon, month_table[i].d,
				     month_table[i].h, month_table[i].min, month_table[i].s, 0) /
			      1000;

		TG_CHECK_INT(usage_totals_month(case_usage, "aaaaaaaaaaaa", now, &t), 0);
		if (t.prompt_tokens != month_table[i].mask ||
		    t.requests != (uint64_t)popcount64(month_table[i].mask)) {
			printf("#   month of %04d-%02d-%02d: counted 0x%" PRIx64
			       ", expected 0x%" PRIx64 "\n",
			       month_table[i].y, month_table[i].mon, month_table[i].d,
			       t.prompt_tokens, month_table[i].mask);
			tg_failed++;
		}
	}
	TG_CHECK_INT(usage_totals_month(case_usage, "aaaaaaaaaaab",
					utc_ms(2024, 2, 29, 0, 0, 0, 0) / 1000, &t),
		     0);
	TG_CHECK(t.prompt_tokens == 0x100 && t.requests == 1);
	TG_CHECK_INT(usage_totals_month(case_usage, "bad", 0, &t), -EINVAL);
}

/* Reads usage record seq from STORE_DB_USAGE. */
struct seq_get {
	uint64_t seq;
	uint8_t v[4096];
	size_t len;
};

static int seq_get_txn(struct store_txn *t, void *arg)
{
	struct seq_get *g = arg;
	uint8_t key[8];

	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(g->seq >> (56 - 8 * i));
	return store_get(t, STORE_DB_USAGE, key, sizeof(key), g->v, sizeof(g->v), &g->len);
}

TMP_CASE(wait_then_record_is_readable)
{
	struct usage_record r, d;
	struct seq_get g = {0};
	uint64_t seq = 0, seq2 = 0;

	TG_REQUIRE(topen(dir, NULL));
	mk_record(&r, "k1x2y3z4w5v6", "default", utc_ms(2024, 5, 1, 10, 0, 0, 0), 7);
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	TG_CHECK_INT(seq, 1);
	TG_CHECK_INT(usage_wait(case_usage, seq, 60000), 0);
	g.seq = seq;
	TG_REQUIRE(store_read(case_store, seq_get_txn, &g) == 0);
	TG_CHECK_INT(usage_record_decode(g.v, g.len, &d), 0);
	check_same_record(&d, &r);
	TG_CHECK_INT(usage_append(case_usage, &r, &seq2), 0);
	TG_CHECK_INT(seq2, seq + 1);
	TG_CHECK_INT(usage_wait(case_usage, seq2, 60000), 0);

	/* What the roll-up key needs is checked before anything is queued. */
	SET(r.key_id, "NOT-AN-ID");
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), -EINVAL);
	mk_record(&r, "k1x2y3z4w5v6", "default", -1, 7);
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), -EINVAL);
	mk_record(&r, "k1x2y3z4w5v6", "default", 0, 7);
	memset(r.model, 'm', sizeof(r.model));
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), -EINVAL);
	g.seq = seq2 + 1;
	TG_CHECK_INT(store_read(case_store, seq_get_txn, &g), -ENOENT);
}

/*
 * The stored limits buckets against the records they say they include (usage.h): for every
 * subject (key:<id>, owner, tenant:<name>), ring and slot, among the records up to
 * STORE_META_BUDGET_SEQ, the newest bucket id that falls in the slot and the sums of the
 * records with that id; and nothing else stored. Read as the formats are specified: the key
 * is the subject, a 0 byte, the ring and the slot (BE u16); the value a version word, kind
 * 0x12, the id and 5 amounts (u64 LE).
 */
#define SPEC_SUBJECTS 8
#define SPEC_SLOTS    64

struct spec_bucket {
	int64_t id;
	uint64_t v[WIN_M__COUNT];
	bool set, seen;
};

struct bucket_spec {
	char subject[SPEC_SUBJECTS][BUDGET_SUBJECT_MAX];
	unsigned nsubj;
	struct spec_bucket b[SPEC_SUBJECTS][WIN_DAY + 1][SPEC_SLOTS];
	uint64_t mark, records;
	unsigned bad;
};

static int spec_subject(struct bucket_spec *c, const char *name)
{
	for (unsigned i = 0; i < c->nsubj; i++)
		if (strcmp(c->subject[i], name) == 0)
			return (int)i;
	if (c->nsubj == SPEC_SUBJECTS)
		return -1;
	snprintf(c->subject[c->nsubj], BUDGET_SUBJECT_MAX, "%s", name);
	return (int)c->nsubj++;
}

static void spec_add(struct bucket_spec *c, const char *subject, const struct usage_record *r)
{
	uint64_t a[WIN_M__COUNT];
	int si = spec_subject(c, subject);

	usage_record_amounts(r, a);
	for (int ring = WIN_MINUTE; ring <= WIN_DAY && si >= 0; ring++) {
		int64_t id = r->time_ms / 1000 / win_unit_secs((enum win_unit)ring);
		struct spec_bucket *b = &c->b[si][ring][id % budget_ring_size((enum win_unit)ring)];

		if (b->set && id < b->id)
			continue;
		if (!b->set || id > b->id)
			*b = (struct spec_bucket){.id = id, .set = true};
		for (int m = 0; m < WIN_M__COUNT; m++)
			b->v[m] += a[m];
	}
}

static int spec_record(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct bucket_spec *c = arg;
	struct usage_record r;
	char name[BUDGET_SUBJECT_MAX];

	if (klen != 8 || usage_record_decode(v, vlen, &r))
		return -EBADMSG;
	if (codec_seq(k) > c->mark)
		return 1;
	c->records++;
	snprintf(name, sizeof(name), "key:%s", r.key_id);
	spec_add(c, name, &r);
	if (r.owner[0])
		spec_add(c, r.owner, &r);
	snprintf(name, sizeof(name), "tenant:%s", r.tenant);
	if (r.tenant[0])
		spec_add(c, name, &r);
	return 0;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int b = 7; b >= 0; b--)
		v = v << 8 | p[b];
	return v;
}

static int spec_stored(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct bucket_spec *c = arg;
	const uint8_t *p = k, *q = v;
	size_t n = strnlen(k, klen);
	int si = n + 4 == klen ? spec_subject(c, k) : -1;
	unsigned ring = si >= 0 ? p[n + 1] : 99, slot = si >= 0 ? p[n + 2] << 8 | p[n + 3] : 0;
	struct spec_bucket *b = ring <= WIN_DAY && slot < SPEC_SLOTS ? &c->b[si][ring][slot] : NULL;
	bool ok = b && b->set && !b->seen && vlen == 4 + 8 + 8 * WIN_M__COUNT && q[0] == 1 &&
		  q[1] == 0 && q[2] == 0x12 && q[3] == 0 && (int64_t)le64(q + 4) == b->id;

	for (int m = 0; ok && m < WIN_M__COUNT; m++)
		ok = le64(q + 12 + 8 * m) == b->v[m];
	if (!ok) {
		printf("#   stored bucket %.*s ring %u slot %u is not what the records say\n",
		       (int)n, (const char *)k, ring, slot);
		c->bad++;
	}
	if (b)
		b->seen = true;
	return 0;
}

static int spec_txn(struct store_txn *t, void *arg)
{
	struct bucket_spec *c = arg;
	uint8_t m[8];
	size_t len = 0;
	int rc = store_get(t, STORE_DB_META, STORE_META_BUDGET_SEQ, strlen(STORE_META_BUDGET_SEQ),
			   m, sizeof(m), &len);

	if (rc || len != 8)
		return rc ? rc : -EBADMSG;
	c->mark = le64(m);
	rc = store_iter(t, STORE_DB_USAGE, NULL, 0, spec_record, c);
	return rc ? rc : store_iter(t, STORE_DB_BUDGET, NULL, 0, spec_stored, c);
}

/* Checks the store's buckets against its records; the mark, or UINT64_MAX on failure. */
static uint64_t check_buckets_at_mark(struct store *s)
{
	static struct bucket_spec c;
	unsigned missing = 0;

	memset(&c, 0, sizeof(c));
	TG_CHECK_INT(store_read(s, spec_txn, &c), 0);
	TG_CHECK_INT(c.bad, 0);
	for (unsigned i = 0; i < c.nsubj; i++)
		for (int ring = WIN_MINUTE; ring <= WIN_DAY; ring++)
			for (unsigned slot = 0; slot < SPEC_SLOTS; slot++)
				missing += c.b[i][ring][slot].set && !c.b[i][ring][slot].seen;
	TG_CHECK_INT(missing, 0);
	printf("#   buckets include %" PRIu64 " records (mark %" PRIu64 ")\n", c.records, c.mark);
	return c.bad || missing ? UINT64_MAX : c.mark;
}

/*
 * A bare writer whose hook counts the records it saw in STORE_DB_ROLLUPS, read-modify-write,
 * and fails its first call after writing: the count must end equal to the records, never
 * more, since the failed transaction's write is undone along with its records.
 */
struct hook_state {
	atomic_uint calls;
	atomic_uint failed;
};

static int counting_hook(struct store_txn *t, const void *const *recs, const size_t *lens, size_t n,
			 void *arg)
{
	struct hook_state *h = arg;
	uint64_t count = 0;
	size_t len = 0;
	int rc = store_get(t, STORE_DB_ROLLUPS, "count", 5, &count, sizeof(count), &len);

	if (rc && rc != -ENOENT)
		return rc;
	for (size_t i = 0; i < n; i++)
		count += recs[i] && lens[i] == 8;
	rc = store_put(t, STORE_DB_ROLLUPS, "count", 5, &count, sizeof(count), 0);
	if (rc)
		return rc;
	if (atomic_fetch_add(&h->calls, 1) == 0) {
		atomic_fetch_add(&h->failed, 1);
		return -EIO;
	}
	return 0;
}

static int count_get_txn(struct store_txn *t, void *arg)
{
	size_t len;

	return store_get(t, STORE_DB_ROLLUPS, "count", 5, arg, sizeof(uint64_t), &len);
}

static int count_db_txn(struct store_txn *t, void *arg)
{
	size_t *n = arg;
	int rc = store_count(t, STORE_DB_USAGE, &n[0]);

	return rc ? rc : store_count(t, STORE_DB_ROLLUPS, &n[1]);
}

TMP_CASE(writer_hook_failure_is_retried_whole)
{
	static struct hook_state h;
	struct store_writer_opts wo = {.on_batch = counting_hook, .on_batch_arg = &h};
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_NONE};
	struct store_writer *w;
	uint64_t seq = 0, count = 0;
	size_t n[2] = {0, 0};

	atomic_store(&h.calls, 0);
	atomic_store(&h.failed, 0);
	case_store = store_open(&o);
	TG_REQUIRE(case_store);
	w = store_writer_start(case_store, &wo);
	TG_REQUIRE(w);
	for (uint64_t i = 0; i < 50; i++)
		TG_CHECK_INT(store_writer_append(w, &i, sizeof(i), &seq), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 60000), 0);
	store_writer_stop(w);
	TG_CHECK_INT(atomic_load(&h.failed), 1);
	TG_CHECK(atomic_load(&h.calls) >= 2);
	TG_CHECK_INT(store_read(case_store, count_get_txn, &count), 0);
	TG_CHECK_INT(count, 50);
	TG_CHECK_INT(store_read(case_store, count_db_txn, n), 0);
	TG_CHECK_INT(n[0], 50);
}

TMP_CASE(failed_rollup_commits_nothing_then_retry_commits_both)
{
	int64_t now = utc_ms(2024, 6, 3, 12, 0, 0, 0) / 1000;
	struct usage_totals t, want = {0};
	uint64_t seq = 0;
	unsigned left;
	size_t n[2] = {1, 1};
	int rc = -ETIMEDOUT;

	case_flush_ms = 0; /* every attempt writes the buckets: the failed ones must undo it */
	TG_REQUIRE(topen(dir, NULL));
	atomic_store(&usage_debug_fail_batches, 1000000);
	for (uint64_t i = 0; i < 20; i++) {
		struct usage_record r;

		mk_record(&r, "k1x2y3z4w5v6", "default", now * 1000 - (int64_t)i * 1000, i);
		totals_add_record(&want, &r);
		TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	}
	/* The writer keeps failing: its error shows, and the store holds none of it. */
	for (int tries = 0; rc == -ETIMEDOUT && tries < 3000; tries++)
		rc = usage_wait(case_usage, seq, 20);
	TG_CHECK_INT(rc, -EIO);
	TG_CHECK_INT(store_read(case_store, count_db_txn, n), 0);
	TG_CHECK_INT(n[0], 0);
	TG_CHECK_INT(n[1], 0);
	TG_CHECK_INT(usage_totals_days(case_usage, "k1x2y3z4w5v6", NULL, 1, now, &t), 0);
	TG_CHECK_INT(t.requests, 0);

	/* Once the hook succeeds, the kept batch commits with its roll-ups, counted once. */
	left = atomic_exchange(&usage_debug_fail_batches, 0);
	TG_CHECK(left < 1000000);
	TG_CHECK_INT(usage_wait(case_usage, seq, 60000), 0);
	TG_CHECK_INT(store_read(case_store, count_db_txn, n), 0);
	TG_CHECK_INT(n[0], 20);
	TG_CHECK_INT(n[1], 1);
	TG_CHECK_INT(usage_totals_days(case_usage, "k1x2y3z4w5v6", NULL, 1, now, &t), 0);
	CHECK_TOTALS(&t, &want);
	/* the failed attempts' bucket writes were undone with them: counted once */
	TG_CHECK_INT(check_buckets_at_mark(case_store), seq);
}

/*
 * The crash child: appends bulk records as fast as it can and, every 64 records, reports
 * the newest sequence usage_wait says is committed.
 */
static void crash_child(const char *dir, int fd)
{
	/* the daemon's policy: usage batches commit without a sync, the syncer is far away */
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_META, .sync_interval_ms = 3600000};
	struct store *s = store_open(&o);
	/* the buckets flushed often, so that the kill lands between flushes with some behind */
	struct usage *u = s ? usage_open(s, NULL, 20) : NULL;
	uint64_t pending = 0;

	if (!u)
		_exit(2);
	for (uint64_t i = 1;; i++) {
		struct usage_record r;
		uint64_t seq;

		bulk_record(i, &r);
		if (usage_append(u, &r, &seq) || seq != i)
			_exit(3);
		if (i % 64)
			continue;
		if (pending && usage_wait(u, pending, 0) == 0) {
			if (write(fd, &pending, sizeof(pending)) != sizeof(pending))
				_exit(4);
			pending = 0;
		}
		if (!pending)
			pending = seq;
	}
}

/* Walks STORE_DB_USAGE: sequences 1.. without gaps, each the record the child made. */
struct crash_walk {
	struct bulk_sums *sums;
	uint64_t next;
	unsigned bad;
};

static int crash_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct crash_walk *c = arg;
	struct usage_record got, want;
	uint64_t seq = 0;

	for (size_t i = 0; i < klen && i < 8; i++)
		seq = seq << 8 | ((const uint8_t *)k)[i];
	bulk_record(c->next, &want);
	if (klen != 8 || seq != c->next || usage_record_decode(v, vlen, &got) ||
	    strcmp(got.request_id, want.request_id) != 0 || got.time_ms != want.time_ms ||
	    got.status != want.status || got.cost_nano != want.cost_nano) {
		c->bad++;
		return c->bad > 10 ? -EBADMSG : 0;
	}
	bulk_sum(c->sums, &got);
	c->next++;
	return 0;
}

static int crash_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_USAGE, NULL, 0, crash_one, arg);
}

TMP_CASE(kill_9_rollups_match_surviving_records)
{
	static struct bulk_sums sums;
	struct crash_walk c = {.sums = &sums, .next = 1};
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_NONE};
	uint64_t reported;
	int pfd[2], status = 0;
	pid_t pid;

	memset(&sums, 0, sizeof(sums));
	TG_REQUIRE(pipe(pfd) == 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		crash_child(dir, pfd[1]);
	}
	close(pfd[1]);
	if (pid < 0) {
		close(pfd[0]);
		TG_REQUIRE(pid > 0);
	}
	reported = tg_read_last_report(pfd[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(pfd[0]);
	TG_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	TG_CHECK(reported > 0);

	case_store = store_open(&o);
	TG_REQUIRE(case_store);
	TG_CHECK_INT(store_read(case_store, crash_txn, &c), 0);
	printf("#   child reported %" PRIu64 " committed; store holds %" PRIu64 "\n", reported,
	       c.next - 1);
	TG_CHECK_INT(c.bad, 0);
	TG_CHECK(c.next - 1 >= reported);
	check_rollups(case_store, &sums);
	/* the buckets: exactly the records up to their mark; a start adds the rest */
	reported = check_buckets_at_mark(case_store);
	TG_CHECK(reported > 0 && reported <= c.next - 1);
}

/*
 * A version 1 record (written before failover and tenants: no attempts or tenant field) still
 * decodes, as one attempt without a tenant; a version 1 header on a version 2 body does not.
 */
static void codec_reads_version_1(void)
{
	uint8_t buf[USAGE_RECORD_MAX];
	struct usage_record r, d;
	int n;

	codec_sample(0, &r);
	r.attempts = 3;
	r.tenant[0] = '\0';
	n = usage_record_encode(&r, buf, sizeof(buf));
	TG_REQUIRE(n > 8);
	buf[0] = 1;
	TG_CHECK_INT(usage_record_decode(buf, (size_t)n, &d), -EINVAL);
	TG_CHECK_INT(usage_record_decode(buf, (size_t)n - V2_TAIL, &d), 0);
	r.attempts = 1;
	check_same_record(&d, &r);
	buf[0] = 2;
	TG_CHECK_INT(usage_record_decode(buf, (size_t)n - V2_TAIL, &d), -EINVAL);
}

/* ---- the limits engine's buckets ---- */

#define B_T0 1795446000 /* 2026-11-23T15:00:00Z */

static void bucket_records(void)
{
	struct usage_record r;
	uint64_t seq = 0;

	for (int i = 0; i < 4; i++) {
		mk_record(&r, "k1x2y3z4w5v6", "chat", (int64_t)(B_T0 - 3600 * i) * 1000, 10 + i);
		SET(r.owner, "team:ml");
		SET(r.tenant, i % 2 ? "acme" : "");
		TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	}
	/* 70 days back: older than any window the engine keeps */
	mk_record(&r, "k1x2y3z4w5v6", "chat", (int64_t)(B_T0 - 70 * 86400) * 1000, 1000);
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	TG_CHECK_INT(usage_wait(case_usage, seq, 5000), 0);
}

/* Tokens of the four calls of bucket_records today, for every subject and for tenant acme. */
static void bucket_records_tokens(uint64_t *per, uint64_t *tenant)
{
	struct usage_record r;

	*per = *tenant = 0;
	for (int i = 0; i < 4; i++) {
		mk_record(&r, "k1x2y3z4w5v6", "chat", 0, 10 + i);
		*per += r.prompt_tokens + r.completion_tokens;
		*tenant += i % 2 ? r.prompt_tokens + r.completion_tokens : 0;
	}
}

/* tokens_per_day used by subject at B_T0, after loading the store's buckets into an engine. */
static uint64_t loaded_day_tokens(const char *subject)
{
	struct budget_opts o = {true, LIMIT_MODE_HARD, LIMIT_ACT_BLOCK, 800, 0, 1024, 10000};
	struct budget *b = budget_new(&o);
	struct budget_hit h[BUDGET_STATUS_MAX];
	struct limits l;
	uint64_t used = UINT64_MAX;
	size_t n = 0;

	memset(&l, 0, sizeof(l));
	l.v[LIMIT_TPD] = 1000000;
	if (b && usage_budget_load(case_store, b, &n) == 0) {
		if (strncmp(subject, "key:", 4) != 0)
			budget_set_limits(b, subject, &l);
		if (budget_status(b, subject, &l, B_T0, h, BUDGET_STATUS_MAX) == 1)
			used = h[0].used;
	}
	budget_free(b);
	return used;
}

TMP_CASE(budget_buckets_persist_and_load)
{
	uint64_t per, tenant;

	TG_REQUIRE(topen(dir, NULL));
	bucket_records();
	tclose();
	TG_REQUIRE(topen(dir, NULL));
	bucket_records_tokens(&per, &tenant);
	/* four calls today (15:00 back to 12:00), each counted once; the old one not */
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), per);
	TG_CHECK_INT(loaded_day_tokens("team:ml"), per);
	TG_CHECK_INT(loaded_day_tokens("tenant:acme"), tenant);
	tclose();
}

TMP_CASE(buckets_lag_then_start_adds_the_rest_once)
{
	uint64_t per, tenant, first, seq = 0;
	struct usage_record r;

	bucket_records_tokens(&per, &tenant);
	case_flush_ms = 60000;
	TG_REQUIRE(topen(dir, NULL));
	mk_record(&r, "k1x2y3z4w5v6", "chat", (int64_t)B_T0 * 1000, 99);
	first = r.prompt_tokens + r.completion_tokens;
	TG_CHECK_INT(usage_append(case_usage, &r, &seq), 0);
	TG_CHECK_INT(usage_wait(case_usage, seq, 5000), 0);
	bucket_records();
	/* the first batch wrote the buckets; the next ones, within the interval, did not */
	TG_CHECK_INT(check_buckets_at_mark(case_store), 1);
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), first + per);
	TG_CHECK_INT(loaded_day_tokens("team:ml"), first + per);
	TG_CHECK_INT(loaded_day_tokens("tenant:acme"), tenant);
	tclose();
	/* a stop writes them; loading then adds nothing twice */
	TG_REQUIRE(topen(dir, NULL));
	TG_CHECK_INT(check_buckets_at_mark(case_store), 6);
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), first + per);
	TG_CHECK_INT(loaded_day_tokens("tenant:acme"), tenant);
	tclose();
}

static int mark_del_txn(struct store_txn *t, void *arg)
{
	(void)arg;
	return store_del(t, STORE_DB_META, STORE_META_BUDGET_SEQ, strlen(STORE_META_BUDGET_SEQ));
}

static int mark_txn(struct store_txn *t, void *arg)
{
	(void)arg;
	return usage_budget_mark(t);
}

TMP_CASE(migration_6_marks_every_record_as_in_the_buckets)
{
	uint64_t per, tenant;

	bucket_records_tokens(&per, &tenant);
	case_flush_ms = 0; /* the buckets of a store from before: every record in them */
	TG_REQUIRE(topen(dir, NULL));
	bucket_records();
	TG_REQUIRE(store_write(case_store, mark_del_txn, NULL) == 0);
	/* without the mark every record would count twice: in the buckets and after the mark */
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), 2 * per);
	TG_CHECK_INT(store_write(case_store, mark_txn, NULL), 0);
	TG_CHECK_INT(check_buckets_at_mark(case_store), 5);
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), per);
	TG_CHECK_INT(loaded_day_tokens("tenant:acme"), tenant);
	tclose();
}

static int wipe_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct store_txn *t = arg;

	(void)v, (void)vlen;
	return store_del(t, STORE_DB_BUDGET, k, klen);
}

/* A store from before migration 4: roll-ups and a key, no buckets. */
static int old_store_txn(struct store_txn *t, void *arg)
{
	struct key_record k = {.id = "k1x2y3z4w5v6", .owner = "team:ml", .tier = "basic"};
	uint8_t buf[MODEL_KEY_MAX];
	int n, rc;

	(void)arg;
	limits_clear(&k.overrides);
	rc = store_iter(t, STORE_DB_BUDGET, NULL, 0, wipe_one, t);
	n = key_record_encode(&k, buf, sizeof(buf));
	if (!rc && n > 0)
		rc = store_put(t, STORE_DB_KEYS, k.id, TG_ID_LEN, buf, (size_t)n, 0);
	return rc ? rc : n < 0 ? n : 0;
}

static int seed_txn(struct store_txn *t, void *arg)
{
	(void)arg;
	return usage_budget_seed(t);
}

TMP_CASE(migration_4_seeds_day_buckets_from_rollups)
{
	uint64_t per = 0;
	struct usage_record r;

	TG_REQUIRE(topen(dir, NULL));
	bucket_records();
	TG_REQUIRE(store_write(case_store, old_store_txn, NULL) == 0);
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), 0);
	TG_CHECK_INT(store_write(case_store, seed_txn, NULL), 0);
	for (int i = 0; i < 4; i++) {
		mk_record(&r, "k1x2y3z4w5v6", "chat", 0, 10 + i);
		per += r.prompt_tokens + r.completion_tokens;
	}
	TG_CHECK_INT(loaded_day_tokens("key:k1x2y3z4w5v6"), per);
	TG_CHECK_INT(loaded_day_tokens("team:ml"), per); /* the owner, from the key record */
	tclose();
}

static const struct tg_case cases[] = {
    {"records encode and decode to themselves; short buffers refused", codec_round_trip},
    {"strings without a NUL in their field are not encoded", codec_refuses_unencodable},
    {"truncated, extended, mislabelled or corrupt records do not decode", codec_rejects_corruption},
    {"a version 1 record (before attempts) decodes as one attempt", codec_reads_version_1},
    {"10k records, 3 keys x 2 services x 5 days: roll-ups equal brute-force sums",
     rollups_equal_brute_force_sums},
    {"day windows: today, 2, 3, 365, 366 days; service filter; neighbours apart",
     day_windows_and_service_filter},
    {"month totals: calendar months around a leap February (UTC)", month_totals_over_leap_february},
    {"usage_wait then the record is in STORE_DB_USAGE; bad records refused",
     wait_then_record_is_readable},
    {"writer: a failing batch hook undoes the batch; the retry counts it once",
     writer_hook_failure_is_retried_whole},
    {"a failing roll-up update commits no records; the retry commits both",
     failed_rollup_commits_nothing_then_retry_commits_both},
    {"kill -9: reported commits survive and roll-ups equal the surviving records",
     kill_9_rollups_match_surviving_records},
    {"limits buckets of key, owner, tenant commit with the records and load back once",
     budget_buckets_persist_and_load},
    {"migration 4 seeds the key's and owner's day buckets from the roll-ups",
     migration_4_seeds_day_buckets_from_rollups},
    {"buckets written once per interval lag the records; a start adds the rest once",
     buckets_lag_then_start_adds_the_rest_once},
    {"migration 6 marks every record so far as in the buckets (none counted twice)",
     migration_6_marks_every_record_as_in_the_buckets},
};

int main(void)
{
	log_init("test_usage", LOG_LVL_ERROR);
	return tg_run("usage", cases, TG_NCASES(cases));
}

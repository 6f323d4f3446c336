/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * store: a new store is migrated to the latest schema (default tiers, a hash secret); every
 * older schema migrates to the same content; a newer one is refused untouched. Transactions
 * are all or nothing, the map grows on demand up to its cap, and the group-commit writer
 * commits every record in order, in batches, and keeps what it reported committed across a
 * kill -9. Each case works in its own directory under /tmp, removed when the case ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrations.h"
#include "model.h"
#include "store.h"
#include "util.h"
#include "tg_test.h"

/* Batches committed by the group-commit writer, kept by store.c for this test only. */
extern atomic_ulong store_writer_debug_batches;
extern atomic_ulong store_sync_debug_rounds;

/* The case's directory, and the stores it opened (closed by the harness if it bails out). */
static char case_dir[64];
static struct store *case_stores[4];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void in_tmpdir(void (*body)(const char *dir))
{
	strcpy(case_dir, "/tmp/tg_store_XXXXXX");
	if (!mkdtemp(case_dir)) {
		printf("#   mkdtemp: %s\n", strerror(errno));
		tg_failed++;
		return;
	}
	body(case_dir);
	for (size_t i = 0; i < TG_NCASES(case_stores); i++) {
		store_close(case_stores[i]);
		case_stores[i] = NULL;
	}
	nftw(case_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#define TMP_CASE(name)                                                                             \
	static void name##_body(const char *dir);                                                  \
	static void name(void)                                                                     \
	{                                                                                          \
		in_tmpdir(name##_body);                                                            \
	}                                                                                          \
	static void name##_body(const char *dir)

/* Opens a store and remembers it for the harness; NULL with errno set on failure. */
static struct store *topen(const struct store_opts *o)
{
	struct store *s = store_open(o);
	int e = errno;

	for (size_t i = 0; s && i < TG_NCASES(case_stores); i++) {
		if (!case_stores[i]) {
			case_stores[i] = s;
			break;
		}
	}
	errno = e;
	return s;
}

static void tclose(struct store *s)
{
	for (size_t i = 0; i < TG_NCASES(case_stores); i++) {
		if (case_stores[i] == s)
			case_stores[i] = NULL;
	}
	store_close(s);
}

static struct store *topen_path(const char *path, unsigned target)
{
	struct store_opts o = {.path = path, .sync = STORE_SYNC_NONE, .target_version = target};

	return topen(&o);
}

/* A growable byte buffer collecting every record of one database, for comparisons. */
struct dump {
	unsigned char *p;
	size_t len, n;
};

static int dump_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct dump *d = arg;
	unsigned char *p = realloc(d->p, d->len + 16 + klen + vlen);

	if (!p)
		return -ENOMEM;
	d->p = p;
	memcpy(p + d->len, &klen, 8);
	memcpy(p + d->len + 8, k, klen);
	memcpy(p + d->len + 8 + klen, &vlen, 8);
	memcpy(p + d->len + 16 + klen, v, vlen);
	d->len += 16 + klen + vlen;
	d->n++;
	return 0;
}

struct dump_req {
	enum store_db db;
	struct dump *d;
};

static int dump_txn(struct store_txn *t, void *arg)
{
	struct dump_req *r = arg;

	return store_iter(t, r->db, NULL, 0, dump_one, r->d);
}

static int dump_db(struct store *s, enum store_db db, struct dump *d)
{
	struct dump_req r = {db, d};

	memset(d, 0, sizeof(*d));
	return store_read(s, dump_txn, &r);
}

/* Reads one value (up to 4 KiB) in its own read transaction. */
struct get_req {
	enum store_db db;
	const char *key;
	size_t klen;
	unsigned char v[4096];
	size_t len;
};

static int get_txn(struct store_txn *t, void *arg)
{
	struct get_req *g = arg;

	return store_get(t, g->db, g->key, g->klen, g->v, sizeof(g->v), &g->len);
}

static int tget(struct store *s, enum store_db db, const char *key, struct get_req *g)
{
	g->db = db;
	g->key = key;
	g->klen = strlen(key);
	g->len = 0;
	return store_read(s, get_txn, g);
}

static void migration_table_is_gapless(void)
{
	TG_REQUIRE(tg_migrations_count > 0);
	for (unsigned i = 0; i < tg_migrations_count; i++) {
		TG_CHECK_INT(tg_migrations[i].version, i + 1);
		TG_CHECK(tg_migrations[i].name && tg_migrations[i].name[0]);
		TG_CHECK(tg_migrations[i].apply != NULL);
	}
	TG_CHECK_INT(store_latest_version(), tg_migrations_count);
}

TMP_CASE(fresh_store_is_seeded)
{
	struct store *s = topen_path(dir, 0);
	static const uint8_t zero[16];
	uint8_t secret[16];
	struct get_req g;
	struct dump d;
	int64_t created = 0;

	TG_REQUIRE(s);
	TG_CHECK_INT(store_schema_version(s), store_latest_version());
	TG_REQUIRE(store_hash_secret(s));
	memcpy(secret, store_hash_secret(s), 16);
	TG_CHECK(memcmp(secret, zero, 16) != 0);
	TG_CHECK_INT(tget(s, STORE_DB_META, STORE_META_SECRET, &g), 0);
	TG_CHECK(g.len == 16 && memcmp(g.v, secret, 16) == 0);
	TG_CHECK_INT(tget(s, STORE_DB_META, STORE_META_CREATED, &g), 0);
	TG_CHECK_INT(g.len, 8);
	for (int i = 7; i >= 0; i--)
		created = created << 8 | g.v[i];
	TG_CHECK(created > 1700000000 && created <= tg_now_unix());

	TG_REQUIRE(dump_db(s, STORE_DB_TIERS, &d) == 0);
	TG_CHECK_INT(d.n, 3);
	free(d.p);
	for (size_t i = 0; i < 3; i++) {
		struct tier t;

		TG_CHECK_INT(tget(s, STORE_DB_TIERS, model_default_tiers[i].name, &g), 0);
		TG_CHECK_INT(tier_decode(g.v, g.len, &t), 0);
		TG_CHECK(memcmp(&t, &model_default_tiers[i], sizeof(t)) == 0);
	}
	/* Reopening applies nothing and keeps the secret. */
	tclose(s);
	s = topen_path(dir, 0);
	TG_REQUIRE(s);
	TG_CHECK_INT(store_schema_version(s), store_latest_version());
	TG_CHECK(memcmp(store_hash_secret(s), secret, 16) == 0);
}

/* Every database of a and b holds the same records, meta aside (secret, created_at). */
static void same_content(struct store *a, struct store *b)
{
	for (int db = STORE_DB_KEYS; db < STORE_DB__COUNT; db++) {
		struct dump da, dbb;

		TG_CHECK_INT(dump_db(a, (enum store_db)db, &da), 0);
		TG_CHECK_INT(dump_db(b, (enum store_db)db, &dbb), 0);
		if (da.len != dbb.len || (da.len && memcmp(da.p, dbb.p, da.len) != 0)) {
			printf("#   database %s differs\n", store_db_names[db]);
			tg_failed++;
		}
		free(da.p);
		free(dbb.p);
	}
}

TMP_CASE(every_older_version_migrates)
{
	char fresh_dir[128], old_dir[128];
	struct store *fresh, *s;

	snprintf(fresh_dir, sizeof(fresh_dir), "%s/fresh", dir);
	fresh = topen_path(fresh_dir, 0);
	TG_REQUIRE(fresh);
	for (unsigned v = 1; v < store_latest_version(); v++) {
		uint8_t secret[16];
		struct get_req g1, g2;

		snprintf(old_dir, sizeof(old_dir), "%s/v%u", dir, v);
		s = topen_path(old_dir, v);
		TG_REQUIRE(s);
		TG_CHECK_INT(store_schema_version(s), v);
		TG_REQUIRE(store_hash_secret(s));
		memcpy(secret, store_hash_secret(s), 16);
		TG_CHECK_INT(tget(s, STORE_DB_META, STORE_META_CREATED, &g1), 0);
		tclose(s);

		s = topen_path(old_dir, 0);
		TG_REQUIRE(s);
		TG_CHECK_INT(store_schema_version(s), store_latest_version());
		TG_CHECK(memcmp(store_hash_secret(s), secret, 16) == 0);
		TG_CHECK_INT(tget(s, STORE_DB_META, STORE_META_CREATED, &g2), 0);
		TG_CHECK(g1.len == g2.len && memcmp(g1.v, g2.v, g1.len) == 0);
		same_content(fresh, s);
		tclose(s);
	}
}

/* Key records as a version-2 store held them: format 1, without the slot. */
struct v1_keys {
	struct key_record r[4];
};

static int put_v1_keys_txn(struct store_txn *t, void *arg)
{
	struct v1_keys *k = arg;

	for (int i = 0; i < 4; i++) {
		uint8_t buf[MODEL_KEY_MAX];
		int n = key_record_encode_format(&k->r[i], 1, buf, sizeof(buf)), rc;

		if (n < 4 || buf[0] != 1)
			return -EINVAL;
		rc = store_put(t, STORE_DB_KEYS, k->r[i].id, TG_ID_LEN, buf, (size_t)n, 0);
		if (rc)
			return rc;
	}
	return 0;
}

static void v1_key(struct key_record *r, char c, bool revoked)
{
	memset(r, 0, sizeof(*r));
	memset(r->id, c, TG_ID_LEN);
	snprintf(r->name, sizeof(r->name), "key %c", c);
	snprintf(r->owner, sizeof(r->owner), "team:ml");
	snprintf(r->service, sizeof(r->service), "default");
	snprintf(r->tier, sizeof(r->tier), "basic");
	limits_clear(&r->overrides);
	r->created_at = 1700000000;
	r->revoked_at = revoked ? 1700000100 : 0;
	r->khash_cur = 0x1234567890abcdefull + (uint64_t)c;
	r->slot = TG_SLOT_NONE;
}

/* Migration 3 on a version-2 store with keys: slots 0.. in id order, none when revoked. */
TMP_CASE(key_slots_migration_from_v2)
{
	static const uint32_t want[4] = {0, TG_SLOT_NONE, 1, 2};
	struct v1_keys k;
	struct store *s = topen_path(dir, 2);
	struct get_req g;

	TG_REQUIRE(s);
	TG_REQUIRE(store_latest_version() >= 3);
	v1_key(&k.r[0], 'a', false);
	v1_key(&k.r[1], 'b', true);
	v1_key(&k.r[2], 'c', false);
	v1_key(&k.r[3], 'd', false);
	TG_REQUIRE(store_write(s, put_v1_keys_txn, &k) == 0);
	TG_CHECK_INT(tget(s, STORE_DB_KEYS, "aaaaaaaaaaaa", &g), 0);
	TG_CHECK_INT(g.v[0], 1);
	tclose(s);

	s = topen_path(dir, 0);
	TG_REQUIRE(s);
	TG_CHECK_INT(store_schema_version(s), store_latest_version());
	for (int i = 0; i < 4; i++) {
		struct key_record r;

		TG_CHECK_INT(tget(s, STORE_DB_KEYS, k.r[i].id, &g), 0);
		TG_CHECK_INT(g.v[0], 4); /* rewritten in the current format */
		TG_CHECK_INT(key_record_decode(g.v, g.len, &r), 0);
		TG_CHECK_INT(r.slot, want[i]);
		r.slot = TG_SLOT_NONE; /* everything else is as it was */
		TG_CHECK(memcmp(&r, &k.r[i], sizeof(r)) == 0);
	}
}

static int set_version_txn(struct store_txn *t, void *arg)
{
	unsigned v = *(unsigned *)arg;
	uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

	return store_put(t, STORE_DB_META, STORE_META_SCHEMA, strlen(STORE_META_SCHEMA), le, 4, 0);
}

/* Reads a whole file into a malloc'd buffer; NULL on error. */
static unsigned char *slurp(const char *path, size_t *len)
{
	unsigned char *p = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && (p = malloc((size_t)st.st_size + 1)) &&
	    read(fd, p, (size_t)st.st_size) != st.st_size) {
		free(p);
		p = NULL;
	}
	*len = (size_t)st.st_size;
	close(fd);
	return p;
}

TMP_CASE(newer_store_refused_untouched)
{
	unsigned newer = store_latest_version() + 1;
	struct store_opts ro = {.path = dir, .read_only = true};
	unsigned char *before, *after;
	char data[128];
	size_t blen, alen;
	struct store *s = topen_path(dir, 0);

	TG_REQUIRE(s);
	TG_REQUIRE(store_write(s, set_version_txn, &newer) == 0);
	tclose(s);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	before = slurp(data, &blen);
	TG_REQUIRE(before);

	errno = 0;
	TG_CHECK(topen_path(dir, 0) == NULL);
	TG_CHECK_INT(errno, EPROTO);
	errno = 0;
	TG_CHECK(topen(&ro) == NULL);
	TG_CHECK_INT(errno, EPROTO);

	after = slurp(data, &alen);
	TG_CHECK(after && alen == blen && memcmp(before, after, blen) == 0);
	free(before);
	free(after);
}

TMP_CASE(read_only_applies_nothing)
{
	char missing[128];
	struct store_opts ro = {.path = missing, .read_only = true};
	struct store *s;
	struct dump d;

	snprintf(missing, sizeof(missing), "%s/nothing/here", dir);
	errno = 0;
	TG_CHECK(topen(&ro) == NULL);
	TG_CHECK_INT(errno, ENOENT);
	/* A directory without a store is just as absent. */
	ro.path = dir;
	errno = 0;
	TG_CHECK(topen(&ro) == NULL);
	TG_CHECK_INT(errno, ENOENT);

	s = topen_path(dir, 1);
	TG_REQUIRE(s);
	tclose(s);
	s = topen(&ro);
	TG_REQUIRE(s);
	TG_CHECK_INT(store_schema_version(s), 1);
	TG_CHECK(store_hash_secret(s) != NULL);
	TG_CHECK_INT(dump_db(s, STORE_DB_TIERS, &d), 0);
	TG_CHECK_INT(d.n, 0);
	free(d.p);
	TG_CHECK_INT(store_write(s, set_version_txn, &(unsigned){2}), -EROFS);
	TG_CHECK(store_writer_start(s, NULL) == NULL);
	tclose(s);
	s = topen_path(dir, 0);
	TG_REQUIRE(s);
	TG_CHECK_INT(store_schema_version(s), store_latest_version());
}

static int crud_txn(struct store_txn *t, void *arg)
{
	char out[8];
	const void *ref;
	size_t len = 0, count = 0;
	(void)arg;

	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "k1", 2, "value-1", 7, 0), 0);
	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "k1", 2, "other", 5, STORE_NOOVERWRITE), -EEXIST);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "k1", 2, out, sizeof(out), &len), 0);
	TG_CHECK(len == 7 && memcmp(out, "value-1", 7) == 0);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "k1", 2, out, 6, &len), -EMSGSIZE);
	TG_CHECK_INT(len, 7);
	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "k1", 2, "v2", 2, 0), 0);
	TG_CHECK_INT(store_get_ref(t, STORE_DB_KEYS, "k1", 2, &ref, &len), 0);
	TG_CHECK(len == 2 && memcmp(ref, "v2", 2) == 0);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "k2", 2, out, sizeof(out), &len), -ENOENT);
	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "k2", 2, "", 0, 0), 0);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "k2", 2, out, sizeof(out), &len), 0);
	TG_CHECK_INT(len, 0);
	TG_CHECK_INT(store_count(t, STORE_DB_KEYS, &count), 0);
	TG_CHECK_INT(count, 2);
	TG_CHECK_INT(store_del(t, STORE_DB_KEYS, "k2", 2), 0);
	TG_CHECK_INT(store_del(t, STORE_DB_KEYS, "k2", 2), -ENOENT);
	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "", 0, "x", 1, 0), -EINVAL);
	TG_CHECK_INT(store_put(t, STORE_DB_KEYS, "k3", 2, "x", 1, 0x100), -EINVAL);
	TG_CHECK_INT(store_count(t, STORE_DB_KEYS, &count), 0);
	TG_CHECK_INT(count, 1);
	return 0;
}

/* store_update's fn for the test: appends "+" to the value (absent: "n"); arg != NULL fails. */
static int plus_one(const void *old, size_t len, void *out, size_t cap, size_t *outlen, void *arg)
{
	if (arg)
		return -EBADMSG;
	if (!old) {
		memcpy(out, "n", 1);
		*outlen = 1;
		return 0;
	}
	if (len + 1 > cap)
		return -EMSGSIZE;
	memcpy(out, old, len);
	((char *)out)[len] = '+';
	*outlen = len + 1;
	return 0;
}

static int update_txn(struct store_txn *t, void *arg)
{
	char out[8];
	size_t len = 0;
	(void)arg;

	/* absent: created; present: read and rewritten (a new size too); fn's error: unchanged */
	TG_CHECK_INT(store_update(t, STORE_DB_KEYS, "u1", 2, plus_one, NULL), 0);
	TG_CHECK_INT(store_update(t, STORE_DB_KEYS, "u1", 2, plus_one, NULL), 0);
	TG_CHECK_INT(store_update(t, STORE_DB_KEYS, "u1", 2, plus_one, NULL), 0);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "u1", 2, out, sizeof(out), &len), 0);
	TG_CHECK(len == 3 && memcmp(out, "n++", 3) == 0);
	TG_CHECK_INT(store_update(t, STORE_DB_KEYS, "u1", 2, plus_one, out), -EBADMSG);
	TG_CHECK_INT(store_update(t, STORE_DB_KEYS, "u2", 2, plus_one, out), -EBADMSG);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "u1", 2, out, sizeof(out), &len), 0);
	TG_CHECK(len == 3 && memcmp(out, "n++", 3) == 0);
	TG_CHECK_INT(store_get(t, STORE_DB_KEYS, "u2", 2, out, sizeof(out), &len), -ENOENT);
	return 0;
}

TMP_CASE(update_reads_and_rewrites_in_one_walk)
{
	struct store *s = topen_path(dir, 0);

	TG_REQUIRE(s);
	TG_CHECK_INT(store_write(s, update_txn, NULL), 0);
}

static int put_in_read_txn(struct store_txn *t, void *arg)
{
	(void)arg;
	return store_put(t, STORE_DB_KEYS, "k9", 2, "x", 1, 0);
}

TMP_CASE(get_put_del_count)
{
	struct store *s = topen_path(dir, 0);
	struct get_req g;

	TG_REQUIRE(s);
	TG_CHECK_INT(store_write(s, crud_txn, NULL), 0);
	TG_CHECK_INT(tget(s, STORE_DB_KEYS, "k1", &g), 0);
	TG_CHECK(g.len == 2 && memcmp(g.v, "v2", 2) == 0);
	TG_CHECK_INT(tget(s, STORE_DB_KEYS, "k2", &g), -ENOENT);
	TG_CHECK(store_read(s, put_in_read_txn, NULL) < 0);
	TG_CHECK_INT(tget(s, STORE_DB_KEYS, "k9", &g), -ENOENT);
}

struct seen {
	char keys[16][8];
	int n, stop_after, fail_at;
};

static int seen_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct seen *s = arg;

	if (s->n == s->fail_at)
		return -EIO;
	if (klen >= 8 || vlen != klen || memcmp(k, v, klen) != 0 || s->n >= 16)
		return -EBADMSG;
	memcpy(s->keys[s->n], k, klen);
	s->keys[s->n][klen] = '\0';
	s->n++;
	return s->n == s->stop_after ? 1 : 0;
}

static int fill_txn(struct store_txn *t, void *arg)
{
	static const char *const keys[] = {"e", "a", "c", "b", "d"};
	(void)arg;

	for (size_t i = 0; i < TG_NCASES(keys); i++) {
		int rc = store_put(t, STORE_DB_OWNERS, keys[i], 1, keys[i], 1, 0);

		if (rc)
			return rc;
	}
	return 0;
}

struct iter_req {
	const char *start;
	struct seen seen;
};

static int iter_txn(struct store_txn *t, void *arg)
{
	struct iter_req *r = arg;

	return store_iter(t, STORE_DB_OWNERS, r->start, r->start ? strlen(r->start) : 0, seen_one,
			  &r->seen);
}

/*
 * Walks over keys a..e: from the first key >= start; a callback returning 1 stops the walk
 * without error, a negative one stops it with that error.
 */
static const struct {
	const char *start;
	int stop_after, fail_at;
	int rc;
	const char *want; /* keys seen, in order */
} iter_table[] = {
    {NULL, 0, -1, 0, "abcde"}, {"c", 0, -1, 0, "cde"}, {"bb", 0, -1, 0, "cde"},
    {"z", 0, -1, 0, ""},       {NULL, 2, -1, 0, "ab"}, {"b", 1, -1, 0, "b"},
    {NULL, 0, 3, -EIO, "abc"},
};

TMP_CASE(iteration_order_start_and_stop)
{
	struct store *s = topen_path(dir, 0);

	TG_REQUIRE(s);
	TG_REQUIRE(store_write(s, fill_txn, NULL) == 0);
	for (size_t i = 0; i < TG_NCASES(iter_table); i++) {
		struct iter_req r = {.start = iter_table[i].start};
		char got[17] = "";

		r.seen.stop_after = iter_table[i].stop_after;
		r.seen.fail_at = iter_table[i].fail_at;
		TG_CHECK_INT(store_read(s, iter_txn, &r), iter_table[i].rc);
		for (int k = 0; k < r.seen.n; k++)
			strcat(got, r.seen.keys[k]);
		TG_CHECK_STR(got, iter_table[i].want);
	}
}

static int puts_then_fail_txn(struct store_txn *t, void *arg)
{
	char key[16];
	(void)arg;

	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		if (store_put(t, STORE_DB_KEYS, key, strlen(key), "v", 1, 0))
			return -EBADMSG;
	}
	return -EINVAL;
}

static int count_txn(struct store_txn *t, void *arg)
{
	const enum store_db *db = arg;
	size_t n = 0;
	int rc = store_count(t, *db, &n);

	return rc ? rc : (int)n;
}

static int count_of(struct store *s, enum store_db db)
{
	return store_read(s, count_txn, &db);
}

TMP_CASE(failing_callback_writes_nothing)
{
	struct store *s = topen_path(dir, 0);
	struct get_req g;

	TG_REQUIRE(s);
	TG_CHECK_INT(store_write(s, puts_then_fail_txn, NULL), -EINVAL);
	TG_CHECK_INT(count_of(s, STORE_DB_KEYS), 0);
	TG_CHECK_INT(tget(s, STORE_DB_KEYS, "key0", &g), -ENOENT);
}

/* Writes records [first, first + n) of 1000 bytes each into STORE_DB_OWNERS, in one txn. */
struct bulk {
	unsigned first, n;
};

static void bulk_value(unsigned i, unsigned char *v, size_t len)
{
	for (size_t j = 0; j < len; j++)
		v[j] = (unsigned char)(i * 131 + j * 7);
}

static int bulk_txn(struct store_txn *t, void *arg)
{
	const struct bulk *b = arg;
	unsigned char v[1000];

	for (unsigned i = b->first; i < b->first + b->n; i++) {
		char key[16];
		int rc;

		snprintf(key, sizeof(key), "r%08u", i);
		bulk_value(i, v, sizeof(v));
		rc = store_put(t, STORE_DB_OWNERS, key, strlen(key), v, sizeof(v), 0);
		if (rc)
			return rc;
	}
	return 0;
}

struct check_ctx {
	unsigned next, bad;
};

static int check_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct check_ctx *c = arg;
	unsigned char want[1000];
	char key[16];

	snprintf(key, sizeof(key), "r%08u", c->next);
	bulk_value(c->next, want, sizeof(want));
	if (klen != strlen(key) || memcmp(k, key, klen) != 0 || vlen != sizeof(want) ||
	    memcmp(v, want, vlen) != 0)
		c->bad++;
	c->next++;
	return 0;
}

static int check_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_OWNERS, NULL, 0, check_one, arg);
}

/* Every record r00000000 .. r(n-1) is present with its content, and nothing else. */
static void check_bulk(struct store *s, unsigned n)
{
	struct check_ctx c = {0};

	TG_CHECK_INT(store_read(s, check_txn, &c), 0);
	TG_CHECK_INT(c.next, n);
	TG_CHECK_INT(c.bad, 0);
}

/* interval_ms > 0: the store is opened with MDB_WRITEMAP (see store_opts) */
static void map_grows_check(const char *dir, unsigned interval_ms)
{
	struct store_opts o = {.path = dir,
			       .map_size = 256 << 10,
			       .sync = STORE_SYNC_NONE,
			       .sync_interval_ms = interval_ms};
	struct store *s = topen(&o);
	size_t mapped, used, before;
	unsigned total = 0;

	TG_REQUIRE(s);
	store_map_usage(s, &before, &used);
	TG_CHECK(before <= (256 << 10) + 4096);
	/* 4 MB in one transaction: several doublings while running one callback... */
	TG_REQUIRE(store_write(s, bulk_txn, &(struct bulk){0, 4000}) == 0);
	total = 4000;
	store_map_usage(s, &mapped, &used);
	TG_CHECK(mapped >= 4 * before);
	/* ...then ~20 MB more in many transactions. */
	for (unsigned i = 0; i < 400; i++, total += 50) {
		struct bulk b = {total, 50};

		TG_REQUIRE(store_write(s, bulk_txn, &b) == 0);
	}
	check_bulk(s, total);
	store_map_usage(s, &mapped, &used);
	TG_CHECK(mapped > before);
	TG_CHECK(used >= (size_t)total * 1000 && used <= mapped);
	tclose(s);
	s = topen(&o);
	TG_REQUIRE(s);
	check_bulk(s, total);
}

TMP_CASE(map_grows_on_demand)
{
	map_grows_check(dir, 0);
}

TMP_CASE(map_grows_on_demand_writemap)
{
	map_grows_check(dir, 1000);
}

static void map_cap_check(const char *dir, unsigned interval_ms)
{
	struct store_opts o = {.path = dir,
			       .map_size = 256 << 10,
			       .max_map_size = 1 << 20,
			       .sync = STORE_SYNC_NONE,
			       .sync_interval_ms = interval_ms};
	struct store *s = topen(&o);
	size_t mapped, used;
	unsigned done = 0;
	int rc = 0;
	struct get_req g;
	char key[16];

	TG_REQUIRE(s);
	for (int i = 0; i < 100; i++) {
		rc = store_write(s, bulk_txn, &(struct bulk){done, 32});
		if (rc)
			break;
		done += 32;
	}
	TG_CHECK_INT(rc, -ENOSPC);
	TG_CHECK(done > 0);
	check_bulk(s, done);
	snprintf(key, sizeof(key), "r%08u", done);
	TG_CHECK_INT(tget(s, STORE_DB_OWNERS, key, &g), -ENOENT);
	store_map_usage(s, &mapped, &used);
	TG_CHECK(mapped <= (1 << 20));
	/* The same holds after a reopen: the refused transaction never reached the file. */
	tclose(s);
	s = topen(&o);
	TG_REQUIRE(s);
	check_bulk(s, done);
}

TMP_CASE(map_cap_refuses_whole_transaction)
{
	map_cap_check(dir, 0);
}

TMP_CASE(map_cap_refuses_whole_transaction_writemap)
{
	map_cap_check(dir, 1000);
}

/*
 * Another process grows the map past this one's: the next transaction here meets
 * MDB_MAP_RESIZED, adopts the new size and goes on, for reads and writes alike.
 */
TMP_CASE(map_grown_elsewhere_is_adopted)
{
	struct store_opts o = {.path = dir, .map_size = 256 << 10, .sync = STORE_SYNC_NONE};
	struct store *s = topen(&o);
	size_t before, after, used;
	int status = -1;
	pid_t pid;

	TG_REQUIRE(s);
	store_map_usage(s, &before, &used);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* The parent's store is never touched here: LMDB handles do not survive fork. */
		struct store *c = store_open(&o);
		int rc = c ? store_write(c, bulk_txn, &(struct bulk){0, 4000}) : -1;

		store_close(c);
		_exit(rc == 0 ? 0 : 1);
	}
	TG_REQUIRE(pid > 0);
	waitpid(pid, &status, 0);
	TG_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	check_bulk(s, 4000);
	TG_CHECK_INT(store_write(s, bulk_txn, &(struct bulk){4000, 100}), 0);
	check_bulk(s, 4100);
	store_map_usage(s, &after, &used);
	TG_CHECK(after > before && used <= after);
}

#define WR_THREADS    4
#define WR_PER_THREAD 25000

struct appender {
	struct store_writer *w;
	uint32_t id;
	uint64_t seqs[WR_PER_THREAD];
	int err;
	bool here; /* store_writer_append_commit: commit on this thread when the writer is idle */
};

static void *append_main(void *arg)
{
	struct appender *a = arg;

	for (uint32_t i = 0; i < WR_PER_THREAD && !a->err; i++) {
		uint32_t rec[2] = {a->id, i};

		a->err = a->here ? store_writer_append_commit(a->w, rec, sizeof(rec), &a->seqs[i])
				 : store_writer_append(a->w, rec, sizeof(rec), &a->seqs[i]);
	}
	return NULL;
}

/* Usage records seen in order: key k must be first + index, value what by_seq says. */
struct usage_check {
	uint64_t first, next, count;
	const uint32_t (*by_seq)[2]; /* indexed by seq - first, count entries */
	unsigned bad;
};

static uint64_t be64_get(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int usage_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct usage_check *c = arg;
	const uint32_t *want = c->next - c->first < c->count ? c->by_seq[c->next - c->first] : NULL;

	if (!want || klen != 8 || be64_get(k) != c->next || vlen != 8 || memcmp(v, want, 8) != 0)
		c->bad++;
	c->next++;
	return 0;
}

static int usage_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_USAGE, NULL, 0, usage_one, arg);
}

static void check_threads(struct appender *a, uint32_t (*by_seq)[2], uint64_t *max)
{
	for (int t = 0; t < WR_THREADS; t++) {
		TG_CHECK_INT(a[t].err, 0);
		for (uint32_t i = 0; i < WR_PER_THREAD; i++) {
			uint64_t q = a[t].seqs[i];

			/* One thread's records keep the order it appended them in. */
			if (q == 0 || q > WR_THREADS * WR_PER_THREAD ||
			    (i && q <= a[t].seqs[i - 1]) || by_seq[q - 1][0] != UINT32_MAX) {
				tg_failed++;
				printf("#   thread %d record %u: bad sequence %" PRIu64 "\n", t, i,
				       q);
				return;
			}
			by_seq[q - 1][0] = (uint32_t)t;
			by_seq[q - 1][1] = i;
			*max = q > *max ? q : *max;
		}
	}
}

TMP_CASE(writer_commits_all_in_order_in_batches)
{
	static struct appender a[WR_THREADS];
	static uint32_t by_seq[WR_THREADS * WR_PER_THREAD][2];
	struct store *s = topen_path(dir, 0);
	struct usage_check c = {
	    .first = 1, .next = 1, .count = TG_NCASES(by_seq), .by_seq = by_seq};
	unsigned long batches0 = atomic_load(&store_writer_debug_batches), batches;
	struct store_writer *w;
	pthread_t th[WR_THREADS];
	uint64_t max = 0;

	TG_REQUIRE(s);
	w = store_writer_start(s, NULL);
	TG_REQUIRE(w);
	memset(by_seq, 0xff, sizeof(by_seq));
	for (int t = 0; t < WR_THREADS; t++) {
		a[t] = (struct appender){.w = w, .id = (uint32_t)t};
		TG_CHECK_INT(pthread_create(&th[t], NULL, append_main, &a[t]), 0);
	}
	for (int t = 0; t < WR_THREADS; t++)
		pthread_join(th[t], NULL);
	check_threads(a, by_seq, &max);
	TG_CHECK_INT(max, WR_THREADS * WR_PER_THREAD);
	TG_CHECK_INT(store_writer_wait(w, max, 60000), 0);
	TG_CHECK(store_writer_committed(w) >= max);
	TG_CHECK_INT(store_writer_wait(w, max + 1000, 20), -ETIMEDOUT);
	TG_CHECK_INT(store_writer_append(w, by_seq, 4097, NULL), -EMSGSIZE);
	store_writer_stop(w);
	batches = atomic_load(&store_writer_debug_batches) - batches0;
	printf("#   %d records in %lu transactions\n", WR_THREADS * WR_PER_THREAD, batches);
	TG_CHECK(batches > 0 && batches < WR_THREADS * WR_PER_THREAD / 10);
	TG_CHECK_INT(store_read(s, usage_txn, &c), 0);
	TG_CHECK_INT(c.next - 1, max);
	TG_CHECK_INT(c.bad, 0);
}

/* Appenders that commit on their own thread and the writer thread take turns, in order. */
TMP_CASE(append_commit_from_threads_in_order)
{
	static struct appender a[WR_THREADS];
	static uint32_t by_seq[WR_THREADS * WR_PER_THREAD][2];
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_NONE, .sync_interval_ms = 1000};
	struct store *s = topen(&o);
	struct usage_check c = {
	    .first = 1, .next = 1, .count = TG_NCASES(by_seq), .by_seq = by_seq};
	struct store_writer *w;
	pthread_t th[WR_THREADS];
	uint64_t max = 0;

	TG_REQUIRE(s);
	w = store_writer_start(s, NULL);
	TG_REQUIRE(w);
	memset(by_seq, 0xff, sizeof(by_seq));
	for (int t = 0; t < WR_THREADS; t++) {
		/* half commit on their own thread, half leave it to the writer */
		a[t] = (struct appender){.w = w, .id = (uint32_t)t, .here = t % 2 == 0};
		TG_CHECK_INT(pthread_create(&th[t], NULL, append_main, &a[t]), 0);
	}
	for (int t = 0; t < WR_THREADS; t++)
		pthread_join(th[t], NULL);
	check_threads(a, by_seq, &max);
	TG_CHECK_INT(max, WR_THREADS * WR_PER_THREAD);
	TG_CHECK_INT(store_writer_wait(w, max, 60000), 0);
	store_writer_stop(w);
	TG_CHECK_INT(store_read(s, usage_txn, &c), 0);
	TG_CHECK_INT(c.next - 1, max);
	TG_CHECK_INT(c.bad, 0);
}

static _Atomic pthread_t hook_thread;

static void hook_note_thread(uint64_t committed, int err, void *arg)
{
	(void)committed;
	(void)err;
	(void)arg;
	atomic_store(&hook_thread, pthread_self());
}

/*
 * With lazy commits and the writer idle, the record is committed, and the hook has run, on
 * the caller; with synced commits (sync_interval_ms 0) the writer thread does it.
 */
static void append_commit_check(const char *dir, unsigned interval_ms)
{
	static const char big[4097];
	struct store_opts o = {
	    .path = dir, .sync = STORE_SYNC_NONE, .sync_interval_ms = interval_ms};
	struct store *s = topen(&o);
	struct store_writer *w = s ? store_writer_start(s, NULL) : NULL;
	uint64_t seq = 0;

	TG_REQUIRE(w);
	atomic_store(&hook_thread, (pthread_t)0);
	store_writer_on_commit(w, hook_note_thread, NULL);
	TG_CHECK_INT(store_writer_append_commit(w, "one", 3, &seq), 0);
	if (interval_ms) {
		TG_CHECK(store_writer_committed(w) >= seq);
		TG_CHECK(pthread_equal(atomic_load(&hook_thread), pthread_self()));
	} else {
		TG_CHECK_INT(store_writer_wait(w, seq, 5000), 0);
		for (int i = 0; i < 5000 && !atomic_load(&hook_thread); i++)
			usleep(1000); /* the hook runs just after the waiters are woken */
		TG_CHECK(atomic_load(&hook_thread) != 0);
		TG_CHECK(!pthread_equal(atomic_load(&hook_thread), pthread_self()));
	}
	store_writer_on_commit(w, NULL, NULL);
	TG_CHECK_INT(store_writer_append_commit(w, big, sizeof(big), NULL), -EMSGSIZE);
	store_writer_stop(w);
}

TMP_CASE(append_commit_when_idle_commits_on_caller)
{
	append_commit_check(dir, 1000);
}

TMP_CASE(append_commit_synced_leaves_it_to_the_writer)
{
	append_commit_check(dir, 0);
}

static int usage_count_txn(struct store_txn *t, void *arg)
{
	return store_count(t, STORE_DB_USAGE, arg);
}

/*
 * Deferred appends (an event loop's round): with lazy commits, five records queued by
 * store_writer_append_deferred are committed by the one flush, in one batch, and the hook
 * runs on the flushing thread; with synced commits the writer thread commits each as
 * append_commit would, and a flush of an empty queue changes nothing.
 */
static void append_deferred_check(const char *dir, unsigned interval_ms)
{
	struct store_opts o = {
	    .path = dir, .sync = STORE_SYNC_NONE, .sync_interval_ms = interval_ms};
	struct store *s = topen(&o);
	struct store_writer *w = s ? store_writer_start(s, NULL) : NULL;
	unsigned long batches0;
	uint64_t seq = 0, count = 0;

	TG_REQUIRE(w);
	atomic_store(&hook_thread, (pthread_t)0);
	store_writer_on_commit(w, hook_note_thread, NULL);
	batches0 = atomic_load(&store_writer_debug_batches);
	for (int i = 0; i < 5; i++)
		TG_CHECK_INT(store_writer_append_deferred(w, "rec", 3, &seq), 0);
	TG_CHECK_INT(seq, 5);
	store_writer_flush(w);
	if (interval_ms) {
		TG_CHECK(store_writer_committed(w) >= seq);
		TG_CHECK(pthread_equal(atomic_load(&hook_thread), pthread_self()));
		TG_CHECK_INT(atomic_load(&store_writer_debug_batches) - batches0, 1);
	} else {
		TG_CHECK_INT(store_writer_wait(w, seq, 5000), 0);
	}
	store_writer_flush(w); /* nothing queued */
	TG_CHECK_INT(store_writer_committed(w), seq);
	store_writer_on_commit(w, NULL, NULL);
	store_writer_stop(w);
	TG_CHECK_INT(store_read(s, usage_count_txn, &count), 0);
	TG_CHECK_INT(count, 5);
}

TMP_CASE(append_deferred_commits_at_flush_in_one_batch)
{
	append_deferred_check(dir, 1000);
}

TMP_CASE(append_deferred_synced_leaves_it_to_the_writer)
{
	append_deferred_check(dir, 0);
}

TMP_CASE(writer_back_pressure_and_restart)
{
	struct store_writer_opts wo = {.max_batch = 8, .max_delay_us = 100, .queue_cap = 16};
	struct store *s = topen_path(dir, 0);
	unsigned char big[4096];
	struct store_writer *w;
	uint64_t seq = 0, prev = 0;
	size_t n = 0;

	TG_REQUIRE(s);
	w = store_writer_start(s, &wo);
	TG_REQUIRE(w);
	memset(big, 0xab, sizeof(big));
	/* 1000 appends through a queue of 16: each waits for room, none is lost. */
	for (int i = 0; i < 1000; i++) {
		TG_CHECK_INT(store_writer_append(w, big, (size_t)(i % 2 ? 4096 : i % 300), &seq),
			     0);
		TG_CHECK_INT(seq, prev + 1);
		prev = seq;
	}
	store_writer_stop(w); /* commits what is queued */
	TG_CHECK_INT(store_read(s, usage_count_txn, &n), 0);
	TG_CHECK_INT(n, 1000);
	/* A new writer continues after the highest sequence in the store. */
	w = store_writer_start(s, NULL);
	TG_REQUIRE(w);
	TG_CHECK_INT(store_writer_committed(w), 1000);
	TG_CHECK_INT(store_writer_append(w, "x", 1, &seq), 0);
	TG_CHECK_INT(seq, 1001);
	TG_CHECK_INT(store_writer_wait(w, seq, 60000), 0);
	store_writer_stop(w);
	TG_CHECK_INT(store_read(s, usage_count_txn, &n), 0);
	TG_CHECK_INT(n, 1001);
}

/* Deletes bulk records [first, first + n) from STORE_DB_OWNERS. */
static int unbulk_txn(struct store_txn *t, void *arg)
{
	const struct bulk *b = arg;

	for (unsigned i = b->first; i < b->first + b->n; i++) {
		char key[16];
		int rc;

		snprintf(key, sizeof(key), "r%08u", i);
		rc = store_del(t, STORE_DB_OWNERS, key, strlen(key));
		if (rc)
			return rc;
	}
	return 0;
}

/* Fills a capped store with bulk records until a write is refused; how many fit. */
static unsigned fill_to_cap(struct store *s)
{
	unsigned done = 0;

	while (done < 100000 && store_write(s, bulk_txn, &(struct bulk){done, 8}) == 0)
		done += 8;
	return done;
}

TMP_CASE(writer_retries_failed_commits)
{
	struct store_opts o = {
	    .path = dir, .map_size = 256 << 10, .max_map_size = 1 << 20, .sync = STORE_SYNC_NONE};
	struct store_writer_opts wo = {.max_batch = 1000, .max_delay_us = 1000};
	struct store *s = topen(&o);
	unsigned char rec[4096];
	struct store_writer *w;
	uint64_t seq = 0;
	unsigned filled;
	size_t n = 0;

	TG_REQUIRE(s);
	filled = fill_to_cap(s);
	TG_REQUIRE(filled > 0);
	w = store_writer_start(s, &wo);
	TG_REQUIRE(w);
	/* 400 KB of usage cannot fit: the batch is refused and kept. */
	memset(rec, 0x5a, sizeof(rec));
	for (int i = 0; i < 100; i++)
		TG_CHECK_INT(store_writer_append(w, rec, sizeof(rec), &seq), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 200), -ENOSPC);
	TG_CHECK_INT(store_writer_committed(w), 0);
	/* Make room: the writer's next retry commits everything it kept. */
	for (unsigned i = 0; i < filled; i += 8)
		TG_CHECK_INT(store_write(s, unbulk_txn, &(struct bulk){i, 8}), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 60000), 0);
	TG_CHECK_INT(store_read(s, usage_count_txn, &n), 0);
	TG_CHECK_INT(n, 100);
	/* Stopping while the store keeps refusing gives up after a few tries, not never. */
	fill_to_cap(s);
	for (int i = 0; i < 100; i++)
		TG_CHECK_INT(store_writer_append(w, rec, sizeof(rec), &seq), 0);
	store_writer_stop(w);
	TG_CHECK_INT(store_read(s, usage_count_txn, &n), 0);
	TG_CHECK_INT(n, 100);
}

/* The usage record the crash test writes at seq: its length and bytes follow from seq. */
static size_t crash_record(uint64_t seq, unsigned char *out)
{
	size_t len = 16 + seq % 64;

	memcpy(out, &seq, 8);
	for (size_t i = 8; i < len; i++)
		out[i] = (unsigned char)(seq * 31 + i);
	return len;
}

/* The child: appends as fast as it can and reports the committed sequence every ~2 ms. */
/* interval_ms > 0: usage batches commit without a sync (the syncer runs that often) */
static void crash_child(const char *dir, int fd, unsigned interval_ms)
{
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_META, .sync_interval_ms = interval_ms};
	struct store *s = store_open(&o);
	struct store_writer *w = s ? store_writer_start(s, NULL) : NULL;
	int64_t last_report = 0;
	unsigned char rec[128];

	if (!w)
		_exit(2);
	for (uint64_t want = 1;; want++) {
		uint64_t seq;
		struct timespec ts;

		if (store_writer_append(w, rec, crash_record(want, rec), &seq) || seq != want)
			_exit(3);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec * 1000000000LL + ts.tv_nsec - last_report > 2000000) {
			uint64_t c = store_writer_committed(w);

			if (write(fd, &c, sizeof(c)) != sizeof(c))
				_exit(4);
			last_report = ts.tv_sec * 1000000000LL + ts.tv_nsec;
		}
	}
}

struct crash_check {
	uint64_t next;
	unsigned bad;
};

static int crash_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct crash_check *c = arg;
	unsigned char want[128];
	size_t len = crash_record(c->next, want);

	if (klen != 8 || be64_get(k) != c->next || vlen != len || memcmp(v, want, len) != 0)
		c->bad++;
	c->next++;
	return 0;
}

static int crash_txn(struct store_txn *t, void *arg)
{
	return store_iter(t, STORE_DB_USAGE, NULL, 0, crash_one, arg);
}

static void kill_9_check(const char *dir, unsigned interval_ms)
{
	struct crash_check c = {.next = 1};
	uint64_t reported;
	struct store *s;
	int pfd[2], status = 0;
	pid_t pid;

	TG_REQUIRE(pipe(pfd) == 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		crash_child(dir, pfd[1], interval_ms);
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

	s = topen_path(dir, 0);
	TG_REQUIRE(s);
	TG_CHECK_INT(store_read(s, crash_txn, &c), 0);
	printf("#   child reported %" PRIu64 " committed; store holds %" PRIu64 "\n", reported,
	       c.next - 1);
	TG_CHECK(c.next - 1 >= reported);
	TG_CHECK_INT(c.bad, 0);
}

TMP_CASE(kill_9_keeps_reported_commits)
{
	kill_9_check(dir, 0);
}

/* An hour between syncs: nothing but the page cache holds the batches when the child dies. */
TMP_CASE(kill_9_keeps_reported_lazy_commits)
{
	kill_9_check(dir, 3600000);
}

struct hook_seen {
	_Atomic uint64_t committed; /* the highest committed value the hook was given */
	atomic_uint calls, errors;
};

static void hook_record(uint64_t committed, int err, void *arg)
{
	struct hook_seen *h = arg;

	atomic_fetch_add(&h->calls, 1);
	if (err)
		atomic_fetch_add(&h->errors, 1);
	if (committed > atomic_load(&h->committed))
		atomic_store(&h->committed, committed);
}

/* The commit hook sees every commit's sequence; once removed it is not called again. */
TMP_CASE(commit_hook_sees_commits_until_removed)
{
	struct store *s = topen_path(dir, 0);
	struct store_writer *w = s ? store_writer_start(s, NULL) : NULL;
	static struct hook_seen h;
	uint64_t seq = 0;
	unsigned calls;

	TG_REQUIRE(w);
	memset(&h, 0, sizeof(h));
	store_writer_on_commit(w, hook_record, &h);
	for (int i = 0; i < 1000; i++)
		TG_CHECK_INT(store_writer_append(w, "rec", 3, &seq), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 5000), 0);
	for (int i = 0; i < 5000 && atomic_load(&h.committed) < seq; i++)
		usleep(1000); /* the hook runs just after the waiters are woken */
	TG_CHECK_INT(atomic_load(&h.committed), seq);
	TG_CHECK(atomic_load(&h.calls) >= 1);
	TG_CHECK_INT(atomic_load(&h.errors), 0);
	store_writer_on_commit(w, NULL, NULL);
	calls = atomic_load(&h.calls);
	TG_CHECK_INT(store_writer_append(w, "rec", 3, &seq), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 5000), 0);
	store_writer_stop(w);
	TG_CHECK_INT(atomic_load(&h.calls), calls);
	TG_CHECK(atomic_load(&h.committed) < seq);
}

static void wait_syncs(unsigned long above, int max_ms)
{
	for (int i = 0; i < max_ms && atomic_load(&store_sync_debug_rounds) <= above; i++)
		usleep(1000);
}

/* The syncer syncs after lazy commits, not without them, and once more when the store closes. */
TMP_CASE(syncer_syncs_only_after_lazy_commits)
{
	struct store_opts o = {.path = dir, .sync = STORE_SYNC_META, .sync_interval_ms = 5};
	struct store *s = store_open(&o);
	struct store_writer *w = s ? store_writer_start(s, NULL) : NULL;
	unsigned long r0, r1, r2;
	uint64_t seq = 0;

	TG_REQUIRE(w);
	r0 = atomic_load(&store_sync_debug_rounds);
	usleep(50000); /* ten intervals without a lazy commit */
	r1 = atomic_load(&store_sync_debug_rounds);
	TG_CHECK_INT(r1 - r0, 0);
	TG_CHECK_INT(store_writer_append(w, "x", 1, &seq), 0);
	TG_CHECK_INT(store_writer_wait(w, seq, 5000), 0);
	wait_syncs(r1, 5000);
	r2 = atomic_load(&store_sync_debug_rounds);
	TG_CHECK(r2 > r1);
	TG_CHECK_INT(store_writer_append(w, "y", 1, &seq), 0);
	store_writer_stop(w);
	store_close(s); /* the syncer's last round */
	TG_CHECK(atomic_load(&store_sync_debug_rounds) > r2);
}

static const struct tg_case cases[] = {
    {"store_update creates, rewrites, and leaves a record alone when fn fails",
     update_reads_and_rewrites_in_one_walk},
    {"migrations are numbered 1..N without gaps", migration_table_is_gapless},
    {"a new store is at the latest version with 3 tiers and a secret", fresh_store_is_seeded},
    {"every older schema version migrates to a fresh store's content",
     every_older_version_migrates},
    {"migration 3: a v2 store's keys get slots 0.. in id order, none when revoked",
     key_slots_migration_from_v2},
    {"a store with a newer schema is refused (EPROTO) and left untouched",
     newer_store_refused_untouched},
    {"read-only open: ENOENT when absent, applies and writes nothing", read_only_applies_nothing},
    {"get, put (NOOVERWRITE), del and count", get_put_del_count},
    {"iteration is in key order, from a start key, and stops early",
     iteration_order_start_and_stop},
    {"a failing callback leaves nothing written", failing_callback_writes_nothing},
    {"the map grows from 256 KiB to hold 24 MB", map_grows_on_demand},
    {"the same with MDB_WRITEMAP (sync_interval_ms > 0)", map_grows_on_demand_writemap},
    {"a map grown by another process is adopted", map_grown_elsewhere_is_adopted},
    {"at max_map_size a write is refused whole (-ENOSPC), earlier data intact",
     map_cap_refuses_whole_transaction},
    {"the same with MDB_WRITEMAP (sync_interval_ms > 0)",
     map_cap_refuses_whole_transaction_writemap},
    {"writer: 100k appends from 4 threads committed in order, in batches",
     writer_commits_all_in_order_in_batches},
    {"writer: a full queue waits instead of losing; sequences continue after restart",
     writer_back_pressure_and_restart},
    {"writer: a refused commit keeps its records and retries; stop gives up",
     writer_retries_failed_commits},
    {"writer: records reported committed survive kill -9", kill_9_keeps_reported_commits},
    {"writer: records reported committed without a sync survive kill -9",
     kill_9_keeps_reported_lazy_commits},
    {"append_commit from 4 threads (half inline, half via the writer): all, in order",
     append_commit_from_threads_in_order},
    {"append_commit, lazy commits, idle writer: committed and hook run on the caller",
     append_commit_when_idle_commits_on_caller},
    {"append_commit, synced commits: the writer thread commits and runs the hook",
     append_commit_synced_leaves_it_to_the_writer},
    {"append_deferred, lazy commits: one flush commits the round in one batch, hook on caller",
     append_deferred_commits_at_flush_in_one_batch},
    {"append_deferred, synced commits: the writer thread commits; an empty flush is nothing",
     append_deferred_synced_leaves_it_to_the_writer},
    {"writer: the commit hook sees every commit until it is removed",
     commit_hook_sees_commits_until_removed},
    {"syncer: syncs after lazy commits only, and when the store closes",
     syncer_syncs_only_after_lazy_commits},
};

int main(void)
{
	log_init("test_store", LOG_LVL_WARN);
	return tg_run("store", cases, TG_NCASES(cases));
}

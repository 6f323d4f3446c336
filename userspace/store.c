/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store over LMDB (see store.h): opening and migrating, transactions as callbacks, the
 * growth of the memory map, and the group-commit writer for usage records. This is the only
 * file that includes lmdb.h; LMDB's codes are turned into negative errnos here.
 *
 * Map growth. mdb_env_set_mapsize() may only run while no transaction of this process is
 * open, so every transaction holds the read side of a per-store rwlock for its whole life,
 * and growing (or adopting a size another process chose) takes the write side. A write that
 * hits MDB_MAP_FULL is aborted, the map doubled, and the callback run again from the start.
 * The lock prefers writers, so a growth waits only for the transactions already open; a
 * thread that opens a transaction on a store from inside another one's callback does not take
 * the lock again (it would deadlock against a waiting grower), and cannot grow the map there.
 */
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "migrations.h"
#include "store.h"
#include "util.h"

#define STORE_DEFAULT_MAP     ((size_t)64 << 20)
#define STORE_DEFAULT_MAX_MAP ((size_t)64 << 30)
#define STORE_MAX_READERS     1024 /* request threads each may hold a read transaction */
#define STORE_SECRET_LEN      16
#define STORE_RESIZE_RETRIES  16

const char *const store_db_names[STORE_DB__COUNT] = {
    [STORE_DB_META] = "meta",	  [STORE_DB_KEYS] = "keys",	[STORE_DB_TIERS] = "tiers",
    [STORE_DB_OWNERS] = "owners", [STORE_DB_TOKENS] = "tokens", [STORE_DB_USAGE] = "usage",
};

struct store {
	MDB_env *env;
	MDB_dbi dbi[STORE_DB__COUNT];
	bool have_db[STORE_DB__COUNT]; /* false only in a read-only store that lacks it */
	pthread_rwlock_t map_lock;     /* read side: any open txn; write side: map resize */
	size_t max_map_size;	       /* bytes, a multiple of the page size */
	bool read_only;
	unsigned version;
	bool have_secret; /* false only in a read-only store at schema version 0 */
	uint8_t secret[STORE_SECRET_LEN];
	char *path;
};

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	bool map_full; /* an operation hit MDB_MAP_FULL: the txn must be aborted and rerun */
};

/* The store whose map lock this thread holds for its outermost open transaction. */
static __thread const struct store *tls_store;
static __thread unsigned tls_depth;

/* Maps an LMDB or system error code to a negative errno; logs the unexpected ones. */
static int store_err(const struct store *s, struct store_txn *t, int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		if (t)
			t->map_full = true;
		return -ENOSPC;
	case MDB_BAD_VALSIZE: /* an empty key, or one longer than LMDB's 511 bytes */
		return -EINVAL;
	}
	log_warnx("store %s: %s: %s", s->path, what, mdb_strerror(rc));
	return rc > 0 ? -rc : -EIO;
}

/*
 * How a transaction holds the map lock: nested when this thread already holds it for the same
 * store (no second acquisition), outer when the thread held no store transaction at all.
 */
struct map_hold {
	bool nested;
	bool outer;
};

static void map_enter(struct store *s, struct map_hold *h)
{
	h->nested = tls_store == s;
	h->outer = tls_store == NULL;
	if (!h->nested)
		pthread_rwlock_rdlock(&s->map_lock);
	if (h->nested || h->outer) {
		tls_store = s;
		tls_depth++;
	}
}

static void map_leave(struct store *s, const struct map_hold *h)
{
	if ((h->nested || h->outer) && --tls_depth == 0)
		tls_store = NULL;
	if (!h->nested)
		pthread_rwlock_unlock(&s->map_lock);
}

static size_t map_size_now(struct store *s)
{
	MDB_envinfo info;

	mdb_env_info(s->env, &info);
	return info.me_mapsize;
}

/* Doubles the map (up to max_map_size) unless someone grew it since it was seen full. */
static int map_grow(struct store *s, size_t seen)
{
	size_t cur, want;
	int rc = 0;

	pthread_rwlock_wrlock(&s->map_lock);
	cur = map_size_now(s);
	if (cur != seen)
		goto out;
	if (cur >= s->max_map_size) {
		log_warnx("store %s: map full at %zu MiB, the limit set by store.max_map_size_mb: "
			  "raise store.max_map_size_mb",
			  s->path, cur >> 20);
		rc = -ENOSPC;
		goto out;
	}
	want = cur > s->max_map_size / 2 ? s->max_map_size : cur * 2;
	rc = store_err(s, NULL, mdb_env_set_mapsize(s->env, want), "grow map");
	if (!rc)
		log_info("store %s: map grown from %zu KiB to %zu KiB", s->path, cur >> 10,
			 map_size_now(s) >> 10);
out:
	pthread_rwlock_unlock(&s->map_lock);
	return rc;
}

/* Another process grew the map past ours (MDB_MAP_RESIZED): adopt its size. */
static int map_adopt(struct store *s)
{
	int rc;

	pthread_rwlock_wrlock(&s->map_lock);
	rc = store_err(s, NULL, mdb_env_set_mapsize(s->env, 0), "adopt map size");
	pthread_rwlock_unlock(&s->map_lock);
	return rc;
}

enum txn_end {
	TXN_DONE = 0, /* *rc is the result */
	TXN_MAP_FULL, /* aborted: grow the map and run again */
	TXN_RESIZED,  /* not begun: adopt the new map size and run again */
};

/*
 * Runs fn in one transaction. Write transactions commit when fn returns >= 0; read ones end
 * with an abort, except when keep_dbis asks for a commit so that the database handles they
 * opened stay valid (LMDB closes those of an aborted transaction).
 */
static enum txn_end txn_run(struct store *s, unsigned flags, bool keep_dbis, store_txn_fn fn,
			    void *arg, int *rc)
{
	struct store_txn t = {.s = s};
	int mrc = mdb_txn_begin(s->env, NULL, flags, &t.txn);

	if (mrc == MDB_MAP_RESIZED)
		return TXN_RESIZED;
	if (mrc) {
		*rc = store_err(s, NULL, mrc, "begin transaction");
		return TXN_DONE;
	}
	*rc = fn(&t, arg);
	if (t.map_full || *rc < 0 || ((flags & MDB_RDONLY) && !keep_dbis)) {
		mdb_txn_abort(t.txn);
		return t.map_full ? TXN_MAP_FULL : TXN_DONE;
	}
	mrc = mdb_txn_commit(t.txn); /* frees the txn, also on failure */
	if (mrc == MDB_MAP_FULL)
		return TXN_MAP_FULL;
	if (mrc)
		*rc = store_err(s, NULL, mrc, "commit");
	return TXN_DONE;
}

/* txn_run under the map lock, growing or adopting the map and rerunning fn as needed. */
static int txn_loop(struct store *s, unsigned flags, bool keep_dbis, store_txn_fn fn, void *arg)
{
	unsigned resized = 0;
	int rc = 0;

	for (;;) {
		struct map_hold h;
		enum txn_end end;
		size_t seen;

		map_enter(s, &h);
		end = txn_run(s, flags, keep_dbis, fn, arg, &rc);
		seen = map_size_now(s);
		map_leave(s, &h);
		if (end == TXN_DONE)
			return rc;
		if (!h.outer) {
			log_warnx(
			    "store %s: map %s inside another transaction's callback, where it "
			    "cannot be resized",
			    s->path, end == TXN_MAP_FULL ? "full" : "resized");
			return end == TXN_MAP_FULL ? -ENOSPC : -EAGAIN;
		}
		if (end == TXN_RESIZED && ++resized > STORE_RESIZE_RETRIES)
			return -EAGAIN;
		rc = end == TXN_RESIZED ? map_adopt(s) : map_grow(s, seen);
		if (rc)
			return rc;
	}
}

int store_read(struct store *s, store_txn_fn fn, void *arg)
{
	return txn_loop(s, MDB_RDONLY, false, fn, arg);
}

int store_write(struct store *s, store_txn_fn fn, void *arg)
{
	if (s->read_only)
		return -EROFS;
	return txn_loop(s, 0, false, fn, arg);
}

static int db_handle(struct store_txn *t, enum store_db db, MDB_dbi *dbi)
{
	if ((unsigned)db >= STORE_DB__COUNT)
		return -EINVAL;
	if (!t->s->have_db[db])
		return -ENOENT;
	*dbi = t->s->dbi[db];
	return 0;
}

int store_get_ref(struct store_txn *t, enum store_db db, const void *k, size_t klen, const void **v,
		  size_t *len)
{
	MDB_val key = {klen, (void *)k}, val;
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi);

	if (rc)
		return rc;
	rc = mdb_get(t->txn, dbi, &key, &val);
	if (rc)
		return store_err(t->s, t, rc, "get");
	*v = val.mv_data;
	*len = val.mv_size;
	return 0;
}

int store_get(struct store_txn *t, enum store_db db, const void *k, size_t klen, void *out,
	      size_t cap, size_t *len)
{
	const void *v = NULL;
	size_t n = 0;
	int rc = store_get_ref(t, db, k, klen, &v, &n);

	if (rc)
		return rc;
	if (len)
		*len = n;
	if (n > cap)
		return -EMSGSIZE;
	if (n)
		memcpy(out, v, n);
	return 0;
}

int store_put(struct store_txn *t, enum store_db db, const void *k, size_t klen, const void *v,
	      size_t vlen, unsigned flags)
{
	MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi);

	if (rc)
		return rc;
	if (flags & ~STORE_NOOVERWRITE)
		return -EINVAL;
	rc = mdb_put(t->txn, dbi, &key, &val, (flags & STORE_NOOVERWRITE) ? MDB_NOOVERWRITE : 0);
	return rc ? store_err(t->s, t, rc, "put") : 0;
}

int store_del(struct store_txn *t, enum store_db db, const void *k, size_t klen)
{
	MDB_val key = {klen, (void *)k};
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi);

	if (rc)
		return rc;
	rc = mdb_del(t->txn, dbi, &key, NULL);
	return rc ? store_err(t->s, t, rc, "delete") : 0;
}

int store_iter(struct store_txn *t, enum store_db db, const void *start, size_t startlen,
	       store_iter_fn cb, void *arg)
{
	MDB_cursor_op op = MDB_FIRST;
	MDB_val k = {0}, v;
	MDB_cursor *c;
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi);

	if (rc)
		return rc == -ENOENT ? 0 : rc; /* a database a read-only store lacks is empty */
	rc = mdb_cursor_open(t->txn, dbi, &c);
	if (rc)
		return store_err(t->s, t, rc, "open cursor");
	if (start && startlen) {
		k.mv_data = (void *)start;
		k.mv_size = startlen;
		op = MDB_SET_RANGE;
	}
	for (;; op = MDB_NEXT) {
		rc = mdb_cursor_get(c, &k, &v, op);
		if (rc) {
			rc = rc == MDB_NOTFOUND ? 0 : store_err(t->s, t, rc, "iterate");
			break;
		}
		rc = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		if (rc) {
			rc = rc > 0 ? 0 : rc;
			break;
		}
	}
	mdb_cursor_close(c);
	return rc;
}

int store_count(struct store_txn *t, enum store_db db, size_t *count)
{
	MDB_stat st;
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi);

	*count = 0;
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	rc = mdb_stat(t->txn, dbi, &st);
	if (rc)
		return store_err(t->s, t, rc, "stat");
	*count = st.ms_entries;
	return 0;
}

unsigned store_schema_version(const struct store *s)
{
	return s->version;
}

unsigned store_latest_version(void)
{
	return tg_migrations_count ? tg_migrations[tg_migrations_count - 1].version : 0;
}

const uint8_t *store_hash_secret(const struct store *s)
{
	return s->have_secret ? s->secret : NULL;
}

void store_map_usage(struct store *s, size_t *mapped, size_t *used)
{
	struct map_hold h;
	MDB_envinfo info;
	MDB_stat st;

	map_enter(s, &h);
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	map_leave(s, &h);
	*mapped = info.me_mapsize;
	*used = ((size_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* Opens (read-only: finds) every named database in the start-up transaction. */
static int open_dbis(struct store_txn *t, bool read_only)
{
	struct store *s = t->s;

	for (unsigned i = 0; i < STORE_DB__COUNT; i++) {
		int rc =
		    mdb_dbi_open(t->txn, store_db_names[i], read_only ? 0 : MDB_CREATE, &s->dbi[i]);

		s->have_db[i] = rc == 0;
		if (rc == MDB_NOTFOUND && read_only)
			continue;
		if (rc)
			return store_err(s, t, rc, "open database");
	}
	return 0;
}

static uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The recorded schema version; a store without one (new, or empty) is at version 0. */
static int read_version(struct store_txn *t, unsigned *version)
{
	const void *v;
	size_t n;
	int rc =
	    store_get_ref(t, STORE_DB_META, STORE_META_SCHEMA, strlen(STORE_META_SCHEMA), &v, &n);

	*version = 0;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (n != 4) {
		log_warnx("store %s: %s is %zu bytes, expected 4", t->s->path, STORE_META_SCHEMA,
			  n);
		return -EIO;
	}
	*version = (unsigned)le_get(v, 4);
	return 0;
}

static int read_secret(struct store_txn *t)
{
	struct store *s = t->s;
	const void *v;
	size_t n;
	int rc =
	    store_get_ref(t, STORE_DB_META, STORE_META_SECRET, strlen(STORE_META_SECRET), &v, &n);

	s->have_secret = false;
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	if (n != STORE_SECRET_LEN) {
		log_warnx("store %s: %s is %zu bytes, expected %d", s->path, STORE_META_SECRET, n,
			  STORE_SECRET_LEN);
		return -EIO;
	}
	memcpy(s->secret, v, n);
	s->have_secret = true;
	return 0;
}

/* Applies tg_migrations[from .. to-1] and records version to. */
static int migrate(struct store_txn *t, unsigned from, unsigned to)
{
	uint8_t ver[4];
	int rc;

	for (unsigned i = from; i < to; i++) {
		const struct migration *m = &tg_migrations[i];

		rc = m->apply(t);
		if (rc) {
			if (!t->map_full)
				log_warnx("store %s: migration %04u (%s) failed: %s", t->s->path,
					  m->version, m->name, strerror(-rc));
			return rc;
		}
	}
	for (unsigned i = 0; i < sizeof(ver); i++)
		ver[i] = (uint8_t)(to >> (8 * i));
	return store_put(t, STORE_DB_META, STORE_META_SCHEMA, strlen(STORE_META_SCHEMA), ver,
			 sizeof(ver), 0);
}

struct open_ctx {
	unsigned target; /* version to migrate to */
	unsigned found;	 /* version the store had */
	bool read_only;
};

static int open_txn(struct store_txn *t, void *arg)
{
	struct open_ctx *c = arg;
	int rc = open_dbis(t, c->read_only);

	if (!rc)
		rc = read_version(t, &c->found);
	if (rc)
		return rc;
	if (c->found > store_latest_version())
		return -EPROTO;
	t->s->version = c->found;
	if (!c->read_only && c->found < c->target) {
		rc = migrate(t, c->found, c->target);
		if (rc)
			return rc;
		t->s->version = c->target;
	}
	return read_secret(t);
}

/* mkdir -p with mode 0700; the last component must end up a directory. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	struct stat st;

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		if (c == '\0')
			break;
		*p = c;
	}
	if (stat(path, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int env_open(struct store *s, const struct store_opts *o)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t map = o->map_size ? o->map_size : STORE_DEFAULT_MAP;
	size_t max = o->max_map_size ? o->max_map_size : STORE_DEFAULT_MAX_MAP;
	unsigned flags = MDB_NOTLS;
	int rc;

	if (o->read_only)
		flags |= MDB_RDONLY;
	else if (o->sync == STORE_SYNC_META)
		flags |= MDB_NOMETASYNC;
	else if (o->sync == STORE_SYNC_NONE)
		flags |= MDB_NOSYNC;
	else if (o->sync != STORE_SYNC_FULL)
		return -EINVAL;
	map = (map + page - 1) / page * page;
	max = max / page * page;
	s->max_map_size = max < map ? map : max;
	rc = mdb_env_create(&s->env);
	if (!rc)
		rc = mdb_env_set_maxdbs(s->env, STORE_DB__COUNT);
	if (!rc)
		rc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS);
	if (!rc)
		rc = mdb_env_set_mapsize(s->env, map);
	if (!rc)
		rc = mdb_env_open(s->env, s->path, flags, 0600);
	/* Read-only callers (migrate --status) report an absent store themselves. */
	if (rc == ENOENT && o->read_only)
		return -ENOENT;
	return rc ? store_err(s, NULL, rc, "open") : 0;
}

static int store_init(struct store *s, const struct store_opts *o)
{
	pthread_rwlockattr_t attr;
	int rc;

	s->read_only = o->read_only;
	s->path = strdup(o->path);
	if (!s->path)
		return -ENOMEM;
	rc = -pthread_rwlockattr_init(&attr);
	if (rc)
		return rc;
	/* Writer preference: a pending growth holds back new transactions, not the reverse. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = -pthread_rwlock_init(&s->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return rc;
}

static void log_too_new(const struct store *s, unsigned found)
{
	log_warnx("store at %s has schema version %u, this tollgated knows up to %u: upgrade "
		  "tollgated or use a store it wrote",
		  s->path, found, store_latest_version());
}

struct store *store_open(const struct store_opts *o)
{
	struct open_ctx c = {0};
	struct store *s = NULL;
	struct stat st;
	int rc;

	if (!o || !o->path || !*o->path || o->target_version > store_latest_version()) {
		errno = EINVAL;
		return NULL;
	}
	c.target = o->target_version ? o->target_version : store_latest_version();
	c.read_only = o->read_only;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	rc = store_init(s, o);
	if (rc)
		goto fail_init;
	if (o->read_only)
		rc = stat(o->path, &st) ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	else
		rc = mkdir_p(o->path);
	if (!rc)
		rc = env_open(s, o);
	if (!rc)
		rc = txn_loop(s, o->read_only ? MDB_RDONLY : 0, true, open_txn, &c);
	if (rc == -EPROTO)
		log_too_new(s, c.found);
	if (rc)
		goto fail;
	if (s->version != c.found)
		log_info("store %s: migrated from schema version %u to %u", s->path, c.found,
			 s->version);
	return s;
fail:
	pthread_rwlock_destroy(&s->map_lock);
fail_init:
	if (s->env)
		mdb_env_close(s->env);
	free(s->path);
	free(s);
	errno = -rc;
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->map_lock);
	explicit_bzero(s->secret, sizeof(s->secret));
	free(s->path);
	free(s);
}

/*
 * Group-commit writer. Appenders copy records into nodes linked in sequence order; the writer
 * thread detaches up to max_batch of them, writes them in one transaction with MDB_APPEND
 * (keys only grow, so pages fill completely), and on success frees them and publishes the
 * batch's last sequence. On failure the batch goes back to the head of the queue and is retried
 * after a backoff, so a transient error (a full disk freed later) loses nothing.
 */
#define WRITER_REC_MAX	      4096
#define WRITER_BACKOFF_MIN_NS 10000000LL   /* 10 ms */
#define WRITER_BACKOFF_MAX_NS 1000000000LL /* 1 s */
#define WRITER_STOP_ATTEMPTS  5		   /* failed commits while stopping before giving up */

/* Batches committed by any writer: for tests/unit/test_store.c only, not part of store.h. */
atomic_ulong store_writer_debug_batches;

struct wrec {
	struct wrec *next;
	uint64_t seq;
	int64_t queued_ns; /* CLOCK_MONOTONIC when appended */
	size_t len;
	unsigned char data[];
};

struct store_writer {
	struct store *s;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work;	  /* to the writer thread: first record, full batch, or stop */
	pthread_cond_t room;	  /* to appenders: nheld went below queue_cap, or stop */
	pthread_cond_t done;	  /* to waiters: committed advanced, a commit failed, or exit */
	struct wrec *head, *tail; /* queued, not yet in a batch */
	size_t nqueued;		  /* records in head..tail */
	size_t nheld;		  /* queued plus the batch being written: at most queue_cap */
	uint64_t next_seq;
	_Atomic uint64_t committed;
	int err; /* of the last failed commit; 0 after a success */
	bool stopping;
	bool exited;
	unsigned max_batch, max_delay_us, queue_cap;
};

struct wbatch {
	struct wrec *first, *last;
	size_t n;
};

static void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static int batch_txn(struct store_txn *t, void *arg)
{
	const struct wbatch *b = arg;
	const struct wrec *r = b->first;
	MDB_dbi dbi = t->s->dbi[STORE_DB_USAGE];

	for (size_t i = 0; i < b->n; i++, r = r->next) {
		uint8_t key[8];
		MDB_val k = {sizeof(key), key}, v = {r->len, (void *)r->data};
		int rc;

		be64_put(key, r->seq);
		rc = mdb_put(t->txn, dbi, &k, &v, MDB_APPEND);
		if (rc)
			return store_err(t->s, t, rc, "append usage");
	}
	return 0;
}

static void timespec_at(int64_t mono_ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(mono_ns / 1000000000);
	ts->tv_nsec = (long)(mono_ns % 1000000000);
}

/* Waits until a batch is due (lock held); false when stopping with nothing left. */
static bool writer_collect(struct store_writer *w)
{
	struct timespec ts;
	int64_t due;

	while (!w->head && !w->stopping)
		pthread_cond_wait(&w->work, &w->mu);
	if (!w->head)
		return false;
	due = w->head->queued_ns + (int64_t)w->max_delay_us * 1000;
	timespec_at(due, &ts);
	while (w->nqueued < w->max_batch && !w->stopping && tg_now_mono_ns() < due)
		pthread_cond_timedwait(&w->work, &w->mu, &ts);
	return true;
}

/* Detaches up to max_batch records from the head of the queue (lock held). */
static void writer_take(struct store_writer *w, struct wbatch *b)
{
	b->first = b->last = w->head;
	b->n = 1;
	while (b->n < w->max_batch && b->last->next) {
		b->last = b->last->next;
		b->n++;
	}
	w->head = b->last->next;
	if (!w->head)
		w->tail = NULL;
	b->last->next = NULL;
	w->nqueued -= b->n;
}

static void wrecs_free(struct wrec *r)
{
	while (r) {
		struct wrec *next = r->next;

		free(r);
		r = next;
	}
}

/* A commit failed: put the batch back in front and wait a while (lock held). */
static void writer_retry_later(struct store_writer *w, struct wbatch *b, int err, unsigned n)
{
	int64_t delay = WRITER_BACKOFF_MIN_NS << (n < 7 ? n - 1 : 6);
	struct timespec ts;

	b->last->next = w->head;
	w->head = b->first;
	if (!w->tail)
		w->tail = b->last;
	w->nqueued += b->n;
	w->err = err;
	pthread_cond_broadcast(&w->done);
	if ((n & (n - 1)) == 0) /* the 1st, 2nd, 4th, 8th... failure in a row: bounded noise */
		log_warnx("store %s: committing %zu usage records failed %u times (%s); retrying",
			  w->s->path, w->nqueued, n, strerror(-err));
	if (delay > WRITER_BACKOFF_MAX_NS)
		delay = WRITER_BACKOFF_MAX_NS;
	pthread_mutex_unlock(&w->mu);
	timespec_at(delay, &ts);
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&w->mu);
}

/* Stopping and the store keeps refusing: give the records up rather than hang (lock held). */
static void writer_give_up(struct store_writer *w)
{
	log_error("store %s: %zu usage records could not be committed before stopping (%s) and "
		  "are lost",
		  w->s->path, w->nqueued, strerror(-w->err));
	wrecs_free(w->head);
	w->head = w->tail = NULL;
	w->nheld -= w->nqueued;
	w->nqueued = 0;
}

static void *writer_main(void *arg)
{
	struct store_writer *w = arg;
	unsigned failures = 0;

	pthread_mutex_lock(&w->mu);
	while (writer_collect(w)) {
		struct wbatch b;
		int rc;

		writer_take(w, &b);
		pthread_mutex_unlock(&w->mu);
		rc = store_write(w->s, batch_txn, &b);
		pthread_mutex_lock(&w->mu);
		if (rc < 0) {
			writer_retry_later(w, &b, rc, ++failures);
			if (w->stopping && failures >= WRITER_STOP_ATTEMPTS)
				writer_give_up(w);
			continue;
		}
		failures = 0;
		w->err = 0;
		w->nheld -= b.n;
		atomic_store(&w->committed, b.last->seq);
		atomic_fetch_add(&store_writer_debug_batches, 1);
		pthread_cond_broadcast(&w->room);
		pthread_cond_broadcast(&w->done);
		pthread_mutex_unlock(&w->mu);
		wrecs_free(b.first);
		pthread_mutex_lock(&w->mu);
	}
	w->exited = true;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* The highest sequence in STORE_DB_USAGE, 0 if it is empty. */
static int last_seq_txn(struct store_txn *t, void *arg)
{
	uint64_t *last = arg;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(t->txn, t->s->dbi[STORE_DB_USAGE], &c);

	if (rc)
		return store_err(t->s, t, rc, "open cursor");
	*last = 0;
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == 8) {
		for (int i = 0; i < 8; i++)
			*last = *last << 8 | ((const uint8_t *)k.mv_data)[i];
	} else if (rc == 0) {
		log_warnx("store %s: usage key of %zu bytes, expected 8", t->s->path, k.mv_size);
		rc = -EIO;
	} else {
		rc = rc == MDB_NOTFOUND ? 0 : store_err(t->s, t, rc, "last usage record");
	}
	mdb_cursor_close(c);
	return rc;
}

static int writer_init_sync(struct store_writer *w)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);

	if (rc)
		return -rc;
	/* Deadlines come from tg_now_mono_ns(): wall-clock steps must not stretch a batch. */
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!rc)
		rc = pthread_mutex_init(&w->mu, NULL);
	if (!rc)
		rc = pthread_cond_init(&w->work, &ca);
	if (!rc)
		rc = pthread_cond_init(&w->room, &ca);
	if (!rc)
		rc = pthread_cond_init(&w->done, &ca);
	pthread_condattr_destroy(&ca);
	return -rc;
}

static void writer_free(struct store_writer *w)
{
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	wrecs_free(w->head);
	free(w);
}

struct store_writer *store_writer_start(struct store *s, const struct store_writer_opts *o)
{
	struct store_writer *w;
	uint64_t last = 0;
	int rc;

	if (s->read_only || !s->have_db[STORE_DB_USAGE]) {
		errno = EROFS;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->s = s;
	w->max_batch = o && o->max_batch ? o->max_batch : 4096;
	w->max_delay_us = o && o->max_delay_us ? o->max_delay_us : 2000;
	w->queue_cap = o && o->queue_cap ? o->queue_cap : 65536;
	rc = store_read(s, last_seq_txn, &last);
	if (rc)
		goto fail;
	w->next_seq = last + 1;
	atomic_store(&w->committed, last);
	rc = writer_init_sync(w);
	if (rc)
		goto fail;
	rc = -pthread_create(&w->thread, NULL, writer_main, w);
	if (rc)
		goto fail_sync;
	return w;
fail_sync:
	writer_free(w);
	errno = -rc;
	return NULL;
fail:
	free(w);
	errno = -rc;
	return NULL;
}

void store_writer_stop(struct store_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stopping = true;
	pthread_cond_signal(&w->work);
	pthread_cond_broadcast(&w->room);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	writer_free(w);
}

int store_writer_append(struct store_writer *w, const void *rec, size_t len, uint64_t *seq)
{
	struct wrec *r;

	if (len > WRITER_REC_MAX)
		return -EMSGSIZE;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return -ENOMEM;
	if (len)
		memcpy(r->data, rec, len);
	r->len = len;
	r->next = NULL;
	r->queued_ns = tg_now_mono_ns();
	pthread_mutex_lock(&w->mu);
	while (w->nheld >= w->queue_cap && !w->stopping)
		pthread_cond_wait(&w->room, &w->mu);
	if (w->stopping) {
		pthread_mutex_unlock(&w->mu);
		free(r);
		return -ESHUTDOWN;
	}
	r->seq = w->next_seq++;
	if (w->tail)
		w->tail->next = r;
	else
		w->head = r;
	w->tail = r;
	w->nheld++;
	/* The writer waits only for the first record of a batch or for a full one. */
	if (++w->nqueued == 1 || w->nqueued == w->max_batch)
		pthread_cond_signal(&w->work);
	if (seq)
		*seq = r->seq;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

uint64_t store_writer_committed(struct store_writer *w)
{
	return atomic_load(&w->committed);
}

int store_writer_wait(struct store_writer *w, uint64_t seq, int timeout_ms)
{
	int64_t due = tg_now_mono_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec ts;
	int rc = 0;

	timespec_at(due, &ts);
	pthread_mutex_lock(&w->mu);
	while (atomic_load(&w->committed) < seq) {
		if (w->exited) {
			rc = w->err ? w->err : -ESHUTDOWN;
			break;
		}
		if (timeout_ms >= 0 && tg_now_mono_ns() >= due) {
			rc = w->err ? w->err : -ETIMEDOUT;
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&w->done, &w->mu);
		else
			pthread_cond_timedwait(&w->done, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

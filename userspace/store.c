/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store over LMDB (see store.h): opening and migrating, transactions as callbacks and the
 * growth of the memory map; the group-commit writer for usage records is in store_writer.c.
 * These two files and store_internal.h are the only ones that see lmdb.h; LMDB's codes are
 * turned into negative errnos here.
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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "migrations.h"
#include "store_internal.h"

#define STORE_DEFAULT_MAP     ((size_t)64 << 20)
#define STORE_DEFAULT_MAX_MAP ((size_t)64 << 30)
#define STORE_MAX_READERS     1024 /* request threads each may hold a read transaction */
#define STORE_RESIZE_RETRIES  16

const char *const store_db_names[STORE_DB__COUNT] = {
    [STORE_DB_META] = "meta",	    [STORE_DB_KEYS] = "keys",	  [STORE_DB_TIERS] = "tiers",
    [STORE_DB_OWNERS] = "owners",   [STORE_DB_TOKENS] = "tokens", [STORE_DB_USAGE] = "usage",
    [STORE_DB_ROLLUPS] = "rollups", [STORE_DB_BUDGET] = "budget",  [STORE_DB_LIMITS] = "limits",
};

/* The store whose map lock this thread holds for its outermost open transaction. */
static __thread const struct store *tls_store;
static __thread unsigned tls_depth;

int store_err(const struct store *s, struct store_txn *t, int rc, const char *what)
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
/*
 * Write transactions choose at commit whether it syncs. mdb_env_set_flags() is called while
 * this transaction holds LMDB's writer lock, so no other commit can read the flag between
 * the change and this commit; the syncer forces its syncs and never reads it.
 */
static void txn_choose_sync(struct store *s, bool lazy)
{
	if (s->lazy_ok)
		mdb_env_set_flags(s->env, MDB_NOSYNC, lazy ? 1 : 0);
}

static enum txn_end txn_run(struct store *s, unsigned flags, bool keep_dbis, bool lazy,
			    store_txn_fn fn, void *arg, int *rc)
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
	if (!(flags & MDB_RDONLY))
		txn_choose_sync(s, lazy);
	mrc = mdb_txn_commit(t.txn); /* frees the txn, also on failure */
	if (mrc == MDB_MAP_FULL)
		return TXN_MAP_FULL;
	if (mrc)
		*rc = store_err(s, NULL, mrc, "commit");
	else if (lazy)
		atomic_fetch_add(&s->lazy_commits, 1);
	return TXN_DONE;
}

/* txn_run under the map lock, growing or adopting the map and rerunning fn as needed. */
static int txn_loop(struct store *s, unsigned flags, bool keep_dbis, bool lazy, store_txn_fn fn,
		    void *arg)
{
	unsigned resized = 0;
	int rc = 0;

	for (;;) {
		struct map_hold h;
		enum txn_end end;
		size_t seen;

		map_enter(s, &h);
		end = txn_run(s, flags, keep_dbis, lazy, fn, arg, &rc);
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
	return txn_loop(s, MDB_RDONLY, false, false, fn, arg);
}

int store_write(struct store *s, store_txn_fn fn, void *arg)
{
	if (s->read_only)
		return -EROFS;
	return txn_loop(s, 0, false, false, fn, arg);
}

int store_write_lazy(struct store *s, store_txn_fn fn, void *arg)
{
	if (s->read_only)
		return -EROFS;
	return txn_loop(s, 0, false, s->syncer != NULL, fn, arg);
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

int store_update(struct store_txn *t, enum store_db db, const void *k, size_t klen,
		 store_update_fn fn, void *arg)
{
	MDB_val key = {klen, (void *)k}, val = {0, NULL};
	uint8_t out[STORE_UPDATE_MAX];
	MDB_cursor *c = NULL;
	size_t outlen = 0;
	MDB_dbi dbi;
	int rc = db_handle(t, db, &dbi), found;

	if (rc)
		return rc;
	rc = mdb_cursor_open(t->txn, dbi, &c);
	if (rc)
		return store_err(t->s, t, rc, "cursor");
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_KEY);
	if (rc && rc != MDB_NOTFOUND) {
		rc = store_err(t->s, t, rc, "get");
		goto out;
	}
	found = rc == 0;
	rc = fn(found ? val.mv_data : NULL, found ? val.mv_size : 0, out, sizeof(out), &outlen,
		arg);
	if (rc)
		goto out;
	val.mv_size = outlen;
	val.mv_data = out;
	/* found and the same size: overwritten where the cursor stands, no second walk */
	rc = mdb_cursor_put(c, &key, &val, found ? MDB_CURRENT : 0);
	if (rc)
		rc = store_err(t->s, t, rc, "put");
out:
	mdb_cursor_close(c);
	return rc;
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

/*
 * Opens (read-only: finds) every named database in the start-up transaction. A writable open
 * creates the ones missing, so a database added to enum store_db appears in existing stores
 * without a migration step (empty, as a new store would have it).
 */
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
	else if (o->sync_interval_ms)
		flags |= MDB_WRITEMAP; /* see store_opts.sync_interval_ms */
	if (o->read_only)
		; /* nothing to sync */
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
		rc = txn_loop(s, o->read_only ? MDB_RDONLY : 0, true, false, open_txn, &c);
	if (rc == -EPROTO)
		log_too_new(s, c.found);
	if (rc)
		goto fail;
	if (s->version != c.found)
		log_info("store %s: migrated from schema version %u to %u", s->path, c.found,
			 s->version);
	if (!o->read_only && o->sync_interval_ms) {
		/* under store.sync=none every commit is lazy already: nothing to switch */
		s->lazy_ok = o->sync != STORE_SYNC_NONE;
		rc = store_syncer_start(s, o->sync_interval_ms, &s->syncer);
		if (rc)
			goto fail;
	}
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
	store_syncer_stop(s->syncer); /* syncs what lazy commits left unsynced */
	mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->map_lock);
	explicit_bzero(s->secret, sizeof(s->secret));
	free(s->path);
	free(s);
}

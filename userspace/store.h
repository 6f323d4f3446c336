/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The store: tollgate's truth, in LMDB. This module is the only one that includes lmdb.h;
 * LMDB's error codes stay inside it (MDB_NOTFOUND becomes -ENOENT, MDB_MAP_FULL at the size
 * cap becomes -ENOSPC). Everyone else sees named databases of byte strings, read and write
 * transactions run as callbacks, and a group-commit writer for high-rate records.
 *
 * Writes: store_write() runs the callback in one write transaction and commits it, so a
 * change is all or nothing. If the map fills up, the transaction is aborted, the map grown
 * (doubling, up to max_map_size) and the callback run again from the start: callbacks must
 * not have side effects outside the transaction.
 *
 * Threads: any thread may read or write. LMDB allows one writer at a time; store_write()
 * and the group-commit writer take turns.
 */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_db {
	STORE_DB_META = 0, /* schema_version, hash_secret, created_at */
	STORE_DB_KEYS,	   /* key id -> key_record (model.h) */
	STORE_DB_TIERS,	   /* tier name -> tier */
	STORE_DB_OWNERS,   /* "team:x" -> owner record (kind, created_at, key count) */
	STORE_DB_TOKENS,   /* admin token id -> token_record */
	STORE_DB_USAGE,	   /* big-endian u64 sequence -> usage record (group commit) */
	STORE_DB_ROLLUPS,  /* per key and UTC day usage totals, kept by the usage module */
	STORE_DB_BUDGET,   /* per subject bucket rings of the limits engine (usage module) */
	STORE_DB_LIMITS,   /* "team:x" / "tenant:x" -> that subject's limits (admin API) */
	STORE_DB__COUNT,
};

/* Names of the LMDB named databases, indexed by enum store_db. */
extern const char *const store_db_names[STORE_DB__COUNT];

/* Keys in STORE_DB_META. */
#define STORE_META_SCHEMA  "schema_version" /* u32 little-endian */
#define STORE_META_SECRET  "hash_secret"    /* 16 random bytes: SipHash key for the kernel path */
#define STORE_META_CREATED "created_at"	    /* i64 little-endian Unix seconds */
/* u64 little-endian: the last usage sequence whose records STORE_DB_BUDGET includes (usage.c) */
#define STORE_META_BUDGET_SEQ "budget_seq"

/*
 * How commits reach the disk. Every commit, synced or not, is in the page cache when it
 * returns, so it survives a kill of the process; syncing matters only for a system crash or
 * power loss. store_write() follows this policy; the group-commit writer's usage batches
 * follow it only when sync_interval_ms is 0 (see store_opts).
 */
enum store_sync {
	STORE_SYNC_FULL = 0, /* fsync data and meta page at every commit */
	STORE_SYNC_META,     /* one fdatasync per commit (MDB_NOMETASYNC): integrity kept, a
				system crash may undo the last commit; the default */
	STORE_SYNC_NONE,     /* no fsync (MDB_NOSYNC): survives a process kill, not a system
				crash; for tests and benchmarks */
};

struct store_opts {
	const char *path;    /* directory holding data.mdb and lock.mdb; created if absent */
	size_t map_size;     /* initial map size in bytes (rounded up to the page size) */
	size_t max_map_size; /* the map never grows past this; then writes fail -ENOSPC */
	enum store_sync sync;
	/*
	 * 0: usage batches are synced like every other commit. Otherwise usage batches commit
	 * without a sync (still safe from a process kill) and a background thread syncs the
	 * file this often when such commits happened, so a system crash or power loss may lose
	 * the usage of the last interval (and, on a file system that reorders writes, LMDB's
	 * documented NOSYNC risk applies to that window). Commits of store_write() keep
	 * following sync. Ignored by read-only opens.
	 * The environment is then opened with MDB_WRITEMAP: a commit writes its pages into the
	 * shared file mapping instead of one pwrite() per page (7 system calls for a typical
	 * usage batch), and the data file is as large as the map (sparse). LMDB's caveat for
	 * WRITEMAP applies: a stray write through a bad pointer in this process could damage
	 * the store rather than crash.
	 */
	unsigned sync_interval_ms;
	unsigned target_version; /* migrate up to this schema version; 0 = the latest (tests) */
	bool read_only;		 /* open without migrating or writing (migrate --status) */
};

struct store;
struct store_txn; /* valid only inside the callback it was passed to */

/*
 * Opens (creating if needed) the store and applies pending migrations in one write
 * transaction. Refuses (NULL, errno EPROTO, and a log line saying which versions) a store
 * whose schema is newer than this build knows. Returns NULL and sets errno on failure.
 */
struct store *store_open(const struct store_opts *opts);
/* Closes the store; the writer, if any, must be stopped first. Accepts NULL. */
void store_close(struct store *s);

/* Schema version of the open store, and the newest version this build knows. */
unsigned store_schema_version(const struct store *s);
unsigned store_latest_version(void);
/* Bytes currently mapped, and bytes of the map in use (pages * page size). */
void store_map_usage(struct store *s, size_t *mapped, size_t *used);
/* The 16-byte hash secret from STORE_DB_META (created by the first migration). */
const uint8_t *store_hash_secret(const struct store *s);

typedef int (*store_txn_fn)(struct store_txn *t, void *arg);

/*
 * Runs fn in a read-only snapshot; returns fn's return value, or -errno if the transaction
 * could not begin.
 */
int store_read(struct store *s, store_txn_fn fn, void *arg);
/*
 * Runs fn in a write transaction; commits when fn returns >= 0, aborts otherwise. Returns
 * fn's value, or -ENOSPC when the map is at max_map_size, or another -errno.
 */
int store_write(struct store *s, store_txn_fn fn, void *arg);

/* Copies the value of k into out (cap bytes); *len gets its length. -ENOENT, -EMSGSIZE. */
int store_get(struct store_txn *t, enum store_db db, const void *k, size_t klen, void *out,
	      size_t cap, size_t *len);
/* Like store_get, but borrows the value: *v is valid until the transaction ends. */
int store_get_ref(struct store_txn *t, enum store_db db, const void *k, size_t klen, const void **v,
		  size_t *len);
#define STORE_NOOVERWRITE 1u /* store_put fails -EEXIST if the key exists */
int store_put(struct store_txn *t, enum store_db db, const void *k, size_t klen, const void *v,
	      size_t vlen, unsigned flags);
/*
 * Read-modify-write of one record with one tree walk: fn gets the current value (old NULL
 * and oldlen 0 when k is absent; borrowed for the call) and writes the new one into out
 * (cap bytes), setting *outlen; it returns 0 to store it or a negative errno to leave the
 * record as it was (store_update then returns that). For counters updated in every batch.
 */
typedef int (*store_update_fn)(const void *old, size_t oldlen, void *out, size_t cap,
			       size_t *outlen, void *arg);
#define STORE_UPDATE_MAX 256 /* cap given to fn */
int store_update(struct store_txn *t, enum store_db db, const void *k, size_t klen,
		 store_update_fn fn, void *arg);
/* Deletes k; -ENOENT if absent. */
int store_del(struct store_txn *t, enum store_db db, const void *k, size_t klen);

/*
 * Calls cb for each record of db in key order, starting at the first key >= start (all
 * records when start is NULL). k and v are borrowed for the call only. cb returns 0 to go
 * on, 1 to stop (store_iter then returns 0), or a negative errno to stop with that error.
 */
typedef int (*store_iter_fn)(const void *k, size_t klen, const void *v, size_t vlen, void *arg);
int store_iter(struct store_txn *t, enum store_db db, const void *start, size_t startlen,
	       store_iter_fn cb, void *arg);
/* Number of records in db. */
int store_count(struct store_txn *t, enum store_db db, size_t *count);

/*
 * Group-commit writer for high-rate records (usage metering). store_writer_append() copies
 * the record into a queue and returns at once with a sequence number; a writer thread commits
 * queued records in batches (up to max_batch per transaction) into STORE_DB_USAGE, keyed by
 * the big-endian sequence, at the latest max_delay_us after the first of a batch was queued.
 * A committed record survives a kill of the process. The queue holds queue_cap records;
 * append on a full queue waits for room (back-pressure rather than losing usage).
 *
 * on_batch, if set, runs on the writer thread inside each batch's write transaction, after
 * the batch's records are put: recs[i] and lens[i] are the n queued records in sequence
 * order, borrowed for the call. Whatever it writes through t commits with the records or not
 * at all (the usage module keeps its daily roll-ups so). A negative return aborts the
 * transaction: the batch is put back and retried after a backoff, like a failed commit, and
 * store_writer_wait() reports that error meanwhile. So the hook may run several times for
 * the same records (after a failure, or when the map grew mid-transaction) and must have no
 * effect outside t; it must not append to its own writer (that could wait for room only the
 * writer thread makes) nor open other transactions. A record it cannot use is better skipped
 * than refused: a batch refused every time stops all metering behind it.
 */
struct store_writer_opts {
	unsigned max_batch;    /* records per transaction, default 4096 */
	unsigned max_delay_us; /* 0: commit what is queued at once; 2000 without options */
	unsigned queue_cap;    /* records queued at most, default 65536 */
	int (*on_batch)(struct store_txn *t, const void *const *recs, const size_t *lens, size_t n,
			void *arg); /* NULL = none; 0 or -errno */
	void *on_batch_arg;	    /* passed to on_batch as arg */
};

struct store_writer;

/* Starts the writer thread; sequences continue after the highest one in the store. */
struct store_writer *store_writer_start(struct store *s, const struct store_writer_opts *o);
/* Commits everything queued, stops the thread, frees the writer. Accepts NULL. */
void store_writer_stop(struct store_writer *w);
/* Queues a copy of rec (len <= 4096). Returns 0 and *seq, or -errno (-EMSGSIZE, -ESHUTDOWN). */
int store_writer_append(struct store_writer *w, const void *rec, size_t len, uint64_t *seq);
/*
 * Commit hook: after each committed batch fn(committed, 0, arg) runs on the writer thread,
 * committed being store_writer_committed() after it; after a failed commit fn(committed,
 * -errno, arg), before the retry's backoff. fn must not append to this writer nor wait for
 * it (the writer waits for fn). NULL removes the hook; the change is seen from the next batch.
 */
typedef void (*store_commit_fn)(uint64_t committed, int err, void *arg);
void store_writer_on_commit(struct store_writer *w, store_commit_fn fn, void *arg);
/*
 * store_writer_append, then, if usage commits are lazy (sync_interval_ms > 0: no fsync),
 * no batch is being committed and the last commit did not fail, commits the queue (up to
 * max_batch) on the calling thread, running the batch and commit hooks there: no hand-over
 * to the writer thread when a commit is cheap. Otherwise the writer thread commits it. Returns as store_writer_append; a failed
 * inline commit is not returned but retried by the writer thread.
 */
int store_writer_append_commit(struct store_writer *w, const void *rec, size_t len,
			       uint64_t *seq);
/*
 * store_writer_append_commit for a thread that appends several records per round of its
 * event loop: the record is queued without a commit and without waking the writer thread,
 * and the caller's store_writer_flush at the end of the round commits all of them in one
 * transaction. When that could not happen anyway (commits synced, one running or failing)
 * or the queue holds a full batch, it does what store_writer_append_commit does. The caller
 * must call store_writer_flush soon after: until then nothing else commits the record.
 */
int store_writer_append_deferred(struct store_writer *w, const void *rec, size_t len,
				 uint64_t *seq);
/* Commits what is queued as store_writer_append_commit would (here, or by the thread). */
void store_writer_flush(struct store_writer *w);
/* The highest sequence in STORE_DB_USAGE (as t sees it) into *last, 0 if none. 0 or -errno. */
int store_usage_last(struct store_txn *t, uint64_t *last);
/* Highest sequence committed so far (every record <= it is in the store). */
uint64_t store_writer_committed(struct store_writer *w);
/* Waits until seq is committed or timeout_ms passes; 0, -ETIMEDOUT, or the commit error. */
int store_writer_wait(struct store_writer *w, uint64_t seq, int timeout_ms);

#endif /* TG_STORE_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What store.c (environment, transactions, map growth) and store_writer.c (the group-commit
 * writer) share: the store's and a transaction's innards and the LMDB error mapping. Private
 * to the store module, the only place lmdb.h may be seen; everyone else includes store.h.
 */
#ifndef TG_STORE_INTERNAL_H
#define TG_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define STORE_SECRET_LEN 16

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
	bool lazy_ok;		      /* lazy commits differ from synced ones (see store_write_lazy) */
	_Atomic uint64_t lazy_commits; /* lazy commits so far: the syncer syncs when this moved */
	struct store_syncer *syncer;   /* NULL when sync_interval_ms is 0 or read-only */
};

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	bool map_full; /* an operation hit MDB_MAP_FULL: the txn must be aborted and rerun */
};

/*
 * Maps an LMDB or system error code to a negative errno and logs the unexpected ones. With t,
 * MDB_MAP_FULL also marks the transaction, so that store_write() grows the map and reruns it.
 */
int store_err(const struct store *s, struct store_txn *t, int rc, const char *what);

/*
 * Like store_write(), but the commit skips the fsync that store.sync would do: it is in the
 * page cache (safe from a process kill) and on disk after the syncer's next round. For the
 * group-commit writer only, and only when sync_interval_ms > 0 (else it is store_write()).
 */
int store_write_lazy(struct store *s, store_txn_fn fn, void *arg);

/*
 * The syncer (store_sync.c): a thread that calls mdb_env_sync() every interval_ms when lazy
 * commits happened since its last round, and once more when stopped. Start returns 0 or
 * -errno; stop accepts NULL.
 */
struct store_syncer;
int store_syncer_start(struct store *s, unsigned interval_ms, struct store_syncer **out);
void store_syncer_stop(struct store_syncer *y);

#endif /* TG_STORE_INTERNAL_H */

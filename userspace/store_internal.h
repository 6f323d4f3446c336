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

#endif /* TG_STORE_INTERNAL_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Schema migrations: numbered steps, each a function run inside the store's single start-up
 * write transaction, in order, from the store's recorded version to the newest. A step
 * only uses the store_txn API (store.h) and the model encoders (model.h), never LMDB
 * directly. Steps are never edited once released: a change of layout is a new step.
 */
#ifndef TG_MIGRATIONS_H
#define TG_MIGRATIONS_H

struct store_txn;

struct migration {
	unsigned version;			/* 1, 2, 3, ... without gaps */
	const char *name;			/* what the step does, for migrate --status */
	int (*apply)(struct store_txn *t);	/* 0 or -errno; the whole start-up txn aborts on error */
};

extern const struct migration tg_migrations[];
extern const unsigned tg_migrations_count;

#endif /* TG_MIGRATIONS_H */

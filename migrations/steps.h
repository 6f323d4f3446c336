/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The migration steps, one per file (0001_initial.c, ...), gathered into tg_migrations[] by
 * migrations.c. Private to migrations/: the store sees only the table.
 */
#ifndef TG_MIGRATIONS_STEPS_H
#define TG_MIGRATIONS_STEPS_H

struct store_txn;

int migration_0001_initial(struct store_txn *t);
int migration_0002_default_tiers(struct store_txn *t);
int migration_0003_key_slots(struct store_txn *t);
int migration_0004_limits_buckets(struct store_txn *t);
int migration_0005_limit_actions(struct store_txn *t);
int migration_0006_budget_seq(struct store_txn *t);

#endif /* TG_MIGRATIONS_STEPS_H */

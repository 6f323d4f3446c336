/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The ordered list of schema migrations. A new step is a new file and a new row at the end;
 * released rows are never changed or reordered, since a store's schema version is the count
 * of rows it has applied.
 */
#include "migrations.h"
#include "steps.h"

const struct migration tg_migrations[] = {
    {1, "create the meta records (created_at, hash secret)", migration_0001_initial},
    {2, "seed the default tiers (basic, premium, enterprise)", migration_0002_default_tiers},
    {3, "give every key that is not revoked a request-rate slot", migration_0003_key_slots},
    {4, "seed the limits engine's day buckets from the daily roll-ups",
     migration_0004_limits_buckets},
    {5, "per-limit actions: key records and tiers in format 4 (version fence, no rewrite)",
     migration_0005_limit_actions},
    {6, "the limits buckets say which usage records they include (written once a second)",
     migration_0006_budget_seq},
};

const unsigned tg_migrations_count = sizeof(tg_migrations) / sizeof(tg_migrations[0]);

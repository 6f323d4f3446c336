/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 6 (issue 5): the limits engine's buckets in STORE_DB_BUDGET are written about
 * once a second instead of with every usage batch, together with the usage sequence they
 * include (STORE_META_BUDGET_SEQ); at start the records after it are added to them. Before
 * this step every committed record was already in the buckets, so the mark is the last
 * record's sequence. A tollgated from before the step would read lagging buckets as
 * complete and undercount; the version number makes the schema check refuse it by name.
 */
#include "steps.h"
#include "usage.h"

int migration_0006_budget_seq(struct store_txn *t)
{
	return usage_budget_mark(t);
}

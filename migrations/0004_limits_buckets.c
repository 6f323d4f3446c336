/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 4 (issue 5): the limits engine keeps per-subject usage buckets in
 * STORE_DB_BUDGET, written with every usage batch. A store from before has only the daily
 * roll-ups per key; this seeds the keys' and their owners' day buckets from them (the usage
 * module owns both formats), so a quota or budget counted over days does not restart at zero
 * on upgrade. In the start-up write transaction: a failure leaves the store at version 3.
 */
#include "steps.h"
#include "usage.h"

int migration_0004_limits_buckets(struct store_txn *t)
{
	return usage_budget_seed(t);
}

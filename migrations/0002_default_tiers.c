/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 2: seeds the default tiers (model_default_tiers: basic, premium, enterprise).
 * A tier that already exists under one of those names is left as it is: the operator's
 * definition wins over the default.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "steps.h"
#include "store.h"

static int seed_tier(struct store_txn *t, const struct tier *tier)
{
	uint8_t buf[MODEL_TIER_MAX];
	int n = tier_encode(tier, buf, sizeof(buf)), rc;

	if (n < 0)
		return n;
	rc = store_put(t, STORE_DB_TIERS, tier->name, strlen(tier->name), buf, (size_t)n,
		       STORE_NOOVERWRITE);
	return rc == -EEXIST ? 0 : rc;
}

int migration_0002_default_tiers(struct store_txn *t)
{
	for (size_t i = 0; i < sizeof(model_default_tiers) / sizeof(model_default_tiers[0]); i++) {
		int rc = seed_tier(t, &model_default_tiers[i]);

		if (rc)
			return rc;
	}
	return 0;
}

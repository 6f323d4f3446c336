/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 5 (issue 5, per-limit actions): key records and tiers are written in format 4,
 * which appends one action byte per limit field. Format 1-3 records stay as they are and
 * read with no per-limit action, so nothing is rewritten here: a record moves to format 4
 * the next time it is written. The step exists for its version number: a tollgated from
 * before it, which cannot decode a format 4 record and would fail to load the keys, is
 * refused by the schema check with a message naming both versions instead.
 */
#include "steps.h"

int migration_0005_limit_actions(struct store_txn *t)
{
	(void)t; /* no record changes: see above */
	return 0;
}

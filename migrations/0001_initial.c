/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 1: the meta records of a new store. The named databases themselves are created
 * by store_open before any step runs. The hash secret keys the SipHash the kernel and the
 * daemon compute over API keys; it is made once here and never changes, because every
 * stored key hash depends on it.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "steps.h"
#include "store.h"
#include "util.h"

#define SECRET_LEN 16

int migration_0001_initial(struct store_txn *t)
{
	uint8_t secret[SECRET_LEN], created[8];
	int64_t now = tg_now_unix();
	int rc;

	for (unsigned i = 0; i < sizeof(created); i++)
		created[i] = (uint8_t)((uint64_t)now >> (8 * i));
	rc = tg_getrandom(secret, sizeof(secret));
	if (rc)
		goto out;
	rc = store_put(t, STORE_DB_META, STORE_META_CREATED, strlen(STORE_META_CREATED), created,
		       sizeof(created), 0);
	if (rc)
		goto out;
	rc = store_put(t, STORE_DB_META, STORE_META_SECRET, strlen(STORE_META_SECRET), secret,
		       sizeof(secret), 0);
out:
	explicit_bzero(secret, sizeof(secret));
	return rc;
}

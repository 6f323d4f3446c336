/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Migration 3: every key record gets its request-rate slot (key_record.slot, record format
 * 2). Keys that are not revoked get the lowest slots not already held, in id order; revoked
 * keys hold none. All in the start-up write transaction, so a failure leaves the store at
 * version 2 untouched. The slots count from 0 whatever data.rate_slots is; a key beyond it
 * is reported at start (and refused with 503) until the operator raises data.rate_slots.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "steps.h"
#include "store.h"

struct slot_scan {
	char (*ids)[TG_ID_LEN + 1]; /* every key id, in store order */
	size_t n, cap;
	uint8_t *held; /* slots already held (format 2 records), one byte each */
	size_t held_cap;
	struct key_record r;
};

static int held_mark(struct slot_scan *c, uint32_t slot)
{
	if (slot >= c->held_cap) {
		size_t cap = (size_t)slot * 2 + 64;
		uint8_t *h = realloc(c->held, cap);

		if (!h)
			return -ENOMEM;
		memset(h + c->held_cap, 0, cap - c->held_cap);
		c->held = h;
		c->held_cap = cap;
	}
	c->held[slot] = 1;
	return 0;
}

static int scan_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
	struct slot_scan *c = arg;
	int rc = key_record_decode(v, vlen, &c->r);

	(void)k, (void)klen;
	if (rc)
		return rc;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		void *p = realloc(c->ids, cap * sizeof(*c->ids));

		if (!p)
			return -ENOMEM;
		c->ids = p;
		c->cap = cap;
	}
	memcpy(c->ids[c->n++], c->r.id, TG_ID_LEN + 1);
	if (!c->r.revoked_at && c->r.slot != TG_SLOT_NONE)
		return held_mark(c, c->r.slot);
	return 0;
}

/* The next slot at or after *next that no record holds. */
static uint32_t next_free(const struct slot_scan *c, uint32_t *next)
{
	while (*next < c->held_cap && c->held[*next])
		(*next)++;
	return (*next)++;
}

static int assign_one(struct store_txn *t, struct slot_scan *c, const char *id, uint32_t *next)
{
	uint8_t buf[MODEL_KEY_MAX];
	const void *v;
	size_t len;
	int rc = store_get_ref(t, STORE_DB_KEYS, id, strlen(id), &v, &len), n;

	if (rc || (rc = key_record_decode(v, len, &c->r)))
		return rc;
	if (c->r.revoked_at)
		c->r.slot = TG_SLOT_NONE;
	else if (c->r.slot == TG_SLOT_NONE)
		c->r.slot = next_free(c, next);
	n = key_record_encode(&c->r, buf, sizeof(buf));
	if (n < 0)
		return n;
	return store_put(t, STORE_DB_KEYS, id, strlen(id), buf, (size_t)n, 0);
}

int migration_0003_key_slots(struct store_txn *t)
{
	struct slot_scan *c = calloc(1, sizeof(*c));
	uint32_t next = 0;
	int rc;

	if (!c)
		return -ENOMEM;
	/* Ids first, writes after: no record is rewritten under a running cursor. */
	rc = store_iter(t, STORE_DB_KEYS, NULL, 0, scan_one, c);
	for (size_t i = 0; !rc && i < c->n; i++)
		rc = assign_one(t, c, c->ids[i], &next);
	free(c->ids);
	free(c->held);
	free(c);
	return rc;
}

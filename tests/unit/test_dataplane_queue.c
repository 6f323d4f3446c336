/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The queue's pure part (dpq_* in userspace/dataplane_queue.c): FIFOs per key with a
 * depth bound, removal from any place, deadlines. Each row is a script of operations on a
 * fresh queue with the expected result of each; times are plain numbers (the queue takes
 * them as arguments, it reads no clock).
 */
#include <errno.h>

#include "dataplane_internal.h"
#include "tg_test.h"

#define NW 8 /* waiters a script uses */

enum op_kind {
	OP_END = 0,
	OP_PUSH,     /* key, waiter, deadline -> want (0 / -errno) */
	OP_REMOVE,   /* waiter */
	OP_ORDER,    /* key -> the FIFO from head to tail, as waiter indexes ("" = no FIFO) */
	OP_EXPIRED,  /* now -> the waiter dpq_expired returns (-1: none) */
	OP_NEXT,     /* -> dpq_next_deadline */
	OP_COUNTS,   /* -> nfifos * 1000 + nwaiters */
};

struct op {
	enum op_kind kind;
	const char *key;
	int w;
	int64_t t;    /* deadline or now */
	int64_t want; /* push result, expired waiter, next deadline, counts */
	const char *order;
};

struct script {
	const char *name;
	unsigned depth;
	struct op ops[16];
};

static const struct script scripts[] = {
    {"one key keeps arrival order",
     3,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 90, 0, NULL},
      {OP_PUSH, "k1", 2, 80, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "012"},
      {OP_COUNTS, NULL, 0, 0, 1003, NULL}}},
    {"the depth bound is per key",
     2,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 100, 0, NULL},
      {OP_PUSH, "k1", 2, 100, -EBUSY, NULL},
      {OP_PUSH, "k2", 3, 100, 0, NULL},
      {OP_PUSH, "k2", 4, 100, 0, NULL},
      {OP_PUSH, "k2", 5, 100, -EBUSY, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "01"},
      {OP_ORDER, "k2", 0, 0, 0, "34"},
      {OP_COUNTS, NULL, 0, 0, 2004, NULL}}},
    {"a removal frees a place below the bound",
     2,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k1", 1, 100, 0, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_PUSH, "k1", 2, 100, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "12"}}},
    {"removal from the middle, head and tail keeps the order",
     8,
     {{OP_PUSH, "k", 0, 1, 0, NULL},
      {OP_PUSH, "k", 1, 1, 0, NULL},
      {OP_PUSH, "k", 2, 1, 0, NULL},
      {OP_PUSH, "k", 3, 1, 0, NULL},
      {OP_PUSH, "k", 4, 1, 0, NULL},
      {OP_REMOVE, NULL, 2, 0, 0, NULL},
      {OP_ORDER, "k", 0, 0, 0, "0134"},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_REMOVE, NULL, 4, 0, 0, NULL},
      {OP_ORDER, "k", 0, 0, 0, "13"},
      {OP_REMOVE, NULL, 4, 0, 0, NULL}, /* removed already: a no-op */
      {OP_COUNTS, NULL, 0, 0, 1002, NULL}}},
    {"the last waiter takes its FIFO with it",
     4,
     {{OP_PUSH, "k1", 0, 100, 0, NULL},
      {OP_PUSH, "k2", 1, 100, 0, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, ""},
      {OP_COUNTS, NULL, 0, 0, 1001, NULL},
      {OP_REMOVE, NULL, 1, 0, 0, NULL},
      {OP_COUNTS, NULL, 0, 0, 0, NULL},
      {OP_PUSH, "k1", 2, 100, 0, NULL},
      {OP_ORDER, "k1", 0, 0, 0, "2"}}},
    {"deadlines: nothing expires early, the due one is found",
     4,
     {{OP_PUSH, "k1", 0, 300, 0, NULL},
      {OP_PUSH, "k2", 1, 200, 0, NULL},
      {OP_PUSH, "k2", 2, 250, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 200, NULL},
      {OP_EXPIRED, NULL, 0, 199, -1, NULL},
      {OP_EXPIRED, NULL, 0, 200, 1, NULL}, /* a deadline is due at its instant */
      {OP_REMOVE, NULL, 1, 0, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 250, NULL},
      {OP_EXPIRED, NULL, 0, 260, 2, NULL},
      {OP_REMOVE, NULL, 2, 0, 0, NULL},
      {OP_EXPIRED, NULL, 0, 260, -1, NULL},
      {OP_NEXT, NULL, 0, 0, 300, NULL},
      {OP_REMOVE, NULL, 0, 0, 0, NULL},
      {OP_NEXT, NULL, 0, 0, 0, NULL}}},
    {"depth 0 queues nothing",
     0,
     {{OP_PUSH, "k1", 0, 100, -EBUSY, NULL},
      {OP_COUNTS, NULL, 0, 0, 0, NULL}}},
    {"a key longer than a key id is refused",
     4,
     {{OP_PUSH, "0123456789abcdef0123456789abcdef0123456789", 0, 100, -EINVAL, NULL},
      {OP_COUNTS, NULL, 0, 0, 0, NULL}}},
};

/* The FIFO of key as waiter indexes, "" when there is none. */
static void order_of(struct dpq *q, const char *key, struct dpq_waiter *w, char *out)
{
	struct dpq_fifo *f = dpq_fifo(q, key);
	size_t n = 0;

	for (struct dpq_waiter *it = f ? f->head : NULL; it && n < NW; it = it->next)
		out[n++] = (char)('0' + (it - w));
	out[n] = '\0';
}

static int64_t run_op(struct dpq *q, struct dpq_waiter *w, const struct op *o, char *order)
{
	struct dpq_waiter *e;

	switch (o->kind) {
	case OP_PUSH:
		return dpq_push(q, o->key, &w[o->w], 0, o->t);
	case OP_REMOVE:
		dpq_remove(q, &w[o->w]);
		return 0;
	case OP_ORDER:
		order_of(q, o->key, w, order);
		return 0;
	case OP_EXPIRED:
		e = dpq_expired(q, o->t);
		return e ? e - w : -1;
	case OP_NEXT:
		return dpq_next_deadline(q);
	case OP_COUNTS:
		return (int64_t)q->nfifos * 1000 + (int64_t)q->nwaiters;
	default:
		return 0;
	}
}

static void scripts_run(void)
{
	for (size_t s = 0; s < TG_NCASES(scripts); s++) {
		struct dpq q;
		struct dpq_waiter w[NW];

		memset(w, 0, sizeof(w));
		TG_REQUIRE(dpq_init(&q, scripts[s].depth) == 0);
		for (const struct op *o = scripts[s].ops; o->kind != OP_END; o++) {
			char order[NW + 1] = "";
			int64_t got = run_op(&q, w, o, order);
			int bad = o->kind == OP_ORDER ? strcmp(order, o->order) != 0 : got != o->want;

			TG_CHECK(!bad);
			if (bad)
				printf("#   %s: op %d: got %lld \"%s\", want %lld \"%s\"\n",
				       scripts[s].name, (int)(o - scripts[s].ops), (long long)got,
				       order, (long long)o->want, o->order ? o->order : "");
		}
		dpq_fini(&q);
	}
}

/* 2000 keys in 256 buckets: every chain is walked, every FIFO found and emptied. */
static void many_keys_share_buckets(void)
{
	enum { N = 2000 };
	static struct dpq_waiter w[N];
	struct dpq q;
	char key[32];
	int found = 0;

	TG_REQUIRE(dpq_init(&q, 1) == 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		TG_CHECK_INT(dpq_push(&q, key, &w[i], 0, 1000 + i), 0);
	}
	TG_CHECK_INT(q.nfifos, N);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		found += dpq_fifo(&q, key) && dpq_fifo(&q, key)->head == &w[i];
	}
	TG_CHECK_INT(found, N);
	TG_CHECK_INT(dpq_next_deadline(&q), 1000);
	for (int i = 0; i < N; i += 2)
		dpq_remove(&q, &w[i]);
	TG_CHECK_INT(q.nwaiters, N / 2);
	TG_CHECK(dpq_expired(&q, 1000) == NULL); /* w[0] went */
	TG_CHECK(dpq_expired(&q, 1001) == &w[1]);
	for (int i = 1; i < N; i += 2)
		dpq_remove(&q, &w[i]);
	TG_CHECK_INT(q.nfifos, 0);
	dpq_fini(&q);
}

static const struct tg_case cases[] = {
    {"scripted FIFO, depth and deadline rows", scripts_run},
    {"2000 keys sharing buckets", many_keys_share_buckets},
};

int main(void)
{
	return tg_run("dataplane_queue", cases, TG_NCASES(cases));
}

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Usage metering: one record per data-plane call (who, what, tokens, cost, latency,
 * status), written through the store's group-commit writer into STORE_DB_USAGE, and daily
 * roll-ups per key (STORE_DB_ROLLUPS, updated in the same transactions) that answer usage
 * and quota questions without scanning records. A call's record is committed before the
 * last byte of its response is released, so a response the client fully received is never
 * unmetered, even if the daemon is killed right after.
 */
#ifndef TG_USAGE_H
#define TG_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "providers.h"

struct store;
struct store_writer_opts;
struct budget;

struct usage_record {
	int64_t time_ms;		    /* Unix ms when the call started */
	char request_id[48];		    /* x-request-id */
	char key_id[TG_ID_LEN + 1];
	char owner[TG_OWNER_MAX + 1];
	char service[TG_SERVICE_MAX + 1];
	char provider[PROVIDER_NAME_MAX + 1];
	char model[MODEL_NAME_MAX + 1];
	char endpoint[32];		    /* "chat", "completions", "embeddings", "consume" */
	uint32_t status;		    /* HTTP status returned to the client */
	uint32_t stream;		    /* 1 = server-sent events */
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cost_nano;		    /* USD 1e-9 */
	uint64_t latency_us;		    /* start to last byte */
	uint64_t bytes_in;		    /* request body bytes */
	uint64_t bytes_out;		    /* response body bytes */
	uint32_t attempts;		    /* providers tried (1 = no failover; 0 = none sent) */
	char tenant[65];		    /* the request's tenant, "" = none (format 2) */
};

/*
 * Binary encoding (versioned, little-endian). encode: bytes or -EMSGSIZE; decode: 0/-EINVAL.
 * Encodes format 2 (with attempts); decodes 2 and 1 (written before failover: attempts 1).
 */
#define USAGE_RECORD_MAX 512
int usage_record_encode(const struct usage_record *r, void *buf, size_t cap);
int usage_record_decode(const void *buf, size_t len, struct usage_record *r);

struct usage_totals {
	uint64_t requests;
	uint64_t errors;	     /* status >= 400 */
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cost_nano;
	uint64_t latency_us_sum;
};

struct usage;

/*
 * Starts the writer (with the roll-up hook). The limits engine's buckets are written at
 * most every bucket_flush_ms (0: with every batch; see usage_budget_load). NULL and errno
 * on failure.
 */
struct usage *usage_open(struct store *s, const struct store_writer_opts *o,
			 unsigned bucket_flush_ms);
/* Commits what is queued, writes the buckets and stops. Accepts NULL. */
void usage_close(struct usage *u);
/* Queues a record; *seq identifies it for usage_wait. Never blocks on I/O. */
int usage_append(struct usage *u, const struct usage_record *r, uint64_t *seq);
/*
 * usage_append, and commits the queue on the calling thread when no commit is running
 * (store_writer_append_commit): the commit hook may run on this thread before it returns.
 */
int usage_append_commit(struct usage *u, const struct usage_record *r, uint64_t *seq);
/*
 * usage_append_commit for an event loop that meters several calls per round: queued, and
 * committed with the round's others by usage_flush, which the caller must call at the end
 * of the round (store_writer_append_deferred).
 */
int usage_append_deferred(struct usage *u, const struct usage_record *r, uint64_t *seq);
/* Commits what usage_append_deferred queued (here when the writer is idle). Accepts NULL. */
void usage_flush(struct usage *u);
/* Waits until record seq is committed: 0, -ETIMEDOUT, or the commit error. */
int usage_wait(struct usage *u, uint64_t seq, int timeout_ms);
/* Highest record sequence committed so far. */
uint64_t usage_committed(struct usage *u);
/*
 * Calls fn(committed, err, arg) on the writer thread after each commit (err 0) or failed
 * commit (-errno): see store_writer_on_commit. fn must not append nor wait. NULL removes it.
 */
void usage_on_commit(struct usage *u, void (*fn)(uint64_t committed, int err, void *arg),
		     void *arg);
/*
 * Totals for one key over the last `days` UTC days including today (days 1..366), optionally
 * only for one service (NULL = all), from the roll-ups.
 */
int usage_totals_days(struct usage *u, const char *key_id, const char *service, int days,
		      int64_t now_unix, struct usage_totals *out);
/*
 * What a record counts in the limits engine: 1 request, prompt + completion tokens, cost,
 * bytes in + out, latency in ms (compute). The roll-ups and the data plane's settle use it.
 */
void usage_record_amounts(const struct usage_record *r, uint64_t out[5]);
/*
 * Loads the limits engine's persisted buckets into b, at start: STORE_DB_BUDGET holds them
 * as of the usage sequence in STORE_META_BUDGET_SEQ (written together, at most every
 * bucket_flush_ms), and the committed records after it are added to them, so every
 * committed record counts once. *loaded = buckets loaded. 0 or -errno.
 */
int usage_budget_load(struct store *s, struct budget *b, size_t *loaded);

struct store_txn;
/* Migration 6: the stored buckets include every record so far (STORE_META_BUDGET_SEQ). */
int usage_budget_mark(struct store_txn *t);
/*
 * Migration 4: seeds the limits engine's day buckets (keys and their owners) from the daily
 * roll-ups, so quotas keep counting what was used before the upgrade. Minute and hour buckets
 * cannot be rebuilt from daily totals, nor bytes: those start empty. 0 or -errno.
 */
int usage_budget_seed(struct store_txn *t);

/* Totals for one key in the calendar month (UTC) containing now_unix. */
int usage_totals_month(struct usage *u, const char *key_id, int64_t now_unix,
		       struct usage_totals *out);

#endif /* TG_USAGE_H */

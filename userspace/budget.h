/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The limits engine: token quotas, cost budgets, request counts per day and month,
 * bandwidth, compute time and concurrency, per subject ("key:<id>", the key's owner
 * "user:x" / "team:x" / "consumer:x", and "tenant:x" when a request names one).
 *
 * Each subject keeps counters (requests, tokens, cost in nano-USD, bytes, compute ms) in
 * three bucket rings (windows.h): 64 minute buckets, 50 hour buckets, 62 day buckets.
 * Calendar windows (UTC) sum the buckets since the period's start; rolling ones the current
 * bucket and N previous ones (last 60 min = 60 minute buckets back, 24 h = 24 hour buckets,
 * 30 days / token_quota_days = N day buckets), so a rolling window covers between N and N+1
 * bucket lengths: usage leaves it up to one bucket late, never early.
 *
 * Exactness. Before forwarding, a call reserves an upper-bound estimate in every subject
 * (budget_reserve); the check and the reservation are one step under the subjects' locks
 * (taken in one global order, keys first: no deadlock), so concurrent calls see each other's
 * reservations.
 * Hard mode refuses when used + reserved + estimate > limit. After the call,
 * budget_settle adds the real usage to the buckets and drops the reservation. Hence a
 * window never ends over a limit when every call's estimate bounds its real usage (calls
 * with max_tokens: completion <= max_tokens and prompt <= request bytes); without max_tokens
 * the completion is estimated (limits.completion_estimate_tokens) and a window can end over
 * by at most what the calls in flight together used beyond their estimates. Bytes reserve
 * the request body only and compute reserves nothing (neither is known before the call):
 * those two quotas can end over by what the calls in flight at the crossing used.
 *
 * Persistence: budget.c keeps memory only. The usage writer rolls the committed records
 * into per-subject buckets in LMDB about once a second, marked with the last record they
 * include (usage.c); at start the buckets and the records after the mark are loaded with
 * budget_load_bucket: a record counts once in memory (at settle) and once from LMDB, and
 * only LMDB is read at start.
 *
 * Notes for the actions side (helper A):
 *  - verdict.hit.action tells what to do with a refused call: LIMIT_ACT_BLOCK (429),
 *    LIMIT_ACT_QUEUE (dataplane.c has a "queue:" branch that blocks for now: park the call
 *    and retry budget_reserve from the budget_on_release hook), LIMIT_ACT_DOWNGRADE.
 *  - LIMIT_ACT_ALERT and soft mode never refuse: verdict.warned and verdict.warn say which
 *    limit is over; the threshold hook fires (once per subject x limit x window period).
 *  - metrics: call sites marked "metrics:" in dataplane.c are where the limit-hit and
 *    enforcement-action counters and the check-duration histogram belong.
 */
#ifndef TG_BUDGET_H
#define TG_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "providers.h"
#include "windows.h"

#define BUDGET_SUBJECT_MAX  80 /* "consumer:" + 64, "tenant:" + 64, "key:" + 12, NUL */
#define BUDGET_TENANT_MAX   64
#define BUDGET_PER_CALL	    3  /* subjects of one call: key, owner, tenant */
#define BUDGET_STATUS_MAX   16 /* limit statuses of one subject, at most */
#define BUDGET_RING_MINUTES 64 /* rolling hour: the current minute + 60 previous */
#define BUDGET_RING_HOURS   50 /* rolling day: the current hour + 24 previous; 48 h kept */
#define BUDGET_RING_DAYS    62 /* calendar month (31), rolling 30 days, token_quota_days 60 */

/* Buckets a subject keeps of ring unit ring (WIN_MINUTE, WIN_HOUR, WIN_DAY). */
unsigned budget_ring_size(enum win_unit ring);

enum budget_kind {
	BUDGET_KIND_REQUESTS = 0,
	BUDGET_KIND_TOKENS,
	BUDGET_KIND_COST,
	BUDGET_KIND_BYTES,
	BUDGET_KIND_COMPUTE,
	BUDGET_KIND_CONCURRENCY,
};

/* A tenant as a request names it: [A-Za-z0-9._:-]{1,64}. */
bool budget_tenant_valid(const char *s);
/* "requests", "tokens", "cost", "bytes", "compute", "concurrency". */
const char *budget_kind_name(enum budget_kind k);

struct budget_opts {
	bool enabled;		       /* limits.enabled: false, budget_reserve allows all */
	enum limit_mode mode;	       /* limits.mode: HARD or SOFT */
	enum limit_action action;      /* limits.action */
	uint32_t alert_permille;       /* limits.alert_threshold x 1000 */
	uint64_t default_daily_tokens; /* limits.default_daily_tokens, 0 = none */
	uint64_t completion_estimate;  /* limits.completion_estimate_tokens */
	/* limits.max_tenants: tenant subjects requests may make (0 = none); tenants with limits
	 * of their own (budget_set_limits) or persisted buckets count, and are always made */
	uint64_t max_tenants;
};

/* Where one subject stands against one limit (the contract's "limit status"). */
struct budget_hit {
	char subject[BUDGET_SUBJECT_MAX];
	enum limit_field limit;
	enum budget_kind kind;
	const char *window; /* "minute", "hour", "day", "month"; "concurrent" */
	bool rolling;
	uint64_t value;		  /* the limit, stored units (nano-USD, ms, tokens, ...) */
	uint64_t used;		  /* settled usage in the window */
	uint64_t reserved;	  /* reserved by calls in flight */
	uint64_t estimate;	  /* budget_reserve: this call's reservation */
	int64_t reset_at;	  /* Unix s: the window's reset (rolling: next bucket boundary) */
	uint64_t retry_after_sec; /* refused: until enough frees for this call */
	enum limit_action action; /* resolved: never INHERIT */
	enum limit_mode mode;	  /* resolved: never INHERIT */
	bool exceeded;		  /* used + reserved (+ estimate in a verdict) > value */
};

struct budget_verdict {
	bool allowed;
	struct budget_hit hit; /* !allowed: the limit that refused (hit.action says how) */
	bool warned;	       /* allowed, but over a limit (soft mode or action alert) */
	struct budget_hit warn;
	/* the tightest token limit and cost budget of the call's subjects, for headers */
	bool has_tokens, has_cost;
	uint64_t tokens_limit, tokens_remaining;
	int64_t tokens_reset_at;
	uint64_t cost_limit, cost_used, cost_remaining; /* nano-USD */
	int64_t cost_reset_at;
};

struct budget_subj;

/* A call's reservation, in the caller's call object; zeroed = holds nothing. */
struct budget_call {
	struct budget_subj *s[BUDGET_PER_CALL];
	unsigned n;
	uint64_t res[WIN_M__COUNT];
	int64_t start; /* Unix s the call started: its usage goes to that instant's buckets */
	bool held;
};

struct budget_req {
	const char *key_id;
	const struct limits *key_limits; /* the key's effective limits (tier + overrides) */
	const char *owner;		 /* "team:ml"; NULL or "" = none */
	const char *tenant;		 /* "acme" (without "tenant:"); NULL or "" = none */
	uint64_t est[WIN_M__COUNT];	 /* reservation: see budget_estimate */
	int64_t now;			 /* Unix s (injectable clock) */
};

struct budget;

/* A new engine; NULL and errno. */
struct budget *budget_new(const struct budget_opts *o);
/* Frees everything; accepts NULL. No call may be in flight. */
void budget_free(struct budget *b);
/* The options it was made with. */
const struct budget_opts *budget_opts(const struct budget *b);

/*
 * The reservation of a call: 1 request, prompt + completion tokens, their cost at price
 * (NULL: 0), bytes_in bytes, no compute.
 */
void budget_estimate(const struct model_price *price, uint64_t prompt_tokens,
		     uint64_t completion_tokens, uint64_t bytes_in, uint64_t est[WIN_M__COUNT]);

/*
 * Checks every limit of every subject of r and, if the call may go (v->allowed), reserves
 * r->est in each and counts it in flight (c, which must hold nothing). Refused: nothing is
 * reserved, v->hit names the limit. 0, or -ENOMEM (a new subject could not be made), or
 * -EDQUOT (r->tenant is a new tenant and max_tenants tenant subjects exist): nothing
 * reserved, no tenant subject made. Allocation-free once the subjects exist.
 */
int budget_reserve(struct budget *b, const struct budget_req *r, struct budget_call *c,
		   struct budget_verdict *v);
/* budget_reserve's check alone (reserves nothing, raises no event): for headers. */
int budget_peek(struct budget *b, const struct budget_req *r, struct budget_verdict *v);
/*
 * The call is over: adds actual (requests, tokens, cost, bytes, compute ms) to the buckets
 * of c->start, releases the reservation and the in-flight count. Then the threshold hook
 * (for limits that crossed) and the release hook. c holds nothing after. No-op if c holds
 * nothing.
 */
void budget_settle(struct budget *b, struct budget_call *c, const uint64_t actual[WIN_M__COUNT]);
/* A call that used nothing (refused later, failed before the upstream): budget_settle with 0. */
void budget_release(struct budget *b, struct budget_call *c);

/*
 * The owner or tenant subject's explicit limits (LIMIT_UNSET: not set) with their per-limit
 * actions in lim->act (0 = the subject's default); lim NULL removes them. 0 or -ENOMEM /
 * -EINVAL (a subject that is not "user:", "team:", "consumer:" or "tenant:").
 */
int budget_set_limits(struct budget *b, const char *subject, const struct limits *lim);
/*
 * Loads a persisted bucket at start, or a record's share of one: v is added to the bucket
 * id of ring WIN_MINUTE, WIN_HOUR or WIN_DAY (one older than the ring keeps is dropped, a
 * newer one replaces it). 0 or -errno.
 */
int budget_load_bucket(struct budget *b, const char *subject, enum win_unit ring, int64_t id,
		       const uint64_t v[WIN_M__COUNT]);
/*
 * Every limit of subject that applies (value != 0) into out (at most cap): key subjects
 * take key_limits (the key's effective limits), others their stored ones. Returns the
 * number filled. A subject never seen has used 0.
 */
size_t budget_status(struct budget *b, const char *subject, const struct limits *key_limits,
		     int64_t now, struct budget_hit *out, size_t cap);
/*
 * For tollgate_budget_usage_ratio{limit}: the highest (used + reserved) / value among all
 * subjects, per limit field (0 where no subject has that limit). Walks every subject: for a
 * scrape, not the hot path. Keys count with the limits of their last call.
 */
void budget_max_ratios(struct budget *b, int64_t now, double out[LIMIT__COUNT]);
/* Tenant subjects made so far (every path: requests, admin limits, persisted buckets). */
uint64_t budget_tenants(struct budget *b);
/* The explicit limits of an owner or tenant subject (per-limit actions in lim->act); false
 * and lim cleared when it has none. */
bool budget_subject_limits(struct budget *b, const char *subject, struct limits *lim);

struct budget_event {
	bool exceeded; /* false: crossed the alert threshold; true: the limit itself */
	struct budget_hit hit;
	double ratio; /* (used + reserved) / value */
	int64_t time; /* Unix s */
};

/*
 * Called (not under any engine lock) when a subject's usage of a limit first crosses its
 * alert threshold, or a reservation finds the limit exceeded, once per subject x limit x
 * window period (rolling windows: again after the ratio fell back under the threshold).
 * fn NULL removes it.
 */
void budget_on_threshold(struct budget *b, void (*fn)(const struct budget_event *ev, void *arg),
			 void *arg);
/* Called after every settle/release with the subjects it freed capacity in (the queue). */
void budget_on_release(struct budget *b,
		       void (*fn)(const char *const *subjects, unsigned n, void *arg), void *arg);

/*
 * The refusal text of the contract for hit, e.g. "Cost budget exceeded for key k7dq2m9xa4bz:
 * cost_per_day 10.00 USD (used 9.97 USD, 0.05 USD reserved by calls in flight); resets at
 * 2026-11-24T00:00:00Z".
 */
void budget_message(const struct budget_hit *hit, char *buf, size_t len);
/* An amount of hit's kind as text: "10.00 USD", "1200 tokens", "3.5 s", ... */
void budget_amount(enum budget_kind k, uint64_t v, char *buf, size_t len);
/* limits.downgrade ("from=to,..."): the model to call instead of model into out, or NULL. */
const char *budget_downgrade_of(const char *map, const char *model, char *out, size_t len);
/* True when a refusal of this limit is "insufficient_quota" (else rate_limit_exceeded). */
bool budget_is_quota(enum limit_field f);

#endif /* TG_BUDGET_H */

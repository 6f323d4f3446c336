/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Private to the data plane. dataplane.c holds the listener, the route table,
 * authentication, the request-rate charge, the forwarded call's life (struct dp_call: its
 * references, the close callback, release on commit) and metering; dataplane_openai.c
 * the OpenAI-compatible endpoints, their checks and the upstream callbacks that stream or
 * collect an answer; dataplane_market.c the marketplace endpoints.
 *
 * Threads. Each listener thread is an event loop (loop.h) running its own listener daemon
 * and its own upstream client (dp->loops, dp->ups): handlers authenticate, charge, check,
 * submit the upstream call to the client of their own loop (upstream_here) and defer, and
 * the call's callbacks come back on that same thread, with no wake-up. Calls submitted
 * from other threads (the verify pool, the queue) go to the same client, the accepting
 * loop's (dp_req.home), through its queue and a wake-up; the shared client d.up serves only
 * what no loop accepted. The thread of the call's client runs its callbacks: it starts and feeds
 * streams, collects plain bodies, and on the last callback settles the call (tokens, cost,
 * usage record appended: dp_finish); it never waits for a commit. Whoever commits the
 * record - the upstream thread itself when the usage writer is idle (usage_append_commit),
 * else the writer's thread with the next group commit - releases the answers it committed
 * from the commit hook (a plain reply, or a stream's end).
 */
#ifndef TG_DATAPLANE_INTERNAL_H
#define TG_DATAPLANE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "budget.h"
#include "dataplane.h"
#include "http.h"
#include "keys.h"
#include "providers.h"
#include "ratelimit.h"
#include "router.h"
#include "sse.h"
#include "upstream.h"
#include "usage.h"

#define DP_ARG_MAX	   128	       /* longest :serviceId segment kept */
#define DP_BODY_MAX	   (16u << 20) /* largest plain upstream answer taken (else 502) */
#define DP_COMMIT_WAIT_MS  10000       /* how long an answer waits for its usage record */
#define DP_DETAIL_MAX	   160	       /* upstream error text kept for logs */
#define DP_CTYPE_MAX	   128
#define DP_RETRY_AFTER_MAX 64
#define DP_ESTIMATED	   "+est" /* endpoint suffix of a record whose tokens are estimated */
#define DP_ATTEMPTS_LOG	   320	  /* "a: status 500; b: connect; c: circuit open" */
#define DP_ATTEMPT_MIN_MS  100	  /* no new attempt with less of the call's time left */

enum dp_endpoint {
	DP_EP_CHAT = 0,
	DP_EP_COMPLETIONS,
	DP_EP_EMBEDDINGS,
	DP_EP_CONSUME,
};

/* Metered calls whose usage records are not committed yet (released by dp_on_commit). */
struct dp_commits {
	pthread_mutex_t mu;
	pthread_cond_t drained; /* the list became empty (for dataplane_close) */
	struct dp_call *head;
};

/* The verification pool (dataplane_verify.c): requests whose key missed the cache. */
struct dp_verify_job;
struct dp_verify {
	pthread_t *threads;
	unsigned n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct dp_verify_job *head, *tail;
	unsigned queued;
	bool stopping;
	bool ready; /* mu and cv initialised */
};

/* ---- the queue (dataplane_queue.c) ---- */

/* A parked request in its key's FIFO. */
struct dpq_waiter {
	struct dpq_waiter *next, *prev;
	struct dpq_fifo *fifo; /* NULL once removed */
	int64_t parked_ns;     /* CLOCK_MONOTONIC */
	int64_t deadline_ns;
};

/* One key's waiters, oldest first; exists while it has any. */
struct dpq_fifo {
	struct dpq_fifo *hnext; /* hash chain */
	struct dpq_waiter *head, *tail;
	unsigned depth;
	bool kicked; /* capacity may have freed: retry the head */
	char key[TG_ID_LEN + 1];
};

/* The FIFOs by key, with a depth bound per key. Pure: no locks, clocks or I/O. */
struct dpq {
	struct dpq_fifo **buckets;
	size_t nbuckets;
	unsigned depth_max;
	size_t nfifos, nwaiters;
};

struct dp_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* monotonic: parks and kicks wake the thread */
	struct dpq q;
	atomic_uint nwaiters; /* q.nwaiters, read without the lock by dp_queue_kick */
	bool kicked;
	bool stopping, stopped;
	bool ready; /* started: mu, cv, q and the thread exist */
	pthread_t thread;
};

struct dataplane {
	struct http_server *http;
	/* the listener threads: loop i runs the listener's daemon i and upstream client i */
	struct loop **loops;
	struct upstream **ups;
	unsigned nloops;
	struct dataplane_deps d;
	char default_model[MODEL_NAME_MAX + 1];
	atomic_bool slots_full_logged;
	unsigned close_after; /* dataplane_opts.close_after_refusals */
	struct dp_commits commits;
	struct dp_verify verify;
	struct dp_queue queue;
	bool limits_on;	     /* limits.enabled: false, no limit refuses (request rates too) */
	unsigned queue_depth;	   /* limits.queue_depth */
	unsigned queue_timeout_ms; /* limits.queue_timeout_ms */
	char downgrade[1024]; /* limits.downgrade, "from=to,..." */
};

struct dp_route;

/* One request in a handler, after authentication and the rate charge. */
struct dp_req {
	struct dataplane *dp;
	struct http_req *req;
	struct upstream *home; /* the upstream client of the loop that accepted it (or NULL) */
	const struct dp_route *route;
	struct keys_auth auth;
	struct tg_slot *slot;
	char arg[DP_ARG_MAX + 1];  /* the :serviceId segment */
	struct rl_verdict verdict; /* the charge (or the dry run of a route that does not charge) */
	int64_t start_ns;
	int64_t time_ms; /* wall clock, Unix ms */
	char tenant[BUDGET_TENANT_MAX + 1]; /* metadata.tenant or X-Tollgate-Tenant; "" none */
	const char *tenant_param;	    /* where tenant came from: "metadata.tenant", ... */
	struct budget_call bc; /* the reservation, until dp_call_new takes it */
	/*
	 * Deferred by the verification pool, which holds http_defer's request reference:
	 * dp_call_new adopts it (clearing this), else the pool drops it after the handler.
	 * The queue (dp_queue_park) holds it the same way while the request is parked.
	 */
	bool deferred;
	int64_t queued_ns; /* CLOCK_MONOTONIC when first parked in the queue; 0 = never */
	bool queue_last;   /* the retry after the queue deadline: it must answer */
	int queue_verdict; /* enum dp_queue_verdict of a retry (dp_budget_reserve sets it) */
};

typedef void (*dp_handler_fn)(struct dp_req *q);

enum dp_route_flags {
	DP_CHARGE = 1u << 0,  /* charge the request-rate windows (else a dry run for headers) */
	DP_SERVICE = 1u << 1, /* :serviceId must be the key's service */
	DP_FORWARD = 1u << 2, /* reserves in the limits engine (which sets the budget headers) */
};

struct dp_route {
	const char *method;
	const char *pattern; /* ':' is one captured segment */
	const char *label;   /* metrics route label */
	unsigned flags;
	dp_handler_fn fn;
};

struct dp_call;
/* Renders a successful (2xx, complete) plain answer; called after the commit. */
typedef void (*dp_render_fn)(struct dp_call *c);

/* How a call ended, as the client sees it. */
enum dp_outcome {
	DP_OUT_UPSTREAM = 0, /* the provider's answer (any status), passed through */
	DP_OUT_UNREACHABLE,  /* 502 upstream_error: connect, broken, internal, too large */
	DP_OUT_TIMEOUT,	     /* 504 upstream_timeout */
	DP_OUT_BAD_ANSWER,   /* 502 upstream_error: a 2xx answer we could not read (consume) */
	DP_OUT_STOPPING,     /* 503: cancelled by the daemon's shutdown */
	DP_OUT_GONE,	     /* 499: the client went away first (nothing is sent) */
	DP_OUT_ALL_FAILED,   /* 503 all_providers_failed: no attempt succeeded (attempts_log) */
};

/*
 * A forwarded call. References: one for the upstream side (dropped by dp_finish's release once the
 * answer is released), one for the close callback (dropped when the request is over). The
 * last one frees the call and drops the request reference taken by http_defer.
 */
struct dp_call {
	struct dataplane *dp;
	struct http_req *req;
	atomic_int refs;
	_Atomic uint64_t handle; /* upstream call, for upstream_cancel */
	struct upstream *home;	     /* dp_req.home (see dp_call_upstream) */
	atomic_bool client_gone; /* the request is over (on_close ran) */
	atomic_bool up_done;	 /* on_done ran */
	/* set by the handler before submit */
	enum dp_endpoint ep;
	bool stream;	   /* the client asked for a stream */
	bool client_usage; /* ... with stream_options.include_usage true */
	const struct provider *prov;
	const struct model_price *price;
	char model[MODEL_NAME_MAX + 1];
	char key_id[TG_ID_LEN + 1];
	char owner[TG_OWNER_MAX + 1];
	char service[TG_SERVICE_MAX + 1];
	char tenant[BUDGET_TENANT_MAX + 1];
	struct budget_call bc; /* the call's reservation (settled in dp_finish) */
	int64_t start_ns;
	int64_t time_ms;
	uint64_t bytes_in;
	bool predeferred;    /* the request was deferred already (verification pool) */
	dp_render_fn render; /* NULL: pass the upstream answer through */
	/* routing and failover (dataplane_route.c): what each attempt sends, where it went */
	const char *up_path;	 /* under the provider's base_url */
	const char *up_body;	 /* the request's body, or up_owned */
	size_t up_len;
	char *up_owned;		 /* a rewritten body, kept for the retries */
	struct router_choice choice; /* this attempt's provider */
	uint64_t tried;		 /* mask of the providers attempted */
	unsigned attempts;	 /* attempts submitted */
	int64_t attempt_ns;	 /* CLOCK_MONOTONIC when this attempt was submitted */
	int64_t headers_ns;	 /* ... when its headers came (0: not yet) */
	int64_t deadline_ns;	 /* routing.call_timeout_sec after the start */
	char *attempts_log;	 /* DP_ATTEMPTS_LOG bytes from the first entry (a failed
				  * attempt); NULL until then: most calls never need it */
	size_t attempts_log_len;
	bool all_failed;	 /* settle as DP_OUT_ALL_FAILED */
	/* upstream thread, then dp_finish and the release */
	unsigned up_status;
	bool status_seen;
	char ctype[DP_CTYPE_MAX];
	char retry_after[DP_RETRY_AFTER_MAX];
	char *body; /* plain answers: up to DP_BODY_MAX bytes */
	size_t len, cap;
	bool too_large;
	struct http_stream *hs; /* set once the stream started */
	struct sse_parser sse;
	struct sse_usage su;
	bool sse_broken;   /* the upstream's event stream could not be parsed */
	bool write_failed; /* the client stream refused bytes (gone, too slow) */
	bool saw_done;	   /* "data: [DONE]" arrived; held back until the record commits */
	uint64_t bytes_out;
	enum upstream_err err;
	char detail[DP_DETAIL_MAX];
	/* dp_finish (settle, meter) */
	enum dp_outcome outcome;
	cJSON *json;	 /* a 2xx plain answer, parsed (NULL if not JSON) */
	unsigned status; /* as told to the client and recorded */
	uint64_t prompt_tokens, completion_tokens;
	bool estimated;
	struct cost cost;
	uint64_t seq;
	int append_rc;
	int64_t metered_ns;	/* CLOCK_MONOTONIC when listed to wait for its commit */
	struct dp_call *next; /* in dp_commits */
};

/* ---- dataplane.c ---- */

/* Adds the verdict's rate-limit headers to the answer. */
void dp_rate_headers(struct http_req *req, const struct rl_verdict *v);
/* A 500 with the request id, logged with what failed. */
void dp_reply_500(struct http_req *req, const char *what, int rc);
/* Sends json (taken) as the answer; NULL is a 500. */
void dp_reply_obj(struct http_req *req, unsigned status, cJSON *json);
/* The JSON object the whole body is, or NULL after answering 400 invalid_json. */
cJSON *dp_body_object(struct http_req *req);
/* Answers a failed key verification (401, 403, 429 or 500) per the contract. */
void dp_reply_auth_error(struct dp_req *q, int rc);
/* An authenticated request's way on: rate charge, service check, the route's handler. */
void dp_proceed(struct dp_req *q);

/* ---- dataplane_verify.c ---- */

/* Starts the verification pool's threads; 0 or -errno. */
int dp_verify_start(struct dataplane *dp, unsigned threads);
/* Stops the pool (queued jobs answered 503); idempotent. After http_stop. */
void dp_verify_stop(struct dataplane *dp);
/*
 * The key (len bytes) missed the verification cache: defers the request and queues it for
 * the pool, which verifies and carries on (dp_proceed); answers 503 if it cannot queue.
 */
void dp_verify_later(struct dp_req *q, const char *key, size_t len);

/*
 * The upstream client of c's attempts and cancels: the one of the loop that accepted the
 * request, from whichever thread submits (that loop, the verify pool, the queue), so the
 * answer comes back to the connection's own loop and connections opened for calls the
 * verify pool forwarded are not left idle in a client no listener uses (they took the
 * open-file limit at 9,872 streams); d.up only for a request no loop accepted.
 */
static inline struct upstream *dp_call_upstream(const struct dp_call *c)
{
	return c->home ? c->home : c->dp->d.up;
}

/* A new call for an authenticated request; NULL after answering 500. */
struct dp_call *dp_call_new(struct dp_req *q, enum dp_endpoint ep, const struct provider *p,
			    const struct model_price *price, const char *model);
/*
 * Defers the request and submits the call: POST base_url + path with body. Takes c: on
 * failure it is answered (503 while stopping, 502 when the submit fails) and metered.
 */
void dp_call_submit(struct dp_call *c, const char *path, const char *body, size_t len);
/* Drops a reference of c. */
void dp_call_put(struct dp_call *c);
/*
 * A call is over upstream (upstream thread, or the listener after a failed submit): settles
 * and meters it, and releases its answer once the record commits. Takes the upstream
 * side's reference. Blocks only when the usage queue is full (back-pressure).
 */
void dp_finish(struct dataplane *dp, struct dp_call *c);
/* Asks the upstream to drop the call (best effort: a no-op before the handle is known). */
void dp_call_cancel(struct dp_call *c);
/* The call's endpoint name as recorded and labelled ("chat", "completions", ...). */
const char *dp_endpoint_name(enum dp_endpoint ep);
/* Ms since the epoch (wall clock), for records and quota windows. */
int64_t dp_now_ms(void);
/* The first instant of the calendar month (UTC) after the one of now, as RFC 3339. */
void dp_month_reset(int64_t now, char out[32]);

/* ---- dataplane_openai.c ---- */

void dp_h_chat(struct dp_req *q);
void dp_h_completions(struct dp_req *q);
void dp_h_embeddings(struct dp_req *q);
void dp_h_models(struct dp_req *q);
/* The upstream callbacks of every call (plain and streamed). */
void dp_up_on_status(void *ctx, unsigned status, const char *ctype, const char *retry_after);
void dp_up_on_data(void *ctx, const char *buf, size_t len);
void dp_up_on_done(void *ctx, enum upstream_err err, const char *detail);
/* dp_finish: decides status and tokens of a finished call (before its record). */
void dp_settle(struct dp_call *c);
/* From the commit hook: releases the answer once the record committed (commit_rc 0) or not. */
void dp_release(struct dp_call *c, int commit_rc);
/*
 * Checks an optional field: absent or null is fine; else it must satisfy the kind. False
 * after answering 400 naming the field.
 */
bool dp_check_max_tokens(struct http_req *req, const cJSON *root, const char *field);
/*
 * The first provider serving model (a placeholder until the router chooses each attempt's
 * provider in dp_call_submit), or NULL after answering 400 model_not_found or 503.
 */
const struct provider *dp_route_model(struct dp_req *q, const char *model,
				      const struct model_price **price);


/* ---- dataplane_budget.c ---- */

/* What a call will be forwarded as; dp_budget_reserve may downgrade it. */
struct dp_plan {
	char model[MODEL_NAME_MAX + 1];
	const struct provider *p;
	const struct model_price *price;
	uint64_t prompt_est;	 /* prompt tokens to reserve (dp_prompt_estimate) */
	uint64_t completion_est; /* completion tokens to reserve */
	bool downgraded;
	char from[MODEL_NAME_MAX + 1]; /* downgraded: the model asked for */
};

/*
 * Prompt tokens of a request, an upper bound: the text's bytes (field: "prompt", "input";
 * NULL: chat messages, every member but the role) plus a per-message and per-call overhead.
 */
uint64_t dp_prompt_estimate(const cJSON *root, const char *field);
/* The request's tenant into q->tenant (metadata.tenant, else the header); false after 400. */
bool dp_tenant(struct dp_req *q, const cJSON *root);
/*
 * Reserves the call's estimate into q->bc; on a limit's downgrade action switches pl to the
 * cheaper model. False once it has answered (429, 500). Adds the token/budget headers.
 */
bool dp_budget_reserve(struct dp_req *q, struct dp_plan *pl);
/* Settles c's reservation with what its usage record r says (as the roll-ups count it). */
void dp_budget_settle(struct dp_call *c, const struct usage_record *r);
/* The token/budget headers of a request that reserves nothing (GET endpoints). */
void dp_budget_peek_headers(struct dp_req *q);
/* x-ratelimit-*-tokens and X-Budget-* for the tightest limits of v. */
void dp_budget_headers(struct http_req *req, const struct budget_verdict *v, int64_t now);
/* The contract's 429 for hit (type, code, message, Retry-After); note appended if set. */
void dp_reply_limit(struct http_req *req, const struct budget_hit *hit, const char *note);

/* ---- dataplane_route.c ---- */

/*
 * Chooses the provider for c's first attempt and submits it (the caller holds a reference
 * of c). False when nothing was submitted (no provider available, the submit failed): c's
 * state then says why, for dp_finish.
 */
bool dp_attempt(struct dp_call *c);
/*
 * An attempt ended (upstream thread, from on_done): reports it to the router and counts it;
 * true if another attempt was submitted (the call goes on), false if the call is over.
 */
bool dp_attempt_done(struct dp_call *c);
/* The headers naming the serving provider and the attempts, on the answer. */
void dp_route_headers(struct dp_call *c);
/* ---- dataplane_queue.c ---- */

/* What a parked request's retry did. */
enum dp_queue_verdict {
	DP_QUEUE_WAIT = 0,  /* still no capacity: stays first in its key's FIFO */
	DP_QUEUE_PROCEEDED, /* capacity: the call went on (forwarded, or answered normally) */
	DP_QUEUE_ANSWERED,  /* refused or failed, answered (counted as queue_timeout if last) */
};
/*
 * Retries a parked request, on the queue thread: checks its limits again and proceeds
 * (a forwarded call adopts the request's reference: dp_call_new clears q->deferred),
 * answers, or returns DP_QUEUE_WAIT. With last (the deadline passed) it must answer: a
 * refusal then says the request waited dp_queue_waited_ms(q). Only what the dp_req holds
 * and the body may be used: headers belong to the suspended connection (copy into the
 * dp_req before parking what a retry needs).
 */
typedef enum dp_queue_verdict (*dp_queue_retry_fn)(struct dp_req *q, bool last);

/* Starts the queue's thread; depth_max waiters per key (limits.queue_depth). 0/-errno. */
int dp_queue_start(struct dataplane *dp, unsigned depth_max);
/*
 * Parks q (copied; the request is deferred, or its deferral adopted) in the FIFO of its
 * key for up to timeout_ms, to be retried by retry. 0: parked, the caller must not touch
 * the request again. Else the caller answers: -EBUSY (queue_depth waiters already: block
 * at once), -ESHUTDOWN (stopping), -ENOMEM, -EINVAL.
 */
int dp_queue_park(struct dp_req *q, unsigned timeout_ms, dp_queue_retry_fn retry);
/*
 * Capacity may have freed for key (NULL: for anyone, e.g. an owner's or tenant's limit):
 * the heads of its FIFO are retried soon on the queue thread. Cheap when nobody waits
 * (one atomic load); any thread, never blocks beyond a short mutex.
 */
void dp_queue_kick(struct dataplane *dp, const char *key);
/* The limits engine's release hook (budget_on_release): kicks the subjects' waiters. */
void dp_queue_on_release(const char *const *subjects, unsigned n, void *arg);
/* Ms q has spent in the queue so far (0 if it was never parked). */
int64_t dp_queue_waited_ms(const struct dp_req *q);
/* Answers every waiter 503 and stops the thread; before http_stop. Idempotent. */
void dp_queue_stop(struct dataplane *dp);
/* After dp_queue_stop: frees. Idempotent. */
void dp_queue_close(struct dataplane *dp);

/* The pure FIFO part (unit-tested alone). */
int dpq_init(struct dpq *q, unsigned depth_max);
void dpq_fini(struct dpq *q);
/* key's FIFO, or NULL when nobody of key waits. */
struct dpq_fifo *dpq_fifo(struct dpq *q, const char *key);
/* Appends w to key's FIFO: 0, -EBUSY (depth_max reached), -EINVAL (key too long), -ENOMEM. */
int dpq_push(struct dpq *q, const char *key, struct dpq_waiter *w, int64_t now_ns,
	     int64_t deadline_ns);
/* Takes w out of its FIFO (the FIFO goes with its last waiter). No-op if not queued. */
void dpq_remove(struct dpq *q, struct dpq_waiter *w);
/* A waiter whose deadline is <= now_ns (the earliest parked of its FIFO), or NULL. */
struct dpq_waiter *dpq_expired(const struct dpq *q, int64_t now_ns);
/* The earliest deadline of any waiter, 0 if none. */
int64_t dpq_next_deadline(const struct dpq *q);

/* ---- dataplane_market.c ---- */

void dp_h_consume(struct dp_req *q);
void dp_h_quota(struct dp_req *q);
void dp_h_usage(struct dp_req *q);
void dp_h_rate_status(struct dp_req *q);
void dp_h_rate_check(struct dp_req *q);
void dp_h_quotas(struct dp_req *q);
/*
 * Appends the limit statuses of the request's key and owner (and tenant, when the request
 * names one) to arr; quotas_only as budget_status_json. False when out of memory.
 */
bool dp_limits_json(struct dp_req *q, bool quotas_only, cJSON *arr);

#endif /* TG_DATAPLANE_INTERNAL_H */

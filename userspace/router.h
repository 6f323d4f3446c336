/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The provider router: which provider serves a call, and what the answers taught us about
 * each provider. Per provider it keeps a circuit breaker (closed; open after
 * routing.breaker_failures failures in a row; half-open after routing.breaker_open_sec, when
 * at most routing.breaker_probes calls at once go through as probes: a probe's success closes
 * it, its failure opens it again), a cooldown (after a 429, for its Retry-After or
 * routing.provider_cooldown_sec; after a 5xx with a Retry-After, for that), a moving latency
 * (EWMA, and a median of the last few answers), the recent error rate, counters by outcome,
 * and an outbound request-rate bucket (GCRA, include/tollgate/gcra.h) so a provider is never
 * sent more than its rate_limit_per_sec.
 *
 * router_pick chooses among the providers serving the model that are not excluded (those
 * the call tried already) and are available (breaker, cooldown, outbound rate), by the
 * call's policy (routing_policy_for): primary, lowest priority first; cost_weighted,
 * cheapest for the model (prompt + completion price), then priority; latency_weighted,
 * lowest moving latency (unmeasured first), and every ROUTER_EXPLORE_EVERY-th pick the
 * provider measured longest ago, so a recovered provider is measured again. Providers tied
 * on the policy's key share the calls by weight (smooth weighted round robin).
 *
 * No I/O and no clock of its own: callers pass CLOCK_MONOTONIC ns, tests pass what they
 * like. Thread-safe (one mutex): listener threads pick, the upstream thread reports.
 */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "providers.h"

#define ROUTER_PROVIDERS_MAX 64 /* a call's tried providers are one 64-bit mask */
#define ROUTER_EXPLORE_EVERY 10 /* latency_weighted: one pick in this many explores */
#define ROUTER_WINDOW	     32 /* latencies kept for the median */

/* How one attempt ended, as the router (and the errors metric) classes it. */
enum router_outcome {
	ROUTER_OK = 0,	     /* 2xx */
	ROUTER_CLIENT_ERROR, /* 4xx other than 429: the provider is fine */
	ROUTER_RATE_LIMITED, /* 429 */
	ROUTER_SERVER_ERROR, /* 5xx */
	ROUTER_TIMEOUT,	     /* no complete answer in time */
	ROUTER_CONNECT,	     /* could not connect */
	ROUTER_BROKEN,	     /* the answer broke off (or could not be read) */
	ROUTER_CANCELLED,    /* ours: the client left, shutdown; says nothing of the provider */
	ROUTER__COUNT,
};

enum breaker_state {
	BREAKER_CLOSED = 0,
	BREAKER_HALF_OPEN = 1,
	BREAKER_OPEN = 2,
};

/*
 * "ok", "client_error", "rate_limited", "server_error", "timeout", "connect", "broken",
 * "cancelled".
 */
const char *router_outcome_name(enum router_outcome o);
/* "closed", "half_open", "open". */
const char *breaker_state_name(enum breaker_state s);
/* True for the outcomes a call fails over on (429, 5xx, timeout, connect, broken). */
bool router_outcome_retryable(enum router_outcome o);

struct router;

/* A router over p (which must outlive it) with cfg (copied). NULL and errno on failure. */
struct router *router_new(const struct providers *p, const struct routing_cfg *cfg);
void router_free(struct router *r);
/* The routing settings in force. */
const struct routing_cfg *router_cfg(const struct router *r);

struct router_choice {
	int idx; /* in the providers array */
	const struct provider *prov;
	const struct model_price *price;
	bool probe; /* took one of a half-open breaker's probe places */
};

/*
 * Chooses the provider for one attempt of a call of model by service (NULL: none). excluded
 * is a mask of provider indexes not to choose. 0 and *out; -ENOENT when no provider serves
 * the model; -EAGAIN when none of those not excluded is available now, with why (if given)
 * naming each of them and the reason ("b: circuit open; c: cooling down").
 */
int router_pick(struct router *r, const char *model, const char *service, uint64_t excluded,
		int64_t now_ns, struct router_choice *out, char *why, size_t whylen);
/*
 * How long until some provider serving model can take a call again, for the Retry-After of
 * a 503 when none could: the earliest end of a cooldown or of an open breaker among them.
 * 0 when one is available at now_ns, or when none will be at a known time (half-open probes
 * in flight, or no provider serves the model).
 */
int64_t router_wait_ns(struct router *r, const char *model, int64_t now_ns);

/*
 * The attempt of ch ended with o after latency_ns (to the answer's headers, or to the
 * failure); retry_after_sec is the answer's Retry-After (0 = none). Every successful pick is
 * reported exactly once.
 */
void router_report(struct router *r, const struct router_choice *ch, enum router_outcome o,
		   int64_t latency_ns, uint32_t retry_after_sec, int64_t now_ns);

/* What GET /api/v1/providers and the metrics show of one provider. */
struct router_status {
	const struct provider *prov;
	enum breaker_state state; /* as a pick at now would see it (open turns half-open) */
	uint32_t failures_in_row;
	int64_t open_until_ns;	   /* open: when probing starts */
	int64_t cooldown_until_ns; /* 0 or in the past: none */
	bool measured;		   /* a latency is known */
	double ewma_ms;
	double p50_ms;
	double error_rate; /* of the last up to 64 attempts */
	uint64_t requests; /* attempts sent */
	uint64_t outcomes[ROUTER__COUNT];
	uint64_t rate_limited_skips; /* picks that passed it over for its outbound rate */
};

size_t router_count(const struct router *r);
/* Fills *out for provider i at now; -ERANGE past the end. */
int router_status(struct router *r, size_t i, int64_t now_ns, struct router_status *out);

#endif /* TG_ROUTER_H */

/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Exact per-key request rates. Each key owns a slot (include/tollgate/abi.h) in an array of
 * shared memory that a BPF_F_MMAPABLE map will back once the kernel path exists. A request
 * is charged against up to three GCRA windows of its key: per second (rate + burst), per
 * minute and per hour (when the key's limits set them; a window of N per minute is a GCRA
 * bucket of rate N/60 s and burst N). Each window's state is one 64-bit word changed only by
 * compare-and-swap, so any number of threads can charge one key without a lock and without
 * ever allowing more than burst + rate * t in any interval t.
 *
 * Windows are charged in order second, minute, hour; if a later window refuses, the earlier
 * charges are refunded (their TAT moved back by one interval with compare-and-swap), so a
 * refused request spends nothing. Known imprecision: between the charge and the refund
 * another request on the same key may see the window fuller than it will be and be refused
 * too; the bound is never exceeded, only approached more slowly.
 */
#ifndef TG_RATELIMIT_H
#define TG_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "tollgate/abi.h"

enum rl_window {
	RL_SECOND = 0,
	RL_MINUTE,
	RL_HOUR,
	RL__COUNT,
};

/* "requests per second", ... and the short names used in error types and metrics. */
const char *rl_window_name(enum rl_window w); /* "second", "minute", "hour" */

struct rl_verdict {
	bool allowed;
	enum rl_window window;	 /* refused: the window that refused (of several, the one
				  * refusing longest); allowed: the one with the fewest left
				  * (ties: the shorter window) */
	uint64_t limit;		 /* that window's limit: requests per window (burst for second) */
	uint64_t remaining;	 /* requests still allowed right now in that window */
	uint64_t reset_ms;	 /* ms until that window is full again */
	uint64_t retry_after_ms; /* refused: ms until a request can pass; else 0 */
	double rate;		 /* that window's sustained rate, requests per window length */
};

struct slots;

/*
 * Maps an array of capacity slots (MAP_SHARED | MAP_ANONYMOUS, zeroed). NULL and errno on
 * failure. The kernel-path issue replaces the mapping with the pinned tg_slots map.
 */
struct slots *slots_open(uint32_t capacity);
/*
 * An array over memory someone else owns (the mmapped tg_slots map): capacity slots at mem,
 * borrowed for the life of the wrapper; slots_close frees only the wrapper. NULL and errno
 * (EINVAL for NULL mem or capacity 0) on failure.
 */
struct slots *slots_wrap(struct tg_slot *mem, uint32_t capacity);
/* Unmaps an array of slots_open, or frees the wrapper of slots_wrap. Accepts NULL. */
void slots_close(struct slots *s);
uint32_t slots_capacity(const struct slots *s);
/* The slot at index i (< capacity), or NULL. Borrowed for the life of the array. */
struct tg_slot *slots_at(struct slots *s, uint32_t i);
/*
 * Resets a slot for a new key: zero state, parameters from lim, flags, key_gen bumped.
 * key_gen and flags have a single writer: callers serialise slots_assign and slots_set_flags
 * (the key sync does).
 */
void slots_assign(struct tg_slot *slot, const struct limits *lim);
/* Writes the windows' parameters for lim (absent windows: interval 0), keeping the TATs. */
void slots_set_limits(struct tg_slot *slot, const struct limits *lim);
/* True when every window's parameters in the slot are those slots_set_limits writes for lim. */
bool slots_limits_match(const struct tg_slot *slot, const struct limits *lim);
/* Replaces the slot's flags (TG_SLOT_*) in one atomic store; 0 retires the slot. */
void slots_set_flags(struct tg_slot *slot, uint32_t flags);
/* The slot's flags and key_gen as the kernel reads them. */
uint32_t slots_flags(const struct tg_slot *slot);
uint32_t slots_key_gen(const struct tg_slot *slot);

/*
 * Charges one request at now_ns (CLOCK_MONOTONIC) against the key's windows from lim
 * (effective limits: LIMIT_RPS, LIMIT_BURST, LIMIT_RPM, LIMIT_RPH; 0 rpm/rph = no such
 * window). dry_run decides without charging (POST /api/v1/rate-limits/check). Fills *v;
 * returns v->allowed.
 */
bool ratelimit_charge(struct tg_slot *slot, const struct limits *lim, uint64_t now_ns,
		      bool dry_run, struct rl_verdict *v);

/*
 * Where each window stands at now_ns, without charging (GET /api/v1/rate-limits): remaining
 * counts the next request too, reset_ms is when the window is full again. A window the
 * limits do not define (rpm or rph 0) reports allowed, limit 0, remaining 0, resets 0.
 */
void ratelimit_status(const struct tg_slot *slot, const struct limits *lim, uint64_t now_ns,
		      struct rl_verdict out[RL__COUNT]);

/*
 * The response headers for a verdict: x-ratelimit-limit-requests,
 * x-ratelimit-remaining-requests, x-ratelimit-reset-requests (OpenAI style: seconds with
 * up to 3 decimals, trailing zeros dropped, then "s": "0.1s", "1.5s", "0.02s", "60s"; never
 * the "6m0s" form), X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset (seconds,
 * integer, rounded up), and Retry-After (seconds, rounded up, at least 1) when refused.
 */
void ratelimit_headers(const struct rl_verdict *v,
		       void (*add)(void *ctx, const char *name, const char *value), void *ctx);

/*
 * The refusal message naming the limit, its value and when it resets, e.g. "Rate limit
 * exceeded for key k7dq2m9xa4bz: 20 requests per second (rate 10/s, burst 20); retry after
 * 0.1 s (bucket full again in 2.0 s)", or "... 600 requests per minute; retry after ...".
 * Always NUL-terminated, truncated to len.
 */
void ratelimit_message(const struct rl_verdict *v, const char *key_id, char *buf, size_t len);

#endif /* TG_RATELIMIT_H */

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * GCRA (the generic cell rate algorithm), the request-rate decision shared by the daemon and
 * the kernel fast path. A bucket's whole state is one 64-bit word, its theoretical arrival
 * time (TAT, CLOCK_MONOTONIC ns): the daemon charges a request by compare-and-swap of that
 * word; the kernel only reads it and refuses what the daemon would refuse at that instant.
 *
 * With rate r and burst b: emission interval T = 1/r, tolerance tau = (b - 1) * T. A request
 * at time now is allowed when max(TAT, now) - now <= tau, and moves TAT to max(TAT, now) + T.
 * So from an idle bucket b requests pass at once, then one per T: over any interval of
 * length t, allowed <= b + r * t, and a client spacing its requests by >= T is never refused.
 *
 * Pure: no I/O, no libc, fixed-width types; safe to include from BPF programs.
 */
#ifndef TOLLGATE_GCRA_H
#define TOLLGATE_GCRA_H

#include <linux/types.h>

#define TG_NSEC_PER_SEC 1000000000ULL
/* Caps keep every sum below 2^63 so comparisons never wrap (tolerance ~146 years). */
#define TG_GCRA_MAX_NS (1ULL << 62)

struct tg_gcra {
	__u64 interval_ns;  /* emission interval T: ns per request at the sustained rate */
	__u64 tolerance_ns; /* tau = (burst - 1) * T, capped at TG_GCRA_MAX_NS */
};

struct tg_gcra_verdict {
	__u64 new_tat_ns;     /* TAT to store if allowed (unchanged TAT if refused) */
	__u64 retry_after_ns; /* refused: wait this long before the next request passes; else 0 */
	__u64 remaining;      /* requests that would still pass right now after this one */
	__u64 reset_ns;	      /* time until the bucket is full again (burst available) */
};

/*
 * Parameters for a rate of rate_milli / 1000 requests per second and a burst of burst
 * requests (>= 1). A zero rate yields interval TG_GCRA_MAX_NS (effectively nothing passes
 * after the burst).
 */
static inline struct tg_gcra tg_gcra_params(__u64 rate_milli, __u64 burst)
{
	struct tg_gcra g;
	__u64 b = burst ? burst - 1 : 0;

	g.interval_ns = rate_milli ? (1000ULL * TG_NSEC_PER_SEC) / rate_milli : TG_GCRA_MAX_NS;
	if (g.interval_ns == 0)
		g.interval_ns = 1;
	if (g.interval_ns > TG_GCRA_MAX_NS)
		g.interval_ns = TG_GCRA_MAX_NS;
	g.tolerance_ns = b && g.interval_ns > TG_GCRA_MAX_NS / b ? TG_GCRA_MAX_NS
								 : g.interval_ns * b;
	return g;
}

/*
 * Decides one request arriving at now_ns against a bucket whose TAT is tat_ns. Returns 1
 * (allowed; store v->new_tat_ns) or 0 (refused). Fills v in both cases.
 */
static inline int tg_gcra_decide(__u64 tat_ns, __u64 now_ns, const struct tg_gcra *g,
				 struct tg_gcra_verdict *v)
{
	__u64 base = tat_ns > now_ns ? tat_ns : now_ns;
	__u64 ahead = base - now_ns; /* how far the bucket is "in debt" */

	if (ahead > g->tolerance_ns) {
		v->new_tat_ns = tat_ns;
		v->retry_after_ns = ahead - g->tolerance_ns;
		v->remaining = 0;
		v->reset_ns = ahead;
		return 0;
	}
	v->new_tat_ns = base + g->interval_ns;
	v->retry_after_ns = 0;
	v->reset_ns = ahead + g->interval_ns;
	v->remaining = v->reset_ns > g->tolerance_ns
			       ? 0
			       : (g->tolerance_ns - v->reset_ns) / g->interval_ns + 1;
	return 1;
}

#endif /* TOLLGATE_GCRA_H */
